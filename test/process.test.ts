// Whole-process checkpoint and restart on real programs (test/fixtures/process-*): each is started,
// dumped (left stopped, so it runs no further), killed, and restarted from its image; the
// restarted process must carry on exactly where the dumped one stopped. Synchronisation is by
// files, FIFOs and /proc (never by sleeping and hoping).
import { onlyProcess } from '../src/model/fdtable.js';
import { appendFileSync, chmodSync, closeSync, copyFileSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readMemory, writeMemory } from '../bridge/memory.js';
import { kill, SIGUSR1, SIGUSR2 } from '../bridge/signal.js';
import { reap, spawn } from '../bridge/spawn.js';
import { checkpointProcess } from '../src/checkpoint/checkpoint.js';
import { CrError } from '../src/errors.js';
import { decodeRegs, isProcessImage, ProcessImage, ProcessImageWriter } from '../src/image/process-format.js';
import type { ProcessHead } from '../src/image/process-head.js';
import { restartProcess } from '../src/restart/restart.js';
import { prepareRestore, restore } from '../src/api/restore.js';
import { ensureReaped, waitInSyscall, buildFixture } from './helpers/processes.js';
import { asUser, NOBODY, readableCopy, unprivilegedTest } from './helpers/unprivileged.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURES = join(ROOT, 'test', 'fixtures');
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const SYS_read = 0;

const fixture = (name: string, ccArgs: string[] = []): string => buildFixture(name, ccArgs);

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function waitUntil(what: string, cond: () => boolean, timeoutMs = 10_000): void {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.unreachable(`timed out waiting for ${what}`);
    Atomics.wait(sleeper, 0, 0, 2);
  }
}

const text = (path: string): string => (existsSync(path) ? readFileSync(path, 'utf8') : '');
const lineCount = (path: string): number => text(path).split('\n').length - 1;
const numbers = (path: string): number[] => text(path).trim().split('\n').map(Number);

/** Processes a test started, all killed and reaped at its end; a temp dir, removed. */
class Scene {
  readonly dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-process-')));
  private readonly pids: number[] = [];
  private readonly fds: number[] = [];
  /** /dev/null as fds 0, 1, 2 */
  readonly stdio: Array<[number, number]>;

  constructor() {
    const devnull = this.open('/dev/null', 'r+');
    this.stdio = [[devnull, 0], [devnull, 1], [devnull, 2]];
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  open(path: string, flags: string | number): number {
    const fd = openSync(path, flags);
    this.fds.push(fd);
    return fd;
  }

  mkfifo(name: string): string {
    const path = this.path(name);
    execFileSync('mkfifo', [path]);
    return path;
  }

  spawn(argv: string[]): number {
    return this.adopt(spawn(argv, { fds: this.stdio }));
  }

  /** Kill and reap pid at the end. */
  adopt(pid: number): number {
    this.pids.push(pid);
    return pid;
  }

  /** Dump pid (left stopped, so it does nothing more), then kill it. */
  dumpAndKill(pid: number, image: string): ReturnType<typeof checkpointProcess> {
    const result = checkpointProcess(pid, image, { leaveStopped: true });
    ensureReaped(pid);
    return result;
  }

  restart(image: string, opts: { samePid?: boolean } = {}): number {
    const { pid } = restartProcess(ProcessImage.read(image), opts);
    this.pids.push(pid);
    return pid;
  }

  end(): void {
    for (const pid of this.pids) ensureReaped(pid);
    for (const fd of this.fds) closeSync(fd);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function scene(fn: (s: Scene) => void | Promise<void>): Promise<void> {
  const s = new Scene();
  try {
    await fn(s);
  } finally {
    s.end();
  }
}

/**
 * /proc/PID/maps as address ranges with protection and backing, adjacent entries the kernel may
 * or may not merge (same protection, same file at contiguous offsets, or both anonymous) joined.
 */
function layout(pid: number): string[] {
  const out: Array<{ start: bigint; end: bigint; perms: string; offset: bigint; name: string }> = [];
  for (const line of readFileSync(`/proc/${pid}/maps`, 'utf8').trim().split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) (\S+) ([0-9a-f]+) \S+ \S+ *(.*)$/.exec(line)!;
    const cur = { start: BigInt(`0x${m[1]}`), end: BigInt(`0x${m[2]}`), perms: m[3]!, offset: BigInt(`0x${m[4]}`), name: m[5]! };
    const prev = out[out.length - 1];
    const special = cur.name.startsWith('[') && !cur.name.startsWith('[anon:');
    if (prev && !special && prev.end === cur.start && prev.perms === cur.perms && prev.name === cur.name && (cur.name === '' || prev.offset + (prev.end - prev.start) === cur.offset)) {
      prev.end = cur.end;
    } else {
      out.push(cur);
    }
  }
  return out.map((r) => `${r.start.toString(16)}-${r.end.toString(16)} ${r.perms} ${r.offset.toString(16)} ${r.name}`);
}

/** The counter scenario for any counter program: argv gets OUT and STOP appended. */
function counter(argv: string[]): Promise<void> {
  return scene((s) => {
    const out = s.path('out');
    const stop = s.path('stop');
    const image = s.path('image');
    const pid = s.spawn([...argv, out, stop]);
    waitUntil('the counter to count to 1000', () => lineCount(out) >= 1000);
    checkpointProcess(pid, image, { leaveStopped: true });
    const before = layout(pid);
    ensureReaped(pid);
    const dumped = lineCount(out);
    const again = s.restart(image);
    assert.is.not(again, pid);
    // Every mapping back where it was, the vdso and its data pages included.
    assert.equal(layout(again), before);
    assert.ok(before.some((l) => l.endsWith(' [vdso]')) && before.some((l) => l.endsWith(' [vvar]')));
    waitUntil('the restarted counter to count 1000 more', () => lineCount(out) >= dumped + 1000);
    writeFileSync(stop, '');
    const end = reap(again, 10_000);
    assert.equal([end.kind, end.code], ['exited', 0], 'exit 0: every number read back from its pipe was right, the clock never went back');
    const all = numbers(out);
    assert.ok(all.length > dumped + 1000);
    const wrong = all.findIndex((n, i) => n !== i + 1);
    assert.is(wrong, -1, `line ${wrong + 1} is ${all[wrong]}: a gap or a repeat around the dump at line ${dumped}`);
  });
}

test('a C counter restarts with the next number and reads back what it had queued in its pipe', () => counter([fixture('process-counter')]));

test('a python3 counter restarts with the next number and reads back what it had queued in its pipe', () =>
  counter([PYTHON, join(FIXTURES, 'process-counter.py')]));

test('a program whose executable was deleted: its code is saved whole and runs on from anonymous memory', () =>
  scene((s) => {
    const exe = s.path('counter');
    copyFileSync(fixture('process-counter'), exe);
    chmodSync(exe, 0o755);
    const out = s.path('out');
    const stop = s.path('stop');
    const image = s.path('image');
    const pid = s.spawn([exe, out, stop]);
    waitUntil('the counter to count', () => lineCount(out) >= 100);
    rmSync(exe);
    assert.match(readFileSync(`/proc/${pid}/maps`, 'utf8'), / \(deleted\)$/m);
    s.dumpAndKill(pid, image);
    const dumped = lineCount(out);
    const again = s.restart(image);
    waitUntil('the restarted counter to count on', () => lineCount(out) >= dumped + 100);
    writeFileSync(stop, '');
    const end = reap(again, 10_000);
    assert.equal([end.kind, end.code], ['exited', 0]);
    assert.is(numbers(out).findIndex((n, i) => n !== i + 1), -1);
  }));

test('a program blocked in read() on a FIFO at dump time gets the bytes written after restart', () =>
  scene((s) => {
    const fifo = s.mkfifo('fifo');
    // Held open read-write by the test: the FIFO's pipe lives on, and opening it never blocks.
    const ours = s.open(fifo, 'r+');
    const out = s.path('out');
    const image = s.path('image');
    const pid = s.spawn([fixture('process-fifo'), fifo, out]);
    waitInSyscall(pid, SYS_read);
    s.dumpAndKill(pid, image);
    const again = s.restart(image);
    waitInSyscall(again, SYS_read);
    writeSync(ours, 'written after the restart');
    const end = reap(again, 10_000);
    assert.equal([end.kind, end.code], ['exited', 0]);
    assert.is(text(out), 'written after the restart');
  }));

const AVX_ITERS = '100000000';

/** process-avx's output for an uninterrupted run. */
function avxReference(s: Scene, exe: string): string {
  const out = s.path('reference');
  const pid = s.spawn([exe, out, s.path('reference-ready'), AVX_ITERS]);
  const end = reap(pid, 30_000);
  assert.equal([end.kind, end.code], ['exited', 0]);
  return text(out);
}

test('AVX, SSE and x87 state live across a blocking read at dump time: the same result as an uninterrupted run', () =>
  scene((s) => {
    const exe = fixture('process-avx', ['-mavx', '-lm']);
    const reference = avxReference(s, exe);
    const gate = s.mkfifo('gate');
    const ours = s.open(gate, 'r+');
    const out = s.path('out');
    const pid = s.spawn([exe, out, s.path('ready'), AVX_ITERS, gate]);
    waitInSyscall(pid, SYS_read, 30_000);
    s.dumpAndKill(pid, s.path('image'));
    const again = s.restart(s.path('image'));
    waitInSyscall(again, SYS_read);
    writeSync(ours, 'g');
    const end = reap(again, 30_000);
    assert.equal([end.kind, end.code], ['exited', 0]);
    assert.is(text(out), reference);
  }));

test('AVX, SSE and x87 state in a tight loop (spinning halfway on a flag in memory): the same result as an uninterrupted run', () =>
  scene((s) => {
    const exe = fixture('process-avx', ['-mavx', '-lm']);
    const reference = avxReference(s, exe);
    const out = s.path('out');
    const ready = s.path('ready');
    const pid = s.spawn([exe, out, ready, AVX_ITERS, 'spin']);
    waitUntil('the loop to start', () => text(ready).endsWith('\n'));
    const [progress, go] = text(ready).trim().split(' ').map((a) => BigInt(a));
    const half = BigInt(AVX_ITERS) / 2n + 1n;
    waitUntil('the loop to reach its halfway spin', () => readMemory(pid, progress!, 8).readBigInt64LE(0) === half, 30_000);
    s.dumpAndKill(pid, s.path('image'));
    const again = s.restart(s.path('image'));
    assert.is(readMemory(again, progress!, 8).readBigInt64LE(0), half);
    writeMemory(again, go!, Buffer.from([1, 0, 0, 0]));
    const end = reap(again, 30_000);
    assert.equal([end.kind, end.code], ['exited', 0]);
    assert.is(text(out), reference);
  }));

test('a SIGUSR1 handler on an alternate stack and a blocked, pending SIGUSR2 behave the same after restart', () =>
  scene((s) => {
    const cmd = s.mkfifo('cmd');
    const ours = s.open(cmd, 'r+');
    const out = s.path('out');
    const image = s.path('image');
    const pid = s.spawn([fixture('process-signals'), out, cmd]);
    const expectOut = (what: string, want: string): void => waitUntil(what, () => text(out) === want);
    expectOut('ready', 'ready\n');
    kill(pid, SIGUSR2); // blocked: stays pending
    writeSync(ours, 'p');
    expectOut('the pending check', 'ready\npending usr2=1\n');
    waitInSyscall(pid, SYS_read);
    s.dumpAndKill(pid, image);
    const again = s.restart(image);
    waitInSyscall(again, SYS_read);
    kill(again, SIGUSR1);
    expectOut('the SIGUSR1 handler', 'ready\npending usr2=1\nusr1 onstack\n');
    writeSync(ours, 'p');
    expectOut('the pending check after restart', 'ready\npending usr2=1\nusr1 onstack\npending usr2=1\n');
    writeSync(ours, 'uq');
    const end = reap(again, 10_000);
    assert.equal([end.kind, end.code], ['exited', 0], 'exit 0: the read restarted after the handler (SA_RESTART)');
    assert.is(text(out), 'ready\npending usr2=1\nusr1 onstack\npending usr2=1\nusr2\nunblocked\n');
  }));

test('one image restarted twice gives two independent processes', () =>
  scene((s) => {
    const out = s.path('out');
    const stop = s.path('stop');
    const image = s.path('image');
    const pid = s.spawn([fixture('process-counter'), out, stop]);
    waitUntil('the counter to count to 1000', () => lineCount(out) >= 1000);
    s.dumpAndKill(pid, image);
    const dumped = lineCount(out);
    const first = s.restart(image);
    const second = s.restart(image);
    assert.is.not(first, second);
    // Both append to the same file: each number after the dump appears once per process.
    const seen = (n: number): number => numbers(out).filter((x) => x === n).length;
    waitUntil('both restarted counters to count 1000 more', () => seen(dumped + 1000) === 2);
    writeFileSync(stop, '');
    for (const p of [first, second]) {
      const end = reap(p, 10_000);
      assert.equal([end.kind, end.code], ['exited', 0], `pid ${p} read back the right numbers from its own pipe`);
    }
    const counts = new Map<number, number>();
    for (const n of numbers(out)) counts.set(n, (counts.get(n) ?? 0) + 1);
    for (let n = 1; n <= dumped; n++) assert.is(counts.get(n), 1, `${n} was written before the dump, once`);
    for (let n = dumped + 1; n <= dumped + 1000; n++) assert.is(counts.get(n), 2, `${n} was written by both`);
  }));

test('with samePid the restarted process gets the pid it had; a pid in use is refused and nothing is left behind', () =>
  scene((s) => {
    const out = s.path('out');
    const stop = s.path('stop');
    const image = s.path('image');
    const pid = s.spawn([fixture('process-counter'), out, stop]);
    waitUntil('the counter to count', () => lineCount(out) >= 100);
    s.dumpAndKill(pid, image);
    const dumped = lineCount(out);
    const again = s.restart(image, { samePid: true });
    assert.is(again, pid);
    let message = '';
    try {
      s.restart(image, { samePid: true });
    } catch (err) {
      message = (err as Error).message;
    }
    assert.match(message, new RegExp(`^pid ${pid} is in use; the half-restored process (\\d+) was killed$`));
    assert.not.ok(existsSync(`/proc/${/process (\d+) was killed/.exec(message)![1]}`));
    waitUntil('the restarted counter to count on', () => lineCount(out) >= dumped + 100);
    writeFileSync(stop, '');
    const end = reap(again, 10_000);
    assert.equal([end.kind, end.code], ['exited', 0]);
    assert.is(numbers(out).findIndex((n, i) => n !== i + 1), -1);
  }));

/**
 * process-bigmem.py holding `mib` MiB of random bytes, blocked reading the FIFO `ours` writes its
 * one byte to: `ready` holds the data's sha256, and `out` gets it again once that byte is read.
 */
function bigmem(s: Scene, mib: number): { pid: number; ours: number; ready: string; out: string } {
  const cmd = s.mkfifo('cmd');
  const ours = s.open(cmd, 'r+');
  const ready = s.path('ready');
  const out = s.path('out');
  const pid = s.spawn([PYTHON, join(FIXTURES, 'process-bigmem.py'), String(mib), ready, cmd, out]);
  waitUntil('the data to be made', () => text(ready).length === 64, 30_000);
  waitInSyscall(pid, SYS_read);
  return { pid, ours, ready, out };
}

/** bigmem()'s process (or the one restarted from its image, pid) told to quit: it exits 0 with its data as it made it. */
function quitsIntact(pid: number, held: ReturnType<typeof bigmem>): void {
  writeSync(held.ours, 'q');
  const end = reap(pid, 30_000);
  assert.equal([end.kind, end.code], ['exited', 0]);
  assert.is(text(held.out), text(held.ready));
}

/** The process a refused restore's message says it killed is gone. */
const killedAsSaid = (message: string): void => assert.not.ok(existsSync(`/proc/${/the half-restored process (\d+) was killed/.exec(message)![1]}`));

test('a process holding 96 MiB: the image read once, pages written from it (cr holds it once, never a second copy), data intact', () =>
  scene((s) => {
    const held = bigmem(s, 96);
    const image = s.path('image');
    const peak = process.resourceUsage().maxRSS;
    const result = s.dumpAndKill(held.pid, image);
    assert.ok(result.bytes > 96 << 20, `image of ${result.bytes} bytes`);
    const again = s.restart(image);
    const grown = (process.resourceUsage().maxRSS - peak) * 1024;
    assert.ok(grown < result.bytes + (32 << 20), `cr's peak memory grew by ${grown} bytes for an image of ${result.bytes}`);
    quitsIntact(again, held);
  }));

/**
 * A dump of bigmem()'s process that failed: exit 1 with `stderr` alone, nothing left in the
 * directory, the process neither traced nor stopped, and on its way out its data intact.
 */
function failedLeavingItRunning(s: Scene, r: SpawnSyncReturns<string>, stderr: string, held: ReturnType<typeof bigmem>): void {
  assert.is(r.status, 1, r.stderr);
  assert.is(r.stderr, stderr);
  assert.equal(readdirSync(s.dir).sort(), ['cmd', 'ready']);
  const status = readFileSync(`/proc/${held.pid}/status`, 'utf8');
  assert.match(status, /^TracerPid:\s+0$/m);
  assert.not.match(status, /^State:\s+[tT]/m);
  quitsIntact(held.pid, held);
}

test('a large process whose image cannot be written (its pages written by a thread; EFBIG under a file size limit): one line, nothing left, the process running on, data intact', () =>
  scene((s) => {
    const held = bigmem(s, 48);
    const image = s.path('image');
    // 16 MiB at most (ulimit -f counts 512- or 1024-byte blocks), SIGXFSZ ignored: a write past it is EFBIG.
    const r = spawnSync('/bin/sh', ['-c', 'trap "" XFSZ; ulimit -f 16384; exec "$0" "$@"', process.execPath, join(ROOT, 'cr.mjs'), 'dump', '--pid', String(held.pid), '-o', image], { encoding: 'utf8' });
    failedLeavingItRunning(s, r, `cr dump: cannot write ${image}: EFBIG (write)\n`, held);
  }));

/**
 * `node --require thread-oom.cjs cr.mjs ...args`: cr with every worker thread it starts dying of V8
 * running out of memory at its first write (test/fixtures/thread-oom.cjs). A timeout only so that
 * a cr waiting for its dead thread forever fails the test rather than hangs it (SIGKILL: a cr
 * blocked in that wait never returns to the event loop to act on a SIGTERM).
 */
const withThreadOom = (args: string[]): SpawnSyncReturns<string> =>
  spawnSync(process.execPath, ['--require', join(FIXTURES, 'thread-oom.cjs'), join(ROOT, 'cr.mjs'), ...args], { encoding: 'utf8', timeout: 120_000, killSignal: 'SIGKILL' });

test('a large process whose write thread dies outside JavaScript (out of memory): one line, nothing left, the process running on, data intact', () =>
  scene((s) => {
    const held = bigmem(s, 48);
    const image = s.path('image');
    const r = withThreadOom(['dump', '--pid', String(held.pid), '-o', image]);
    failedLeavingItRunning(s, r, `cr dump: cannot write ${image}: its writing thread ended before its work was done (out of memory?)\n`, held);
  }));

test('a large image whose page thread dies outside JavaScript (out of memory) while the pages go in: one line, the half-restored process killed; the image then restored whole', () =>
  scene((s) => {
    const held = bigmem(s, 48);
    const image = s.path('image');
    s.dumpAndKill(held.pid, image);
    const r = withThreadOom(['restore', image, '--detach']);
    assert.is(r.status, 1, r.stderr);
    assert.match(r.stderr, /^cr restore: writing pages in a second thread: it ended before its work was done \(out of memory\?\); the half-restored process (\d+) was killed\n$/);
    killedAsSaid(r.stderr);
    assert.is(r.stdout, '');
    quitsIntact(s.restart(image), held);
  }));

test('anonymous memory only read, every fourth page written: the pages never written are left out as zeroes and read as zeroes after restart', () =>
  scene((s) => {
    const cmd = s.mkfifo('cmd');
    const ours = s.open(cmd, 'r+');
    const ready = s.path('ready');
    const out = s.path('out');
    const image = s.path('image');
    const pid = s.spawn([PYTHON, join(FIXTURES, 'process-zeropages.py'), '16', ready, cmd, out]);
    waitUntil('the memory to be touched', () => text(ready) !== '', 30_000);
    assert.is(text(ready), 'ready');
    waitInSyscall(pid, SYS_read);
    const result = s.dumpAndKill(pid, image);
    // 4,096 pages mapped, 1,024 written: the other 3,072 hold zeroes
    assert.ok(result.zeroPages >= 3072, `${result.zeroPages} pages left out as zero`);
    assert.ok(result.bytes < 12 << 20, `image of ${result.bytes} bytes`);
    const again = s.restart(image);
    writeSync(ours, 'q');
    const end = reap(again, 30_000);
    assert.equal([end.kind, end.code], ['exited', 0]);
    assert.is(text(out), 'PASS');
  }));

/** image read and checked, then written to: its restart is refused as its pages go in, the half-restored process killed. */
function refusedWhenAppendedTo(image: string): void {
  const read = ProcessImage.read(image);
  appendFileSync(image, 'x');
  let message = '';
  try {
    restartProcess(read);
  } catch (err) {
    message = (err as Error).message;
  }
  read.file.pages?.close();
  assert.match(message, /changed while being restored \(written to since it was checked\): not an image at rest; the half-restored process (\d+) was killed$/);
  assert.not.ok(existsSync(`/proc/${/process (\d+) was killed/.exec(message)![1]}`));
}

test('an image written to after it was read and checked: refused while its pages go in, the half-restored process killed', () =>
  scene((s) => {
    const out = s.path('out');
    const stop = s.path('stop');
    const image = s.path('image');
    const pid = s.spawn([fixture('process-counter'), out, stop]);
    waitUntil('the counter to count', () => lineCount(out) >= 100);
    s.dumpAndKill(pid, image);
    refusedWhenAppendedTo(image);
  }));

test('a large image (its pages written in two threads) written to after it was read and checked: refused the same way, the half-restored process killed', () =>
  scene((s) => {
    const { pid } = bigmem(s, 48);
    const image = s.path('image');
    s.dumpAndKill(pid, image);
    refusedWhenAppendedTo(image);
  }));

test('a large image restored whole (its checksum made by a thread while its records are read and its pages go in): data intact; damage in its pages refused before the process runs, the half-restored process killed; damage in its records refused as damage, before any process exists; a write after its read refused', () =>
  scene(async (s) => {
    const held = bigmem(s, 48);
    const image = s.path('image');
    s.dumpAndKill(held.pid, image);
    const bytes = readFileSync(image);
    const refusal = async (path: string, between?: () => void): Promise<string> => {
      try {
        const prepared = prepareRestore(path, { detach: true });
        between?.();
        s.adopt((await prepared.start()).pid);
      } catch (err) {
        assert.ok(err instanceof CrError && err.code === 2, String(err));
        return err.message;
      }
      assert.unreachable(`${path} was restored`);
      return '';
    };
    // One byte of its last page run: only the checksum can tell, once the thread has hashed it.
    const pages = s.path('pages');
    const flipped = Buffer.from(bytes);
    flipped[flipped.length - 60] ^= 0xff;
    writeFileSync(pages, flipped);
    let message = await refusal(pages);
    assert.match(message, new RegExp(`^${pages}: not a valid cr process image: checksum mismatch \\(the image is corrupt\\); the half-restored process (\\d+) was killed$`));
    killedAsSaid(message);
    // The first byte of its tree record: what that breaks is reported as the damage it is.
    const records = s.path('records');
    const broken = Buffer.from(bytes);
    broken[24] ^= 0xff;
    writeFileSync(records, broken);
    assert.is(await refusal(records), `${records}: not a valid cr process image: checksum mismatch (the image is corrupt)`);
    // Written to after it was read: refused as it is restored.
    message = await refusal(image, () => appendFileSync(image, 'x'));
    assert.match(message, /changed while being restored \(written to since it was checked\): not an image at rest; the half-restored process (\d+) was killed$/);
    killedAsSaid(message);
    writeFileSync(image, bytes);
    quitsIntact(s.adopt((await restore(image, { detach: true })).pid), held);
  }));

/** A python3 program holding a System V segment (key argv[1], 1 MiB) and 40 MiB of random bytes; its segment id written to argv[2] once ready. */
const SHM_HOLDER = `
import ctypes, os, sys, time
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
sid = libc.shmget(int(sys.argv[1]), 1 << 20, 0o1000 | 0o600)
if sid < 0: sys.exit('shmget: errno %d' % ctypes.get_errno())
addr = libc.shmat(sid, None, 0)
ctypes.memset(addr, 0x5a, 1 << 20)
data = bytearray(os.urandom(40 << 20))
with open(sys.argv[2] + '.tmp', 'w') as f: f.write(str(sid))
os.rename(sys.argv[2] + '.tmp', sys.argv[2])
time.sleep(3600)
`;

test('a large image refused once its pages are in (its checksum, made as they went in): the System V segment the restart made again is removed with the husk', () =>
  scene(async (s) => {
    const key = 0x5eed0000 + (process.pid & 0xffff);
    /** The segment of that key now, as /proc/sysvipc/shm lists it (key and id in decimal), or undefined. */
    const segment = (): string | undefined => readFileSync('/proc/sysvipc/shm', 'latin1').split('\n').find((l) => l.trim().split(/\s+/)[0] === String(key));
    const remove = (): void => {
      const line = segment();
      if (line !== undefined) execFileSync('ipcrm', ['-m', line.trim().split(/\s+/)[1]!]);
    };
    remove();
    try {
      const ready = s.path('ready');
      const pid = s.spawn([PYTHON, '-c', SHM_HOLDER, String(key), ready]);
      waitUntil('the segment and the data to be made', () => text(ready) !== '', 30_000);
      const image = s.path('image');
      s.dumpAndKill(pid, image);
      // Gone since the dump: the restart makes it again.
      remove();
      const bytes = readFileSync(image);
      bytes[bytes.length - 60] ^= 0xff;
      writeFileSync(image, bytes);
      let message = '';
      try {
        s.adopt((await prepareRestore(image, { detach: true }).start()).pid);
      } catch (err) {
        assert.ok(err instanceof CrError && err.code === 2, String(err));
        message = err.message;
      }
      assert.match(message, /checksum mismatch \(the image is corrupt\); the half-restored process \d+ was killed$/);
      assert.is(segment(), undefined, 'the segment made again is left');
    } finally {
      remove();
    }
  }));

/** The VmFlags of the mapping starting at addr. */
function vmflags(pid: number, addr: string): string[] {
  const entry = readFileSync(`/proc/${pid}/smaps`, 'utf8').split(/\n(?=[0-9a-f]+-)/).find((e) => e.startsWith(`${addr}-`));
  return /VmFlags:(.*)/.exec(entry ?? '')?.[1]?.trim().split(' ') ?? [];
}

test('a locked mapping comes back locked and a sealed one sealed', () =>
  scene((s) => {
    const gate = s.mkfifo('gate');
    const ours = s.open(gate, 'r+');
    const ready = s.path('ready');
    const image = s.path('image');
    const pid = spawn([fixture('process-lockseal'), ready], { fds: [[ours, 0]] });
    s.adopt(pid);
    waitUntil('the fixture to lock and seal', () => text(ready).endsWith('\n'));
    const [locked, sealed] = text(ready).trim().split(' ').map((a) => a.replace(/^0x/, ''));
    s.dumpAndKill(pid, image);
    const again = s.restart(image);
    assert.ok(vmflags(again, locked!).includes('lo'), 'locked');
    assert.ok(vmflags(again, sealed!).includes('sl'), 'sealed');
    writeSync(ours, 'x');
    const end = reap(again, 10_000);
    assert.equal([end.kind, end.code], ['exited', 0], 'the locked text intact, the sealed page still not unmappable');
  }));

/** Copy an image through the reader and writer, changing its head on the way. */
function rewrite(from: string, to: string, change: (head: ProcessHead) => ProcessHead): void {
  const reader = ProcessImage.read(from);
  const writer = ProcessImageWriter.create(to, { force: false });
  try {
    writer.tree(reader.tree);
    writer.fds(reader.fdImage);
    writer.head(change(reader.head));
    for (const run of reader.pages()) writer.pages(run.mapping, run.addr, run.data);
    writer.commit();
  } finally {
    writer.abort();
  }
}

test('credentials: a process whose image names another user comes back as that user, still dumpable', () =>
  scene((s) => {
    chmodSync(s.dir, 0o755);
    const out = s.path('out');
    const stop = s.path('stop');
    const pid = s.spawn([fixture('process-counter'), out, stop]);
    waitUntil('the counter to count', () => lineCount(out) >= 100);
    s.dumpAndKill(pid, s.path('image'));
    const dumped = lineCount(out);
    // The process uid and the credentials must agree (docs/trust.md); root, the image's owner, may give any.
    const asNobody = { uid: [65534, 65534, 65534, 65534], gid: [65534, 65534, 65534, 65534], groups: [] };
    rewrite(s.path('image'), s.path('nobody'), (head) => ({ ...head, process: { ...head.process, uid: 65534 }, creds: asNobody }));
    const again = s.restart(s.path('nobody'));
    const status = readFileSync(`/proc/${again}/status`, 'latin1');
    assert.match(status, /^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
    assert.match(status, /^Gid:\s+65534\s+65534\s+65534\s+65534$/m);
    assert.match(status, /^Groups:\s*$/m);
    assert.match(status, /^CapEff:\s+0+$/m);
    assert.is(statSync(`/proc/${again}`).uid, 65534, 'dumpable: /proc/PID belongs to the user');
    // Its fds were opened before the change: it goes on writing to a file only root may write.
    waitUntil('the restarted counter to count on', () => lineCount(out) >= dumped + 100);
    writeFileSync(stop, '');
    const end = reap(again, 10_000);
    assert.equal([end.kind, end.code], ['exited', 0]);
    assert.is(numbers(out).findIndex((n, i) => n !== i + 1), -1);
  }));

test('an interval timer keeps ticking after restart, into its SIGALRM handler', () =>
  scene((s) => {
    const out = s.path('out');
    const src = `import signal, sys
out = open(sys.argv[1], 'a', buffering=1)
signal.signal(signal.SIGALRM, lambda *a: out.write('tick\\n'))
signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
while True:
    signal.pause()
`;
    const pid = s.spawn([PYTHON, '-c', src, out]);
    waitUntil('three ticks', () => lineCount(out) >= 3);
    const image = s.path('image');
    s.dumpAndKill(pid, image);
    const timers = ProcessImage.read(image).head.itimers;
    assert.is(timers[0]!.intervalUs, 50_000);
    const ticks = lineCount(out);
    s.restart(image);
    waitUntil('three more ticks', () => lineCount(out) >= ticks + 3);
  }));

/** The registers the image holds: orig_rax and rax say which syscall it was stopped in, and how. */
function imageSyscall(image: string): { nr: bigint; rax: bigint } {
  const regs = decodeRegs(ProcessImage.read(image).head.regs);
  return { nr: regs.orig_rax, rax: regs.rax };
}

const SYS_clock_nanosleep = 230;
const SYS_restart_syscall = 219;
const ERESTART_RESTARTBLOCK = -516n;

test('a sleep interrupted by the dump (restart block) restarts after restart and completes, without EINTR', () =>
  scene((s) => {
    const image = s.path('image');
    const pid = s.spawn([fixture('process-sleep'), '1000']);
    waitInSyscall(pid, SYS_clock_nanosleep);
    s.dumpAndKill(pid, image);
    assert.equal(imageSyscall(image), { nr: BigInt(SYS_clock_nanosleep), rax: ERESTART_RESTARTBLOCK });
    const end = reap(s.restart(image), 10_000);
    assert.equal([end.kind, end.code], ['exited', 0]);
  }));

test('a sleep already in restart_syscall at dump time gets EINTR after restart (docs/restart.md)', () =>
  scene((s) => {
    const image = s.path('image');
    const pid = s.spawn([fixture('process-sleep'), '2000']);
    waitInSyscall(pid, SYS_clock_nanosleep);
    // A first dump interrupts the sleep: the kernel resumes it through restart_syscall.
    checkpointProcess(pid, s.path('first'));
    waitInSyscall(pid, SYS_restart_syscall);
    s.dumpAndKill(pid, image);
    assert.equal(imageSyscall(image), { nr: BigInt(SYS_restart_syscall), rax: ERESTART_RESTARTBLOCK });
    const end = reap(s.restart(image), 10_000);
    assert.equal([end.kind, end.code], ['exited', 3]);
  }));

unprivilegedTest('a process of another user is dumped and comes back as that user, still dumpable', () =>
  scene((s) => {
    chmodSync(s.dir, 0o777);
    const out = s.path('out');
    const stop = s.path('stop');
    const image = s.path('image');
    const argv = [...asUser(NOBODY), PYTHON, readableCopy(join(FIXTURES, 'process-counter.py')), out, stop];
    const pid = s.spawn(argv);
    waitUntil('the counter to count', () => lineCount(out) >= 100);
    s.dumpAndKill(pid, image);
    const dumped = lineCount(out);
    const again = s.restart(image);
    const status = readFileSync(`/proc/${again}/status`, 'latin1');
    assert.match(status, /^Uid:\s+65534\s+65534\s+65534\s+65534$/m);
    assert.match(status, /^Gid:\s+65534\s+65534\s+65534\s+65534$/m);
    assert.match(status, /^Groups:\s*$/m);
    assert.is(statSync(`/proc/${again}`).uid, 65534);
    waitUntil('the restarted counter to count on', () => lineCount(out) >= dumped + 100);
    writeFileSync(stop, '');
    const end = reap(again, 10_000);
    assert.equal([end.kind, end.code], ['exited', 0]);
    assert.is(numbers(out).findIndex((n, i) => n !== i + 1), -1);
  }));

/** checkpointProcess's one-line refusal of pid, after which the process still runs and no image exists. */
function refusal(s: Scene, pid: number): string {
  const image = s.path('refused');
  let message = '';
  try {
    checkpointProcess(pid, image);
  } catch (err) {
    assert.instance(err, CrError);
    message = (err as Error).message;
  }
  assert.not.ok(existsSync(image));
  assert.not.match(message, /\n/);
  assert.match(readFileSync(`/proc/${pid}/status`, 'latin1'), /^State:\s+[RS]/m, 'running, not left stopped');
  assert.match(readFileSync(`/proc/${pid}/status`, 'latin1'), /^TracerPid:\s+0$/m);
  return message;
}

test('sockets (a child\'s too), a POSIX timer on another process\'s clock and a process that traces another are refused with one line each', () =>
  scene((s) => {
    const py = (code: string): number => {
      const ready = s.path(`ready-${code.length}`);
      const pid = s.spawn([PYTHON, '-c', `import mmap, socket, sys, time\n${code}\nopen(sys.argv[1], 'w').write('up')\ntime.sleep(60)`, ready]);
      waitUntil('the fixture to start', () => text(ready) === 'up');
      return pid;
    };
    assert.match(refusal(s, py('a = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)')), /^fd \d+ is a socket, which cr cannot dump/);
    // A child is a member of the tree dumped: its socket is named with its pid, after its parent's.
    // The child dies with the python process (PR_SET_PDEATHSIG), so killing the scene leaves no sleep.
    const parent = py("import ctypes, subprocess\na, b = (socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) for _ in range(2))\nc = subprocess.Popen(['sleep', '60'], pass_fds=[b.fileno()], preexec_fn=lambda: ctypes.CDLL(None).prctl(1, 9))");
    assert.match(refusal(s, parent), new RegExp(`^process ${parent}: fd \\d+ is a socket, [^;]*; process ${parent}: fd \\d+ is a socket, [^;]*; process (?!${parent}\\b)\\d+: fd \\d+ is a socket, [^;]*$`));
    // A timer on another process's CPU clock (its parent's, the test's): a clock restart cannot name.
    const timer = "import ctypes, os\nt = ctypes.c_void_p()\nassert ctypes.CDLL('libc.so.6').timer_create(ctypes.c_int(((~os.getppid()) << 3) | 2), None, ctypes.byref(t)) == 0";
    assert.match(refusal(s, py(timer)), /^process \d+'s POSIX timer 0 counts clock -\d+ \(another process's CPU time, say\), which cr cannot create again$/);
    const ready = s.path('tracer');
    const tracer = s.spawn([fixture('process-tracer'), ready]);
    waitUntil('the tracer to attach', () => text(ready).startsWith('tracing'));
    const child = Number(text(ready).split(' ')[1]);
    // The tracee is its child too, a member of the tree: named once, as what its tracer does.
    assert.is(refusal(s, tracer), `process ${tracer} traces pid ${child} with ptrace, which cr cannot carry over`);
    // A tracer with no child at all: its tracee alone makes waitid in it find someone to wait for.
    const tracee = s.spawn(['sleep', '60']);
    const ready2 = s.path('tracer2');
    const tracer2 = s.spawn([fixture('process-tracer'), ready2, String(tracee)]);
    waitUntil('the second tracer to attach', () => text(ready2).startsWith('tracing'));
    try {
      assert.is(refusal(s, tracer2), `process ${tracer2} traces pid ${tracee} with ptrace, which cr cannot carry over`);
    } finally {
      // Gone first: the tracee killed while traced would stay a zombie its tracer never waits for.
      ensureReaped(tracer2);
    }
  }));

test('every reason a process cannot be dumped whole is named at once, in one line, without offering --skip-unsupported', () =>
  scene((s) => {
    const ready = s.path('ready');
    // The child dies with the python process (PR_SET_PDEATHSIG); the thread starts after the fork.
    const src = `import ctypes, mmap, os, socket, subprocess, sys, threading, time
c = subprocess.Popen(['sleep', '60'], preexec_fn=lambda: ctypes.CDLL(None).prctl(1, 9))
a, b = (socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0) for _ in range(2))
d = os.pidfd_open(os.getppid())
m = mmap.mmap(-1, 4096)
threading.Thread(target=lambda: time.sleep(60), daemon=True).start()
open(sys.argv[1], 'w').write('up')
time.sleep(60)
`;
    const pid = s.spawn([PYTHON, '-c', src, ready]);
    waitUntil('the fixture to start', () => text(ready) === 'up');
    const message = refusal(s, pid);
    // Its thread is no reason, nor its child (a sleep: a member of the tree with nothing in the
    // way); every other reason is named, with the process it is of.
    assert.not.match(message, /thread|child process/);
    assert.match(message, new RegExp(`^process ${pid}: fd \\d+ is a socket, which cr cannot dump \\([^)]*\\); process ${pid}: fd \\d+ is a socket, `));
    assert.match(message, new RegExp(`; process ${pid}: fd \\d+ is a pidfd of pid \\d+, which is not a process of the dumped tree`));
    assert.not.match(message, /skip-unsupported|unusual flags/);
  }));

test('the image: fd table readable by the fd-table commands, pages streamed and checksummed, corruption refused before anything runs', () =>
  scene((s) => {
    const out = s.path('out');
    const stop = s.path('stop');
    const image = s.path('image');
    const pid = s.spawn([fixture('process-counter'), out, stop]);
    waitUntil('the counter to count', () => lineCount(out) >= 100);
    const result = s.dumpAndKill(pid, image);
    assert.ok(isProcessImage(readFileSync(image)));
    assert.is(statSync(image).size, result.bytes);
    assert.is(statSync(image).mode & 0o777, 0o600);
    const read = ProcessImage.read(image);
    const table = onlyProcess(read.fdImage.table);
    assert.equal(table.fds.map((f) => f.fd), [0, 1, 2, 3, 4, 5]);
    assert.equal(table.descs.filter((d) => d.kind === 'pipe').length, 2);
    let pages = 0;
    for (const run of read.pages()) pages += run.data.length / 4096;
    assert.is(pages, result.pages);
    assert.is(read.pageBytes, result.pages * 4096);
    // Flip one byte of the last page run: only the checksum at the end can tell, and it is
    // checked when the image is read, before any process exists.
    const bytes = readFileSync(image);
    bytes[bytes.length - 60] ^= 0xff;
    const bad = s.path('bad');
    writeFileSync(bad, bytes);
    assert.throws(() => ProcessImage.read(bad), (e: Error) => e instanceof CrError && e.code === 2 && /checksum mismatch \(the image is corrupt\)$/.test(e.message));
    assert.throws(() => ProcessImage.read(join(s.dir, 'missing')), /cannot read/);
    writeFileSync(bad, bytes.subarray(0, 1000));
    assert.throws(() => ProcessImage.read(bad), /not a valid cr process image: truncated/);
  }));

test('a process killed by an in-process dump (kill: true), with a thread, is left to its parent to reap, not held as the dump\'s traced zombie', () =>
  scene((s) => {
    // The dumped process is sh's child, not this one's: sh's wait returns only once the dump lets it go.
    const prog = `import threading, time\nthreading.Thread(target=time.sleep, args=(1000,)).start()\ntime.sleep(1000)`;
    s.spawn(['/bin/sh', '-c', `"$0" -c "$1" & p=$!; echo $p > "$2"; wait $p; echo $? > "$3"; exec sleep 1000`, PYTHON, prog, s.path('pid'), s.path('status')]);
    waitUntil('the pid', () => text(s.path('pid')).endsWith('\n'));
    const pid = Number(text(s.path('pid')));
    s.adopt(pid);
    waitUntil('two threads', () => existsSync(`/proc/${pid}/task`) && readdirSync(`/proc/${pid}/task`).length === 2);
    const result = checkpointProcess(pid, s.path('image'), { kill: true });
    assert.ok(result.bytes > 0);
    waitUntil('sh to reap it', () => text(s.path('status')).endsWith('\n'));
    assert.is(text(s.path('status')), '137\n', 'killed by SIGKILL');
    assert.not.ok(existsSync(`/proc/${pid}`));
  }));

test.run();
