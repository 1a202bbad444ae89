// The rest of a process's state (docs/state.md): self-checking programs (test/fixtures/state-*)
// set one family of state up, check it, are dumped and restarted, and check it again, printing
// PASS or FAIL; each is run with a new pid and with --same-pid as root, and as uid 65534 through
// cr run as that user. And what the inventory cannot carry is refused at dump with one line.
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { reap, spawn } from '../bridge/spawn.js';
import { checkpointProcess } from '../src/checkpoint/checkpoint.js';
import { STATUS_FIELDS, VMFLAGS } from '../src/checkpoint/inventory.js';
import { CrError } from '../src/errors.js';
import { ProcessImage } from '../src/image/process-format.js';
import { restartProcess } from '../src/restart/restart.js';
import { restartTree } from '../src/restart/restart-tree.js';
import { crProcess, ROOT } from './helpers/cli.js';
import { buildC, ensureReaped, waitInSyscall, buildFixture } from './helpers/processes.js';
import { asUser, NOBODY, unprivilegedTest } from './helpers/unprivileged.js';

const SYS_read = 0;
const fixture = (name: string): string => buildFixture(name);
const text = (path: string): string => (existsSync(path) ? readFileSync(path, 'utf8') : '');
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const pause = new Int32Array(new SharedArrayBuffer(4));
function waitUntil(what: string, cond: () => boolean, timeoutMs = 10_000): void {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    Atomics.wait(pause, 0, 0, 10);
  }
}

/** Raises CAP_NET_RAW into its inheritable and ambient sets, then waits. */
const AMBIENT_C = `#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
  struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct d[2];
  if (syscall(SYS_capget, &h, d)) return 1;
  d[0].inheritable |= 1 << CAP_NET_RAW;
  if (syscall(SYS_capset, &h, d) || prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_RAW, 0, 0)) return 1;
  pause();
}
`;

/** Changes its root directory to argv[1], then waits. */
const CHROOT_C = `#include <unistd.h>
int main(int argc, char **argv) {
  if (argc < 2 || chroot(argv[1]) != 0) return 1;
  pause();
}
`;

/** Turns syscall user dispatch on (its selector letting every call through), then waits. */
const DISPATCH_C = `#include <sys/prctl.h>
#include <unistd.h>
static char selector = 0; /* SYSCALL_DISPATCH_FILTER_ALLOW */
int main(void) {
  if (prctl(59 /* PR_SET_SYSCALL_USER_DISPATCH */, 1 /* ON */, 0, 0, &selector)) return 1;
  pause();
}
`;

/** 'nobody, restarted by root': run and dumped as uid 65534 (the image its), restarted by root. */
type Mode = 'new pid' | 'same pid' | 'as nobody' | 'nobody, restarted by root';

/** pid and its descendants, parents first (/proc/PID/task/TID/children). */
function treeOf(pid: number): number[] {
  const kids = readdirSync(`/proc/${pid}/task`).flatMap((tid) => text(`/proc/${pid}/task/${tid}/children`).trim().split(/\s+/).filter(Boolean).map(Number));
  return [pid, ...kids.flatMap(treeOf)];
}

/**
 * Run a self-checking fixture (argv: gate FIFO, out file, extra...) across one restart in `mode`:
 * it must say PASS before the dump and after the restart, and exit 0. A fixture that forks is
 * dumped and restarted as a tree, each of its processes waiting for a byte of the gate.
 * `between(image, out)` runs after the dump, before the restart.
 */
function selfCheck(name: string, mode: Mode, extra: string[] = [], between?: (image: string, out: string) => void): void {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-state-')));
  const pids: number[] = [];
  let gate = -1;
  try {
    // Sticky where root restarts an image of uid 65534: no one else could have replaced it (docs/trust.md).
    chmodSync(dir, mode === 'nobody, restarted by root' ? 0o1777 : 0o777);
    const fifo = join(dir, 'gate');
    execFileSync('mkfifo', ['-m', '0666', fifo]);
    // Held open by the test: the program's open never blocks, and a byte written waits for it.
    gate = openSync(fifo, 'r+');
    const out = join(dir, 'out');
    const image = join(dir, 'image');
    const devnull = openSync('/dev/null', 'r+');
    const argv = [fixture(name), fifo, out, ...extra];
    const nobody = mode === 'as nobody' || mode === 'nobody, restarted by root';
    const pid = spawn(nobody ? [...asUser(NOBODY), ...argv] : argv, { fds: [[devnull, 0], [devnull, 1], [devnull, 2]] });
    closeSync(devnull);
    pids.push(pid);
    waitInSyscall(pid, SYS_read);
    assert.match(text(out), /^before: PASS\n$/, text(out));
    const members = treeOf(pid);
    for (const p of members) waitInSyscall(p, SYS_read);
    pids.push(...members.slice(1));
    if (mode === 'as nobody') {
      const dump = crProcess(['dump', '--pid', String(pid), '-o', image, '--kill'], { uid: NOBODY });
      assert.is(dump.code, 0, dump.stderr);
      between?.(image, out);
      writeSync(gate, 'c'.repeat(members.length));
      const restore = crProcess(['restore', image], { uid: NOBODY });
      assert.is(restore.code, 0, `${restore.stderr}${text(out)}`);
      // Only what needs CAP_CHECKPOINT_RESTORE (docs/restart.md) may be said: the executable link
      // stays cr's and the pids are new; and a System V segment made again gets the id the kernel
      // gives (root may ask for one).
      const expected = (l: string): boolean =>
        /\/proc\/PID\/exe/.test(l) || /System V shared memory segment \d+ is now segment \d+/.test(l) || /new pids, not the dumped ones: cr may not choose pids/.test(l);
      assert.equal(restore.stderr.split('\n').filter((l) => /warning/.test(l) && !expected(l)), [], restore.stderr);
    } else {
      if (members.length > 1) {
        // A tree's workers, killed, would go to whatever init the test runs under, which may never
        // reap them (the runner, as pid 1 of a pid namespace), their pids never free: the original
        // runs on to its end instead (its parent reaps its workers), which also checks the dump
        // took nothing from it; the restarted tree finds what it left (System V segments it
        // removed are made again).
        checkpointProcess(pid, image);
        writeSync(gate, 'c'.repeat(members.length));
        const first = reap(pid, 10_000);
        assert.equal([first.kind, first.code], ['exited', 0], text(out));
        assert.is(text(out), 'before: PASS\nafter: PASS\n', 'the original, run on after the dump');
        writeFileSync(out, 'before: PASS\n');
      } else if (nobody) {
        const dump = crProcess(['dump', '--pid', String(pid), '-o', image, '--kill'], { uid: NOBODY });
        assert.is(dump.code, 0, dump.stderr);
        reap(pid, 10_000);
      } else {
        checkpointProcess(pid, image, { kill: true });
        reap(pid, 10_000);
      }
      between?.(image, out);
      const read = ProcessImage.read(image);
      const samePid = mode === 'same pid';
      const again = read.tree.length > 1 ? restartTree(read, { samePid }) : { ...restartProcess(read, { samePid }), pids: [] };
      pids.push(again.pid, ...again.pids.map((p) => p.now));
      assert.equal(again.warnings, []);
      if (samePid) assert.is(again.pid, pid);
      writeSync(gate, 'c'.repeat(members.length));
      const end = reap(again.pid, 10_000);
      assert.equal([end.kind, end.code], ['exited', 0], text(out));
    }
    assert.is(text(out), 'before: PASS\nafter: PASS\n');
  } finally {
    for (const p of pids) ensureReaped(p);
    removeSegmentsOf(pids);
    removeIpcOf(join(dir, 'out.ipc'));
    if (gate >= 0) closeSync(gate);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The semaphore set and message queue state-sysvipc made (ids in `file`: a failed check leaves them behind), removed. */
function removeIpcOf(file: string): void {
  const [sem, msq] = text(file).trim().split(' ');
  if (sem === undefined || msq === undefined) return;
  for (const args of [['-s', sem], ['-q', msq]]) {
    try {
      execFileSync('ipcrm', args, { stdio: 'ignore' });
    } catch {
      // removed by the program, as it should be
    }
  }
}

/** System V segments these processes made (a failed check leaves them behind), removed. */
function removeSegmentsOf(pids: number[]): void {
  const lines = readFileSync('/proc/sysvipc/shm', 'latin1').trim().split('\n');
  const head = lines[0]!.trim().split(/\s+/);
  for (const line of lines.slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (!pids.includes(Number(cols[head.indexOf('cpid')]))) continue;
    try {
      execFileSync('ipcrm', ['-m', cols[head.indexOf('shmid')]!], { stdio: 'ignore' });
    } catch {
      // gone meanwhile
    }
  }
}

/**
 * Run fixture `name` (argv: gate FIFO, out file, extra...) to its gate and dump it while it runs on; fn gets
 * the process, the gate (a byte lets it check itself again), its out file and the image. The
 * process is reaped, `after(out)` called and the directory removed afterwards, whatever happened.
 */
function dumpedRunningOn(name: string, fn: (s: { pid: number; gate: number; out: string; image: string }) => void, extra: string[] = [], after?: (out: string) => void): void {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-state-')));
  const fifo = join(dir, 'gate');
  execFileSync('mkfifo', [fifo]);
  const gate = openSync(fifo, 'r+');
  const out = join(dir, 'out');
  const pid = spawn([fixture(name), fifo, out, ...extra], { fds: [] });
  try {
    waitInSyscall(pid, SYS_read);
    const image = join(dir, 'image');
    checkpointProcess(pid, image);
    fn({ pid, gate, out, image });
  } finally {
    ensureReaped(pid);
    after?.(out);
    closeSync(gate);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The one-line error a restart of image fails with; '' when it does not fail (the process it made is ended). */
function restartRefusal(image: string): string {
  let restarted: number;
  try {
    restarted = restartProcess(ProcessImage.read(image)).pid;
  } catch (err) {
    assert.instance(err, CrError);
    return (err as Error).message;
  }
  ensureReaped(restarted);
  return '';
}

test('attributes and memory-area flags (oom_score_adj, subreaper, pdeathsig, not dumpable, timer slack, THP, nice, madvise, mlock2, ...): new pid', () =>
  selfCheck('state-attributes', 'new pid', ['dumpable0']));

test('attributes and memory-area flags: --same-pid', () => selfCheck('state-attributes', 'same pid'));

unprivilegedTest('attributes and memory-area flags: dumped and restarted by cr as uid 65534', () => selfCheck('state-attributes', 'as nobody'));

test('file locks of all four kinds (flock, POSIX, OFD, lease) on their own descriptions: new pid', () => selfCheck('state-locks', 'new pid'));

test('file locks of all four kinds: --same-pid', () => selfCheck('state-locks', 'same pid'));

unprivilegedTest('file locks of all four kinds: dumped and restarted by cr as uid 65534', () => selfCheck('state-locks', 'as nobody'));

test('a lock another process holds at restart fails the restart in one line; the holder keeps its locks', () =>
  dumpedRunningOn('state-locks', ({ pid, gate, out, image }) => {
    // The original runs on, holding its locks.
    const message = restartRefusal(image);
    assert.match(message, /^fd \d+: its write flock lock conflicts with one another process holds now; the half-restored process (\d+) was killed$/);
    assert.not.ok(existsSync(`/proc/${/process (\d+) was killed/.exec(message)![1]}`));
    writeSync(gate, 'c');
    const end = reap(pid, 10_000);
    assert.equal([end.kind, end.code], ['exited', 0], text(out));
    assert.is(text(out), 'before: PASS\nafter: PASS\n');
  }));

test('shared anonymous memory (an object mapped twice, /dev/zero, a page only the object holds): new pid', () => selfCheck('state-shmem', 'new pid'));

test('shared anonymous memory: --same-pid', () => selfCheck('state-shmem', 'same pid'));

unprivilegedTest('shared anonymous memory: dumped and restarted by cr as uid 65534', () => selfCheck('state-shmem', 'as nobody'));

test('a tree sharing memory (a parent and 2 workers: MAP_SHARED|MAP_ANONYMOUS, /dev/zero, System V segments, one marked for removal) and pidfds (of a worker, of itself): new pids', () =>
  selfCheck('state-tree-shmem', 'new pid'));

test('a tree sharing memory and pidfds: --same-pid', () => selfCheck('state-tree-shmem', 'same pid'));

unprivilegedTest('a tree sharing memory and pidfds: dumped and restarted by cr as uid 65534', () => selfCheck('state-tree-shmem', 'as nobody'));

test('shared anonymous memory and a pidfd of a process outside the tree are refused in one line naming it', () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-state-')));
  const ready = join(dir, 'ready');
  // The child, which shares the mapping with its parent, says its pid and dies with the parent.
  const src = `import ctypes, mmap, os, sys, time
m = mmap.mmap(-1, 4096)
if os.fork() == 0:
    ctypes.CDLL(None).prctl(1, 9)
    pidfd = os.pidfd_open(os.getppid())
    open(sys.argv[1], 'w').write(str(os.getpid()))
time.sleep(60)
`;
  const parent = spawn([existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3', '-c', src, ready], { fds: [] });
  try {
    const deadline = Date.now() + 10_000;
    while (text(ready) === '' && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    const child = Number(text(ready));
    assert.ok(child > 0);
    let message = '';
    try {
      checkpointProcess(child, join(dir, 'image'));
    } catch (err) {
      assert.instance(err, CrError);
      message = (err as Error).message;
    }
    assert.match(message, new RegExp(`^mapping [0-9a-f]+-[0-9a-f]+ /dev/zero \\(deleted\\): shared anonymous memory shared with pid ${parent}, which cr cannot carry over; fd \\d+ is a pidfd of pid ${parent}, which is not a process of the dumped tree$`));
    assert.not.ok(existsSync(join(dir, 'image')));
  } finally {
    ensureReaped(parent);
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A System V key of this run's own: two runs at once never meet on one. */
const sysvKey = (): string => `0x${(0x5e000000 + ((process.pid & 0xfff) << 12) + Math.floor(Math.random() * 0x1000)).toString(16)}`;

/** Remove the set and queue state-sysvipc made (ids in OUT.ipc), as an administrator would between dump and restart. */
const removeBoth = (_image: string, out: string): void => {
  const [sem, msq] = text(`${out}.ipc`).trim().split(' ');
  execFileSync('ipcrm', ['-s', sem!, '-q', msq!]);
};

/** How many message queues uid has now (/proc/sysvipc/msg). */
const queuesOf = (uid: number): number => {
  const lines = readFileSync('/proc/sysvipc/msg', 'latin1').trim().split('\n');
  const head = lines[0]!.trim().split(/\s+/);
  return lines.slice(1).filter((l) => Number(l.trim().split(/\s+/)[head.indexOf('uid')]) === uid).length;
};

test('System V semaphores and message queues the process used (a keyed set, a private queue of 3 messages): found again by id: new pid', () => selfCheck('state-sysvipc', 'new pid', [sysvKey()]));

test('System V semaphores and message queues: --same-pid', () => selfCheck('state-sysvipc', 'same pid', [sysvKey()]));

unprivilegedTest('System V semaphores and message queues: dumped and restarted by cr as uid 65534', () => selfCheck('state-sysvipc', 'as nobody', [sysvKey()]));

test('System V semaphores and message queues removed between dump and restart: made again, same key and ids, values, messages, limit, mode, owner: new pid', () =>
  selfCheck('state-sysvipc', 'new pid', [sysvKey()], removeBoth));

test('System V semaphores and message queues removed between dump and restart: --same-pid', () => selfCheck('state-sysvipc', 'same pid', [sysvKey()], removeBoth));

unprivilegedTest('System V semaphores and message queues of uid 65534, removed: refused in one line to cr as uid 65534 (it may not choose ids), nothing left; made again by root as that user\'s', () =>
  selfCheck('state-sysvipc', 'nobody, restarted by root', [sysvKey()], (image, out) => {
    removeBoth(image, out);
    const queues = queuesOf(NOBODY);
    const r = crProcess(['restore', image], { uid: NOBODY });
    assert.is(r.code, 2, r.stderr);
    assert.match(r.stderr, /System V message queue \d+, which process \d+ used: gone, and made again the kernel gave it id \d+: choosing the id needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN \(kernel\.msg_next_id\); a program that kept the id would find none under it, so it was removed again; the half-restored process \d+ was killed\n$/);
    assert.is(queuesOf(NOBODY), queues, 'the queue made under another id is gone again');
  }));

test('a System V semaphore set whose key another set holds at restart: refused in one line before anything starts', () => {
  const key = sysvKey();
  let other = -1;
  dumpedRunningOn(
    'state-sysvipc',
    ({ pid, out, image }) => {
      try {
        const sem = text(`${out}.ipc`).trim().split(' ')[0]!;
        execFileSync('ipcrm', ['-s', sem]);
        other = Number(execFileSync(PYTHON, ['-c', `import ctypes; print(ctypes.CDLL(None).semget(${key}, 1, 0o1600))`], { encoding: 'utf8' }).trim());
        assert.ok(other >= 0);
        assert.is(restartRefusal(image), `System V semaphore set ${sem} (key 0x${Number(key).toString(16).padStart(8, '0')}), which process ${pid} used: its key is now semaphore set ${other}'s, another one; remove that one (ipcrm -s ${other}) if the process should get its own again`);
      } finally {
        if (other >= 0) execFileSync('ipcrm', ['-s', String(other)]);
      }
    },
    [key],
    // Whatever the program made, even when the dump failed.
    (out) => removeIpcOf(`${out}.ipc`),
  );
});

test('POSIX timers (ids kept across a gap, three clocks, signal, none, thread) and setitimer, time left kept: new pid', () => selfCheck('state-timers', 'new pid'));

test('POSIX timers and setitimer: --same-pid', () => selfCheck('state-timers', 'same pid'));

unprivilegedTest('POSIX timers and setitimer: dumped and restarted by cr as uid 65534', () => selfCheck('state-timers', 'as nobody'));

test('System V shared memory (a keyed segment, a removed one attached twice, a kept private one): new pid', () =>
  selfCheck('state-sysvshm', 'new pid', [sysvKey()]));

test('System V shared memory: --same-pid', () => selfCheck('state-sysvshm', 'same pid', [sysvKey()]));

unprivilegedTest('System V shared memory: dumped and restarted by cr as uid 65534', () => selfCheck('state-sysvshm', 'as nobody', [sysvKey()]));

test('one program holding a piece of every family at once: new pid', () => selfCheck('state-all', 'new pid'));

test('one program holding a piece of every family at once: --same-pid', () => selfCheck('state-all', 'same pid'));

unprivilegedTest('one program holding a piece of every family at once: dumped and restarted by cr as uid 65534', () => selfCheck('state-all', 'as nobody'));

test('the inventory refuses at dump, in one line each, what cr does not carry: another namespace, another root directory, syscall user dispatch, capabilities its uid does not give', () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-state-')));
  const pids: number[] = [];
  const refusal = (argv: string[]): string => {
    const pid = spawn(argv, { fds: [] });
    pids.push(pid);
    waitInSyscall(pid, [SYS_read, 34, 35, 230]);
    let message = '';
    try {
      checkpointProcess(pid, join(dir, 'image'));
    } catch (err) {
      assert.instance(err, CrError);
      message = (err as Error).message;
    }
    assert.not.ok(existsSync(join(dir, 'image')));
    assert.match(readFileSync(`/proc/${pid}/status`, 'latin1'), /^TracerPid:\s+0$/m);
    return message;
  };
  try {
    assert.match(refusal(['unshare', '--uts', 'sleep', '60']), /^process \d+ is in uts namespace other than cr's, which cr does not carry$/);
    const jail = join(dir, 'jail');
    mkdirSync(jail);
    assert.match(refusal([buildC(CHROOT_C), jail]), new RegExp(`^process \\d+ has the root directory "${jail}" \\(chroot\\) where cr has "/", which cr does not carry$`));
    assert.match(refusal([buildC(DISPATCH_C)]), /^process \d+ has syscall user dispatch on \(PR_SET_SYSCALL_USER_DISPATCH\), which cr does not carry$/);
    assert.match(refusal([buildC(AMBIENT_C)]), /inheritable capabilities \(0+2000\), which cr does not carry; .*ambient capabilities \(0+2000\), which cr does not carry$/);
  } finally {
    for (const p of pids) ensureReaped(p);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('docs/state.md names every /proc/PID/status field and VmFlags code the inventory knows', () => {
  const doc = readFileSync(join(ROOT, 'docs', 'state.md'), 'utf8');
  const missing = [...Object.keys(STATUS_FIELDS), ...Object.keys(VMFLAGS)].filter((name) => !doc.includes(`\`${name}\``));
  assert.equal(missing, []);
});


test('restore --detach leaves a parent-death signal unset, saying so, rather than have it kill the process as cr exits', () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-state-')));
  const pids: number[] = [];
  try {
    const out = join(dir, 'out');
    const go = join(dir, 'go');
    // Its parent-death signal is SIGUSR1, whose handler writes down that it came; once `go`
    // exists it writes the signal it still has, and exits.
    const src = `import ctypes, os, signal, sys, time
signal.signal(signal.SIGUSR1, lambda *a: open(sys.argv[1], 'a').write('parent-death\\n'))
libc = ctypes.CDLL(None)
libc.prctl(1, signal.SIGUSR1)
open(sys.argv[1], 'a').write('up\\n')
while not os.path.exists(sys.argv[2]):
    time.sleep(0.01)
v = ctypes.c_int()
libc.prctl(2, ctypes.byref(v))
open(sys.argv[1], 'a').write(f'pdeathsig {v.value}\\n')
`;
    const pid = spawn([PYTHON, '-c', src, out, go], { fds: [] });
    pids.push(pid);
    waitUntil('the program to start', () => text(out) === 'up\n');
    const image = join(dir, 'image');
    const dump = crProcess(['dump', '--pid', String(pid), '-o', image, '--kill']);
    assert.is(dump.code, 0, dump.stderr);
    reap(pid, 10_000);
    const restore = crProcess(['restore', image, '--detach']);
    assert.is(restore.code, 0, restore.stderr);
    pids.push(Number(restore.stdout.trim().split('\n').pop()));
    assert.match(restore.stderr, /warning: the parent-death signal 10 is not set: its parent is cr, which exits now \(--detach\)/);
    writeFileSync(go, '');
    waitUntil('the restored program to answer', () => text(out).includes('pdeathsig'));
    assert.is(text(out), 'up\npdeathsig 0\n');
  } finally {
    for (const p of pids) if (p > 0) ensureReaped(p);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
