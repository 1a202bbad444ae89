// The whole-process checkpoint and restart through the CLI: `dump` (whole by default), `restore
// IMAGE` alone (detached, waited for, --same-pid), and show, plan, diff and the fd-table restores
// on a whole-process image. The program is test/fixtures/process-counter.c: it counts into a file
// and through a pipe it holds both ends of, and exits 0 when told to stop only if every number it
// read back from the pipe was right.
import { spawn as spawnAsync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { reap, spawn } from '../bridge/spawn.js';
import { readImage } from '../src/image/format.js';
import { cr, CR } from './helpers/cli.js';
import { assertRunning, spawnFixture, waitFile } from './helpers/fdlayout.js';
import { ensureReaped, buildFixture } from './helpers/processes.js';

const COUNTER = buildFixture('process-counter');

const text = (path: string): string => (existsSync(path) ? readFileSync(path, 'utf8') : '');
const lineCount = (path: string): number => text(path).split('\n').length - 1;
const numbers = (path: string): number[] => text(path).trim().split('\n').map(Number);
const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 2));

/** Poll without blocking the event loop: cr may be running in this very process. */
async function waitUntil(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.unreachable(`timed out waiting for ${what}`);
    await tick();
  }
}

/** Processes of ours (cr's children when cr runs in this process) other than those given. */
function childrenOfOurs(): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid) out.push(Number(name));
    } catch {
      // gone
    }
  }
  return out;
}

interface Counter {
  dir: string;
  out: string;
  stop: string;
  image: string;
  /** the counter as dumped: its pid (killed since) and how far it had counted */
  pid: number;
  dumped: number;
  /** kill and reap this too at the end */
  adopt(pid: number): number;
}

/**
 * A counter, counted a little, dumped whole with `cr dump` (left stopped, so it counts no further)
 * and killed; fn then restarts it. Everything started is killed and reaped at the end.
 */
async function withDumpedCounter(fn: (c: Counter) => Promise<void>): Promise<void> {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-cli-process-')));
  const pids: number[] = [];
  try {
    const out = join(dir, 'out');
    const stop = join(dir, 'stop');
    const image = join(dir, 'image');
    const pid = spawn([COUNTER, out, stop], { fds: [] });
    pids.push(pid);
    await waitUntil('the counter to count', () => lineCount(out) >= 200);
    const r = await cr(['dump', '--pid', String(pid), '-o', image, '--leave-stopped']);
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stderr, '');
    assert.match(r.stdout, new RegExp(`^dumped pid ${pid} \\(prog-\\w+\\), the whole process: \\d+ mappings, \\d+ pages of memory .*, 3 fds, 3 descriptions, 1 pipe holding \\d+ bytes -> ${image} \\(.*\\) \\(process left stopped\\)\\n$`));
    ensureReaped(pid);
    await fn({ dir, out, stop, image, pid, dumped: lineCount(out), adopt: (p) => (pids.push(p), p) });
  } finally {
    for (const p of pids) ensureReaped(p);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The file the counter wrote: 1, 2, 3, ... with no gap and no repeat, further than `past`. */
function assertCountedOn(out: string, past: number): void {
  const all = numbers(out);
  assert.ok(all.length > past, `counted ${all.length}, not past ${past}`);
  const wrong = all.findIndex((n, i) => n !== i + 1);
  assert.is(wrong, -1, `line ${wrong + 1} is ${all[wrong]}: a gap or a repeat`);
}

test('dump a C counter whole, kill it, restore IMAGE --detach: it carries on from the next number', () =>
  withDumpedCounter(async (c) => {
    const r = await cr(['restore', c.image, '--detach']);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, /^\d+\n$/);
    const pid = c.adopt(Number(r.stdout));
    // Its pid is free again (it was killed): as root cr gives it back by default.
    assert.is(pid, c.pid, r.stderr);
    assert.match(r.stderr, new RegExp(`^cr restore: prog-\\w+ restarted as pid ${pid}, the pid it had when dumped\n$`));
    assertRunning(pid);
    await waitUntil('the restarted counter to count on', () => lineCount(c.out) >= c.dumped + 1000);
    writeFileSync(c.stop, '');
    const end = reap(pid, 10_000);
    assert.equal([end.kind, end.code], ['exited', 0], 'exit 0: every number it read back from its pipe was right');
    assertCountedOn(c.out, c.dumped + 1000);
  }));

/** `node cr.mjs restore IMAGE --pidfile F` as a process of its own; resolves with its exit status. */
function restoreWaiting(c: Counter): { pid: Promise<number>; ended: Promise<number | null>; kill(signal: NodeJS.Signals): void } {
  const pidfile = join(c.dir, `pid-${Date.now()}`);
  const child = spawnAsync(process.execPath, [CR, 'restore', c.image, '--pidfile', pidfile], { stdio: 'ignore' });
  const ended = new Promise<number | null>((resolve) => child.on('exit', (code, signal) => resolve(code ?? (signal ? -1 : null))));
  const pid = (async () => {
    await waitUntil('the pidfile', () => existsSync(pidfile));
    return c.adopt(Number(readFileSync(pidfile, 'utf8')));
  })();
  return { pid, ended, kill: (signal) => child.kill(signal) };
}

test('restore IMAGE without --detach: cr waits and exits with the process\'s status; a signal to cr reaches it', () =>
  withDumpedCounter(async (c) => {
    const run = restoreWaiting(c);
    try {
      const pid = await run.pid;
      await waitUntil('the restarted counter to count on', () => lineCount(c.out) >= c.dumped + 500);
      writeFileSync(c.stop, '');
      assert.is(await run.ended, 0, 'cr exits 0 as the counter did, every number read back right');
      assert.not.ok(existsSync(`/proc/${pid}`));
      assertCountedOn(c.out, c.dumped + 500);
    } finally {
      run.kill('SIGKILL');
    }
    rmSync(c.stop);
    const again = restoreWaiting(c);
    try {
      const pid = await again.pid;
      again.kill('SIGTERM');
      assert.is(await again.ended, 128 + 15, 'cr passed SIGTERM on and exits as the counter did: killed by it');
      assert.not.ok(existsSync(`/proc/${pid}`));
    } finally {
      again.kill('SIGKILL');
    }
  }));

test('--same-pid: the pid it had when it is free; a pid in use fails the restart with one line, nothing started', () =>
  withDumpedCounter(async (c) => {
    const r = await cr(['restore', c.image, '--detach', '--same-pid']);
    assert.is(r.code, 0, r.stderr);
    const pid = c.adopt(Number(r.stdout));
    assert.is(pid, c.pid);
    assert.match(r.stderr, new RegExp(`^cr restore: \\S+ restarted as pid ${pid}, the pid it had when dumped\\n$`));
    const before = childrenOfOurs();
    const busy = await cr(['restore', c.image, '--detach', '--same-pid']);
    assert.is(busy.code, 1, busy.stderr);
    assert.is(busy.stdout, '');
    assert.is(busy.stderr, `cr restore: --same-pid: pid ${pid} is in use; nothing was started\n`);
    assert.equal(childrenOfOurs(), before, 'a refused --same-pid left a process behind');
    writeFileSync(c.stop, '');
    const end = reap(pid, 10_000);
    assert.equal([end.kind, end.code], ['exited', 0]);
  }));

/** The signal lines of /proc/PID/status: ignored, caught and blocked sets. */
const dispositions = (pid: number): string[] =>
  readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').filter((l) => /^Sig(Ign|Cgt|Blk):/.test(l));

test('signal dispositions come back exactly: ignored, caught and default ones, glibc\'s 32 and 33 included', async () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-cli-process-signals-')));
  const ready = join(dir, 'ready');
  const program = [
    'import signal, sys, time',
    'signal.signal(signal.SIGUSR1, signal.SIG_IGN)',
    'signal.signal(signal.SIGUSR2, lambda *a: None)',
    'signal.signal(signal.SIGHUP, signal.SIG_IGN)',
    'open(sys.argv[1], "w").close()',
    'while True: time.sleep(0.05)',
  ].join('\n');
  const pids: number[] = [];
  try {
    const pid = spawn(['python3', '-S', '-c', program, ready], { fds: [] });
    pids.push(pid);
    await waitUntil('python to set its signals', () => existsSync(ready));
    const before = dispositions(pid);
    // SIGHUP (1) and SIGUSR1 (10) ignored (python itself ignores SIGPIPE and SIGXFSZ); 32 and
    // 33 not: a spawned process starts with every disposition at its default, those two too.
    const ignored = BigInt(`0x${before.find((l) => l.startsWith('SigIgn:'))!.split('\t')[1]}`);
    const bit = (sig: number): bigint => 1n << BigInt(sig - 1);
    assert.is(ignored & (bit(1) | bit(10)), bit(1) | bit(10), before.join(' '));
    assert.is(ignored & (bit(32) | bit(33)), 0n, before.join(' '));
    const image = join(dir, 'image');
    const d = await cr(['dump', '--pid', String(pid), '-o', image]);
    assert.is(d.code, 0, d.stderr);
    ensureReaped(pid);
    const r = await cr(['restore', image, '--detach']);
    assert.is(r.code, 0, r.stderr);
    const restarted = Number(r.stdout);
    pids.push(restarted);
    assert.equal(dispositions(restarted), before);
  } finally {
    for (const p of pids) ensureReaped(p);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('show, plan and diff read a whole-process image; restore -- CMD takes its fd table', () =>
  withDumpedCounter(async (c) => {
    const show = await cr(['show', c.image]);
    assert.is(show.code, 0, show.stderr);
    assert.match(show.stdout, /^whole process: \d+ mappings, [\d.]+ KiB of pages in the image; executable \S+prog-\w+, cwd \//m);
    assert.match(show.stdout, /^registers: saved \(rip 0x[0-9a-f]+, rsp 0x[0-9a-f]+\), \d+ bytes of FPU\/vector state; 0 pending signals/m);
    assert.match(show.stdout, /^ +0 +pipe +read /m);
    const plan = await cr(['plan', c.image]);
    assert.is(plan.code, 0, plan.stderr);
    assert.match(plan.stdout, /^plan: \d+ ops .* for 3 fds, 3 descriptions, 1 pipes$/m);
    // The same table, dumped whole and fd table only: diff finds no difference.
    const json = await cr(['show', c.image, '--json']);
    const tableFile = join(c.dir, 'table.json');
    writeFileSync(tableFile, json.stdout);
    const diff = await cr(['diff', c.image, tableFile]);
    assert.is(diff.code, 0, diff.stdout + diff.stderr);
    assert.match(diff.stdout, /^same: .* \(3 fds, 3 descriptions, 1 pipe\)\n$/);
    // The counter, started with no fds, holds its pipe at 0 (read) and 1 (write), its file at 2:
    // sh reads the queued numbers (8 bytes each) from fd 0 once the write end is closed.
    const fresh = await cr(['restore', c.image, '--', 'sh', '-c', 'exec 1>&-; n=$(wc -c); test $n -gt 0 && exit $((n % 8 + 40))']);
    assert.is(fresh.code, 40, fresh.stderr);
  }));

test('refused with exit 2 and one line: an fd-table image to restore IMAGE alone; --skip-unsupported without --fds-only', () =>
  withDumpedCounter(async (c) => {
    const fdsOnly = join(c.dir, 'fds.img');
    const pid = c.adopt(spawn([COUNTER, join(c.dir, 'out2'), c.stop], { fds: [] }));
    await waitUntil('the second counter to count', () => lineCount(join(c.dir, 'out2')) >= 10);
    let r = await cr(['dump', '--fds-only', '--pid', String(pid), '-o', fdsOnly]);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, /^dumped pid \d+ .* \(fd table only\) \(the process runs on\)\n$/);
    const before = childrenOfOurs();
    r = await cr(['restore', fdsOnly]);
    assert.is(r.code, 2);
    assert.is(r.stdout, '');
    assert.is(r.stderr, `cr restore: ${fdsOnly} holds an fd table only (dump --fds-only): restore it with -- CMD or --into PID; restore IMAGE alone needs a whole-process image\n`);
    assert.equal(childrenOfOurs(), before);
    r = await cr(['dump', '--pid', String(pid), '-o', join(c.dir, 'x.img'), '--skip-unsupported']);
    assert.is(r.code, 2);
    assert.match(r.stderr, /^cr dump: --skip-unsupported is for --fds-only: [^\n]+\n$/);
    assert.not.ok(existsSync(join(c.dir, 'x.img')));
    r = await cr(['restore', c.image, '--same-pid', '--', 'true']);
    assert.is(r.code, 2);
    assertRunning(pid);
  }));

test('a truncated whole-process image: restore, restore -- CMD and show refuse it with exit 2, no process left behind', () =>
  withDumpedCounter(async (c) => {
    const size = statSync(c.image).size;
    for (const keep of [100, size - 5000, size - 1]) {
      const cut = join(c.dir, `cut-${keep}`);
      writeFileSync(cut, readFileSync(c.image));
      truncateSync(cut, keep);
      const before = childrenOfOurs();
      for (const args of [['restore', cut], ['restore', cut, '--detach'], ['restore', cut, '--', 'true'], ['show', cut], ['plan', cut]]) {
        const r = await cr(args);
        assert.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, /^cr \w+: [^\n]*not a valid cr process image: [^\n]+\n$/, args.join(' '));
        assert.is(r.stdout, '');
        const killed = /the half-restored process (\d+) was killed/.exec(r.stderr)?.[1];
        if (killed) assert.not.ok(existsSync(`/proc/${killed}`), `pid ${killed} is still there`);
        assert.equal(childrenOfOurs(), before, `${args.join(' ')} left a process behind`);
      }
    }
  }));

test('dump --kill: the process is killed once the image is complete, and the image restarts it; a refused dump kills nothing', async () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-cli-process-kill-')));
  const pids: number[] = [];
  try {
    const out = join(dir, 'out');
    const stop = join(dir, 'stop');
    const pid = spawn([COUNTER, out, stop], { fds: [] });
    pids.push(pid);
    await waitUntil('the counter to count', () => lineCount(out) >= 100);
    const image = join(dir, 'image');
    const r = await cr(['dump', '--pid', String(pid), '-o', image, '--kill']);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, / \(process killed\)\n$/);
    const end = reap(pid, 5000);
    assert.equal([end.kind, end.signal], ['signaled', 9], 'killed by SIGKILL');
    const counted = lineCount(out);
    const back = await cr(['restore', image, '--detach']);
    assert.is(back.code, 0, back.stderr);
    const restarted = Number(back.stdout);
    pids.push(restarted);
    await waitUntil('the restarted counter to count on', () => lineCount(out) >= counted + 100);
    writeFileSync(stop, '');
    const done = reap(restarted, 10_000);
    assert.equal([done.kind, done.code], ['exited', 0], 'every number it read back from its pipe was right');
    assertCountedOn(out, counted + 100);
    // Both at once make no sense; a dump that fails kills nothing.
    const both = await cr(['dump', '--pid', String(restarted), '-o', join(dir, 'x'), '--kill', '--leave-stopped']);
    assert.is(both.code, 2);
    const sockets = spawnFixture('unsupported', dir);
    pids.push(sockets);
    waitFile(dir, 'ready');
    const refused = await cr(['dump', '--pid', String(sockets), '-o', join(dir, 'sockets.img'), '--kill']);
    assert.is(refused.code, 1, refused.stderr);
    assertRunning(sockets);
  } finally {
    for (const p of pids) ensureReaped(p);
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The syscall each thread of pid is in (/proc/PID/task/TID/syscall's first field), sorted. */
function threadSyscalls(pid: number): string[] {
  // A running thread's file is `running` and a newline, no space: trimmed, or it never equals `running`.
  return readdirSync(`/proc/${pid}/task`).map((tid) => readFileSync(`/proc/${pid}/task/${tid}/syscall`, 'utf8').trim().split(' ')[0]!).sort();
}

test('a multi-threaded process (threads in read, sleep and a futex wait) is dumped whole and restarted with every thread back in its call', async () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-cli-process-threads-')));
  const pid = spawnFixture('threads', dir);
  const pids = [pid];
  try {
    waitFile(dir, 'ready');
    const image = join(dir, 'image');
    // The fd table alone: every thread is frozen while it is read.
    const fds = await cr(['dump', '--fds-only', '--pid', String(pid), '-o', image]);
    assert.is(fds.code, 0, fds.stderr);
    assert.ok([3, 5].every((fd) => readImage(image).table.processes[0]!.fds.some((f) => f.fd === fd)), 'the pipes the threads hold, at fds 3 and 5');
    assertRunning(pid);
    // Let go, each thread re-enters its call when it next gets a CPU: until then /proc says
    // `running` (a bound, not a timing: a loaded machine may take a while).
    await waitUntil('every thread back in its call after the fd-table dump', () => !threadSyscalls(pid).includes('running'), 60_000);
    const calls = threadSyscalls(pid);
    assert.is(calls.length, 4);
    const r = await cr(['dump', '--pid', String(pid), '-o', image, '--force', '--kill']);
    assert.is(r.code, 0, r.stderr);
    reap(pid, 5000);
    const back = await cr(['restore', image, '--detach']);
    assert.is(back.code, 0, back.stderr);
    const restarted = Number(back.stdout);
    pids.push(restarted);
    // Each thread goes back into the call it was in (a sleep restarts from its full length).
    // (A bound, not a timing: a loaded machine may take a while to run four threads into their calls.)
    await waitUntil('every thread in its call again', () => threadSyscalls(restarted).join() === calls.join(), 60_000);
    for (const tid of readdirSync(`/proc/${restarted}/task`)) assertRunning(Number(tid));
  } finally {
    for (const p of pids) ensureReaped(p);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
