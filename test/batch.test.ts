// src/inject/batch.ts on real processes: a batch runs its calls in order in one round trip, stops
// at the first unexpected result (later calls never run), and the tracee is left exactly as it
// was (registers, signal state, mappings), a handled SIGTRAP included, in any thread of it; the
// routine's bytes are what batch.S assembles to. Also the restart's check of the fd numbers a
// replay left (src/replay/check.ts checkFdsHeld), which judges them through batches.
import { oneProcess, type FdTable } from '../src/model/fdtable.js';
import { execFileSync, spawn as spawnChild } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { detach, getRegs, getSiginfo, PTRACE_EVENT_STOP, seizeAndStop } from '../bridge/ptrace.js';
import { ANY_SUCCESS, BATCH_CODE, BatchRunner, CallQueue } from '../src/inject/batch.js';
import { Injector } from '../src/inject/injector.js';
import { SYS } from '../src/inject/syscalls.js';
import { checkFdsHeld } from '../src/replay/check.js';
import { listThreads } from '../src/proc/process.js';
import { freeze, thaw } from '../src/task/freeze.js';
import { cr, ROOT } from './helpers/cli.js';
import { waitInSyscall, withProcess } from './helpers/processes.js';
import { tableJson } from '../src/model/json.js';

const SYS_clock_nanosleep = 230;
const SYS_pause = 34;
const SYS_restart_syscall = 219;
const PAUSE = new Int32Array(new SharedArrayBuffer(4));
const EBADF = -9n;
const signalState = (pid: number): string[] =>
  ['SigBlk', 'SigIgn', 'SigCgt', 'SigPnd', 'ShdPnd'].map((f) => new RegExp(`${f}:\\s+(\\w+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]!);
const fdsOf = (pid: number): string[] =>
  execFileSync('ls', [`/proc/${pid}/fd`], { encoding: 'utf8' }).split('\n').filter(Boolean).sort();

test('a batch runs every call in order in the tracee, then leaves it as it was (a handled SIGTRAP too)', async () => {
  // A SIGTRAP handler: a forced trap signal would have reset it, the routine's SIGSTOP does not.
  const program = 'import signal, time\nsignal.signal(signal.SIGTRAP, lambda *a: None)\ntime.sleep(30)';
  await withProcess(['python3', '-S', '-c', program], { fds: [] }, (pid) => {
    waitInSyscall(pid, SYS_clock_nanosleep);
    assert.is(BigInt(`0x${signalState(pid)[2]}`) & (1n << 4n), 1n << 4n, 'SIGTRAP caught');
    seizeAndStop(pid);
    const regsBefore = getRegs(pid);
    const signalsBefore = signalState(pid);
    const mapsBefore = readFileSync(`/proc/${pid}/maps`, 'utf8');
    const inj = Injector.attach(pid);
    try {
      const runner = BatchRunner.prepare(inj, { capacity: 64 * 1024 });
      const b = runner.batch();
      const pair = b.put(Buffer.alloc(8));
      // pipe2 puts the ends at the lowest free numbers: 0 and 1 in a process started with none.
      b.call(SYS.pipe2, [pair, 0n], 0n);
      const text = b.put(Buffer.from('batched bytes'));
      b.call(SYS.write, [1n, text, 13n], 13n);
      const back = b.put(Buffer.alloc(13));
      b.call(SYS.read, [0n, back, 13n], 13n);
      b.call(SYS.dup2, [0n, 40n], 40n);
      b.call(SYS.getpid, [], ANY_SUCCESS);
      const out = runner.run(b);
      assert.is(out.matched, 5);
      assert.equal(out.results, [0n, 13n, 13n, 40n, BigInt(pid)]);
      assert.is(inj.read(back, 13).toString(), 'batched bytes');
      assert.match(readlinkSync(`/proc/${pid}/fd/40`), /^pipe:\[\d+\]$/);
      assert.is(readlinkSync(`/proc/${pid}/fd/40`), readlinkSync(`/proc/${pid}/fd/0`));
      // The runner is reusable: a second batch closes what the first made.
      const again = runner.batch();
      for (const fd of [0n, 1n, 40n]) again.call(SYS.close, [fd], 0n);
      assert.equal(runner.run(again), { matched: 3, results: [0n, 0n, 0n], data: null });
    } finally {
      inj.finish();
    }
    assert.equal(fdsOf(pid), []);
    assert.equal(getRegs(pid), regsBefore);
    assert.equal(signalState(pid), signalsBefore);
    assert.is(getSiginfo(pid).code >> 8, PTRACE_EVENT_STOP);
    assert.is(readFileSync(`/proc/${pid}/maps`, 'utf8'), mapsBefore);
  });
});

test('data staged as views (not copied) and as copies, interleaved over more ranges than one process_vm_writev takes, lands at its addresses', async () => {
  await withProcess(['sleep', '30'], { fds: [] }, (pid) => {
    waitInSyscall(pid, SYS_clock_nanosleep);
    seizeAndStop(pid);
    const inj = Injector.attach(pid);
    try {
      const runner = BatchRunner.prepare(inj, { capacity: 256 * 1024 });
      const b = runner.batch();
      // A pipe, bytes written into it from a view, read back into copied (zeroed) data.
      const pair = b.put(Buffer.alloc(8));
      b.call(SYS.pipe2, [pair, 0n], 0n);
      const bytes = Buffer.from('bytes from a view, never copied');
      b.call(SYS.write, [1n, b.putView(bytes), BigInt(bytes.length)], BigInt(bytes.length));
      const back = b.put(Buffer.alloc(bytes.length));
      b.call(SYS.read, [0n, back, BigInt(bytes.length)], BigInt(bytes.length));
      // 1,100 views of 1-7 bytes, each followed by a copied string: 2,200 ranges and more (MAX_RANGES is 1,024).
      const staged: Array<{ at: bigint; want: Buffer }> = [];
      for (let i = 0; i < 1100; i++) {
        const view = Buffer.alloc((i % 7) + 1, i & 0xff);
        staged.push({ at: b.putView(view), want: view });
        const text = `s${i}`;
        staged.push({ at: b.put(text), want: Buffer.from(`${text}\0`) });
      }
      b.call(SYS.getpid, [], BigInt(pid));
      assert.equal(runner.run(b), { matched: 4, results: [0n, BigInt(bytes.length), BigInt(bytes.length), BigInt(pid)], data: null });
      assert.is(inj.read(back, bytes.length).toString(), bytes.toString());
      for (const { at, want } of staged) assert.ok(inj.read(at, want.length).equals(want), `the ${want.length} bytes at 0x${at.toString(16)}`);
      const close = runner.batch();
      for (const fd of [0n, 1n]) close.call(SYS.close, [fd], 0n);
      assert.is(runner.run(close).matched, 2);
    } finally {
      inj.finish();
    }
    assert.equal(fdsOf(pid), []);
  });
});

test('numbers go into a batch as their 64-bit words (negative, above 32 bits); checkFdsHeld judges a target\'s fd numbers as the listing would', async () => {
  await withProcess(['sleep', '30'], { fds: [] }, (pid) => {
    waitInSyscall(pid, SYS_clock_nanosleep);
    seizeAndStop(pid);
    const inj = Injector.attach(pid);
    try {
      const runner = BatchRunner.prepare(inj, { capacity: 64 * 1024 });
      const b = runner.batch();
      const pair = b.put(Buffer.alloc(8));
      b.call(SYS.pipe2, [pair, 0], 0);
      // The two fds as one word above 32 bits, given as a number.
      b.load(pair, 2 ** 32 * 1 + 0);
      b.call(SYS.dup2, [0, 40], 40);
      b.call(SYS.close, [-1], Number(EBADF));
      b.call(SYS.lseek, [0, 2 ** 40, 0], -29); // ESPIPE: a pipe has no position
      const out = runner.run(b);
      assert.equal(out.results, [0n, 1n << 32n, 40n, EBADF, -29n]);
      assert.is(out.matched, 5);
      // Only the result that was not expected read back: the others are holes.
      const short = runner.batch();
      short.call(SYS.getpid, [], ANY_SUCCESS);
      short.call(SYS.close, [-1], 0);
      short.call(SYS.getpid, [], ANY_SUCCESS);
      const one = runner.run(short, { unexpectedOnly: true });
      assert.is(one.matched, 1);
      assert.is(one.results.length, 2);
      assert.is(0 in one.results, false);
      assert.is(one.results[1], EBADF);
      const rest = runner.run(short, { unexpectedOnly: true, from: 2 });
      assert.is(rest.matched, 1);
      assert.is(0 in rest.results, false);
      checkFdsHeld(runner, pid, [0, 1, 40]);
      assert.throws(() => checkFdsHeld(runner, pid, [0, 1]), (e: Error) => e.message === `after the replay pid ${pid} has fds 40 the plan did not make`);
      assert.throws(() => checkFdsHeld(runner, pid, [0, 1, 40, 41]), (e: Error) => e.message === `after the replay pid ${pid} lacks fds 41`);
      // As many as the target holds, one of them not: only the F_GETFDs tell.
      assert.throws(() => checkFdsHeld(runner, pid, [0, 1, 41]), (e: Error) => e.message === `after the replay pid ${pid} has fds 40 the plan did not make and lacks fds 41`);
      const close = runner.batch();
      for (const fd of [0, 1, 40]) close.call(SYS.close, [fd], 0);
      assert.is(runner.run(close).matched, 3);
      checkFdsHeld(runner, pid, []);
    } finally {
      inj.finish();
    }
    assert.equal(fdsOf(pid), []);
  });
});

test('a batch stops at the first unexpected result: its errno is reported, the calls after it never run', async () => {
  await withProcess(['sleep', '30'], { fds: [] }, (pid) => {
    waitInSyscall(pid, SYS_clock_nanosleep);
    seizeAndStop(pid);
    const inj = Injector.attach(pid);
    try {
      const runner = BatchRunner.prepare(inj, { capacity: 16 * 1024 });
      const b = runner.batch();
      const pair = b.put(Buffer.alloc(8));
      b.call(SYS.pipe2, [pair, 0n], 0n);
      b.call(SYS.close, [777n], 0n); // not open: EBADF
      b.call(SYS.dup2, [0n, 50n], 50n); // must not run
      const out = runner.run(b);
      assert.is(out.matched, 1);
      assert.equal(out.results, [0n, EBADF]);
      assert.equal(fdsOf(pid), ['0', '1']);
      // ANY_SUCCESS accepts any non-error, and stops at an error.
      const c = runner.batch();
      c.call(SYS.getppid, [], ANY_SUCCESS);
      c.call(SYS.close, [777n], ANY_SUCCESS);
      c.call(SYS.close, [0n], 0n);
      assert.equal(runner.run(c), { matched: 1, results: [BigInt(process.pid), EBADF], data: null });
      assert.equal(fdsOf(pid), ['0', '1']);
      // A LOAD record checks what a call wrote, in the batch: pipe2's fds (2 and 3 now) are not
      // the 5 and 6 it expects, so the dup2 after it never runs.
      const d = runner.batch();
      const fds = d.put(Buffer.alloc(8));
      d.call(SYS.pipe2, [fds, 0n], 0n);
      d.load(fds, (6n << 32n) | 5n);
      d.call(SYS.dup2, [0n, 50n], 50n);
      assert.equal(runner.run(d), { matched: 1, results: [0n, (3n << 32n) | 2n], data: null });
      assert.equal(fdsOf(pid), ['0', '1', '2', '3']);
    } finally {
      inj.finish();
    }
  });
});

test('a queue\'s attempt that fails is told and the calls after it run on; a call that must succeed still ends the queue', async () => {
  await withProcess(['sleep', '30'], { fds: [] }, (pid) => {
    waitInSyscall(pid, SYS_clock_nanosleep);
    seizeAndStop(pid);
    const inj = Injector.attach(pid);
    try {
      const q = new CallQueue(BatchRunner.prepare(inj, { capacity: 16 * 1024 }), `in pid ${pid}`);
      const told: Array<[string, bigint]> = [];
      q.add('pipe2', SYS.pipe2, [q.put(Buffer.alloc(8)), 0n], 0n); // fds 0 and 1
      q.attempt('close(777)', SYS.close, [777n], (r) => told.push(['close(777)', r]));
      q.add('dup2', SYS.dup2, [0n, 50n], 50n);
      q.attempt('close(778)', SYS.close, [778n], (r) => told.push(['close(778)', r]));
      q.attempt('close(779)', SYS.close, [779n], (r) => told.push(['close(779)', r]));
      q.add('dup2', SYS.dup2, [0n, 51n], 51n);
      q.attempt('close(780)', SYS.close, [780n], (r) => told.push(['close(780)', r]));
      assert.equal(q.run().results, [0n, EBADF, 50n, EBADF, EBADF, 51n, EBADF]);
      assert.equal(told, [['close(777)', EBADF], ['close(778)', EBADF], ['close(779)', EBADF], ['close(780)', EBADF]]);
      assert.equal(fdsOf(pid), ['0', '1', '50', '51']);
      q.attempt('close(777)', SYS.close, [777n], () => {});
      q.add('close', SYS.close, [777n], 0n);
      q.add('dup2', SYS.dup2, [0n, 52n], 52n); // must not run
      assert.throws(() => q.run(), /close\(0x309\) in pid \d+: .*EBADF/);
      assert.equal(fdsOf(pid), ['0', '1', '50', '51']);
    } finally {
      inj.finish();
    }
  });
});

test('a SIGSTOP sent to the tracee while a batch runs is not lost: the injector sends it again at its finish', async () => {
  await withProcess(['sleep', '30'], { fds: [] }, async (pid) => {
    waitInSyscall(pid, SYS_clock_nanosleep);
    seizeAndStop(pid);
    const inj = Injector.attach(pid);
    // Sent while the batch's second of sleep runs (or, on a slow machine, after it: pending then anyway).
    const sender = spawnChild('sh', ['-c', `sleep 0.2; kill -STOP ${pid}`], { stdio: 'ignore' });
    const sent = new Promise((resolve) => sender.once('exit', resolve));
    try {
      const runner = BatchRunner.prepare(inj, { capacity: 16 * 1024 });
      const b = runner.batch();
      const second = b.put(Buffer.from(new BigInt64Array([1n, 0n]).buffer));
      b.call(SYS_clock_nanosleep, [1n, 0n, second, 0n], 0n);
      assert.is(runner.run(b).matched, 1);
    } finally {
      inj.finish();
    }
    await sent;
    const [, , , pending, shared] = signalState(pid);
    assert.ok(((BigInt(`0x${pending}`) | BigInt(`0x${shared}`)) >> 18n) & 1n, 'SIGSTOP pending again');
  });
});

test('a batch that overruns its bound is interrupted where it is: finish() then puts the tracee back as it was, and detached it runs on', async () => {
  await withProcess(['sleep', '30'], { fds: [] }, (pid) => {
    waitInSyscall(pid, SYS_clock_nanosleep);
    const before = signalState(pid);
    seizeAndStop(pid);
    const inj = Injector.attach(pid);
    try {
      const runner = BatchRunner.prepare(inj, { capacity: 16 * 1024, timeoutMs: 300 });
      const b = runner.batch();
      // pause(2), every signal blocked: never returns. (Not a sleep: an interrupted sleep keeps its
      // restart in the thread's one restart block, where the tracee's own sleep waits to go on.)
      b.call(SYS_pause, [], 0n);
      assert.throws(() => runner.run(b), /a batch of 1 calls did not finish within 300 ms/);
    } finally {
      inj.finish();
    }
    detach(pid);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(status, /^TracerPid:\s+0$/m);
    assert.not.match(status, /^State:\s+[Tt] /m, 'not stopped');
    assert.equal(signalState(pid), before);
    // Its own sleep goes on: interrupted by the seize, it is continued through restart_syscall.
    waitInSyscall(pid, [SYS_clock_nanosleep, SYS_restart_syscall]);
  });
});

test('a batch in a thread other than the first ends at its own stop (the stop\'s sender is the thread group)', async () => {
  const program = 'import threading, time\nthreading.Thread(target=time.sleep, args=(30,)).start()\ntime.sleep(30)';
  await withProcess(['python3', '-S', '-c', program], { fds: [] }, (pid) => {
    // Frozen wherever it is, once its second thread exists (python3 starts slowly on a busy machine).
    let others: number[] = [];
    for (const deadline = Date.now() + 30_000; others.length === 0 && Date.now() < deadline; Atomics.wait(PAUSE, 0, 0, 10)) others = listThreads(pid).filter((t) => t !== pid);
    assert.is(others.length, 1, 'a second thread');
    const tid = others[0]!;
    const frozen = freeze(pid);
    try {
      const regsBefore = getRegs(tid);
      const inj = Injector.attach(tid);
      try {
        assert.is(inj.tgid, pid);
        // Before the fix the routine's stop was taken for someone else's: the batch never ended.
        const runner = BatchRunner.prepare(inj, { capacity: 16 * 1024, timeoutMs: 2000 });
        assert.ok(runner.batched, 'batches run in one go here');
        const b = runner.batch();
        b.call(SYS.gettid, [], BigInt(tid));
        b.call(SYS.getpid, [], BigInt(pid));
        assert.equal(runner.run(b), { matched: 2, results: [BigInt(tid), BigInt(pid)], data: null });
      } finally {
        inj.finish();
      }
      assert.equal(getRegs(tid), regsBefore);
      assert.is(getSiginfo(tid).code >> 8, PTRACE_EVENT_STOP);
    } finally {
      thaw(frozen, { leaveStopped: false });
    }
  });
});

test('the routine\'s bytes are what src/inject/batch.S assembles to', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cr-batch-'));
  try {
    execFileSync('as', ['--64', '-o', join(dir, 'b.o'), join(ROOT, 'src', 'inject', 'batch.S')]);
    execFileSync('objcopy', ['-O', 'binary', '-j', '.text', join(dir, 'b.o'), join(dir, 'b.bin')]);
    assert.ok(readFileSync(join(dir, 'b.bin')).equals(BATCH_CODE), 'BATCH_CODE differs from batch.S');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('restore --log: 3 MiB of pipe bytes (more than a batch holds) go in chunks, and every call of the plan is in the log with its result', async () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-batch-log-')));
  try {
    const MiB = 1 << 20;
    const bytes = [0, 1, 2].map((p) => {
      const b = Buffer.alloc(MiB);
      for (let i = 0; i < MiB; i++) b[i] = (i * 7 + p * 13 + (i >> 10)) & 255;
      return b;
    });
    // Read ends at 3, 5, 7 (write ends closed: the bytes end in EOF), 1 MiB queued in each.
    const table = {
      fds: [3, 5, 7].map((fd, p) => ({ fd, desc: p, cloexec: false })),
      descs: [0, 1, 2].map((p) => ({ id: p, kind: 'pipe', flags: 0, pipe: p })),
      pipes: bytes.map((b, p) => ({ id: p, capacity: MiB, data: b })),
      rlimit: { soft: 1024, hard: 4096 },
    };
    writeFileSync(join(dir, 'table.json'), tableJson(oneProcess(table as FdTable, 1)));
    const sums = bytes.map((b) => createHash('sha256').update(b).digest('hex'));
    // The restored program checks its own pipes and says PASS or FAIL in a file (it has no stdout).
    const check = [
      'import hashlib, os, sys',
      'out, sums = sys.argv[1], sys.argv[2:]',
      'def whole(fd):',
      '    got = b""',
      '    while True:',
      '        chunk = os.read(fd, 1 << 16)',
      '        if not chunk: return got',
      '        got += chunk',
      'ok = all(hashlib.sha256(whole(fd)).hexdigest() == s for fd, s in zip((3, 5, 7), sums))',
      'open(out, "w").write("PASS" if ok else "FAIL")',
    ].join('\n');
    const log = join(dir, 'calls.log');
    const r = await cr(['restore', join(dir, 'table.json'), '--log', log, '--', 'python3', '-S', '-c', check, join(dir, 'verdict'), ...sums]);
    assert.is(r.code, 0, r.stderr);
    assert.is(readFileSync(join(dir, 'verdict'), 'utf8'), 'PASS');
    const lines = readFileSync(log, 'utf8').trimEnd().split('\n');
    assert.match(lines[0]!, /^# cr restore -- python3 /);
    const calls = lines.slice(1).filter((l) => !/ batch of \d+ calls: /.test(l));
    // Every line: time, pid, call(arguments) = result, then its own time or its place in a batch.
    for (const l of calls) assert.match(l, /^\d+\.\d{6} pid \d+ \w+\(.*\) = (-?\w+|-1 E[A-Z]+)(, not the expected .*)? \((\d+\.\d{3} ms|batch call \d+ of \d+)\)$/);
    const writes = calls.filter((l) => / write\(/.test(l));
    assert.is(writes.length, 6, 'each 1 MiB in two chunks');
    for (const w of writes) assert.match(w, /write\(\d+, 0x[0-9a-f]+, 0x80000\) = 0x80000 /);
    assert.is(calls.filter((l) => / pipe2\(0x[0-9a-f]+, 0\) = 0 /.test(l)).length, 3);
    assert.is(calls.filter((l) => / fcntl\(\d+, 1031, 0x100000\) = 0x100000 /.test(l)).length, 3, 'F_SETPIPE_SZ');
    assert.ok(lines.some((l) => / batch of \d+ calls: \d+ as expected \(/.test(l)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--log at a FIFO or a directory is refused in one line before any process starts', async () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-batch-log-')));
  try {
    execFileSync('mkfifo', [join(dir, 'fifo')]);
    writeFileSync(join(dir, 'table.json'), JSON.stringify({ descs: [], pipes: [], processes: [{ pid: 1, fds: [], rlimit: { soft: 1024, hard: 4096 } }] }));
    const marker = join(dir, 'ran');
    for (const [at, what] of [[join(dir, 'fifo'), 'is a FIFO'], [dir, 'is a directory']] as const) {
      const r = await cr(['restore', join(dir, 'table.json'), '--log', at, '--', 'touch', marker]);
      assert.is(r.code, 2, r.stderr);
      assert.ok(r.stderr.includes(`the log ${at} ${what}`), r.stderr);
      assert.is(r.stderr.trim().split('\n').length, 1);
      assert.not.ok(existsSync(marker), 'nothing started');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
