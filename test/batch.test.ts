// src/inject/batch.ts on real processes: a batch runs its calls in order in one round trip, stops
// at the first unexpected result (later calls never run), and the tracee is left exactly as it
// was (registers, signal state, mappings), a handled SIGTRAP included; the routine's bytes are
// what batch.S assembles to.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { getRegs, getSiginfo, PTRACE_EVENT_STOP, seizeAndStop } from '../bridge/ptrace.js';
import { ANY_SUCCESS, BATCH_CODE, BatchRunner } from '../src/inject/batch.js';
import { Injector } from '../src/inject/injector.js';
import { SYS } from '../src/inject/syscalls.js';
import { ROOT } from './helpers/cli.js';
import { waitInSyscall, withProcess } from './helpers/processes.js';

const SYS_clock_nanosleep = 230;
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
    } finally {
      inj.finish();
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

test.run();
