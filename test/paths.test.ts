// What a path opens at restore must still be the kind the image says (docs/restore.md, "What a
// path opens"): a FIFO path that became a regular file, a directory, a socket or a cgroup file, a
// file that became a directory or a FIFO, a device path that became a file or another device. Each
// is refused in every mode (a new process, --into with and without --exact, a whole-process
// restart), after the target opened the path and before anything went through the fd: the file
// keeps every byte, the new process is gone, a --into target has its table and runs on.
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, readlinkSync, realpathSync, rmdirSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeFd, openFile } from '../bridge/file.js';
import { pipe2 } from '../bridge/pipe.js';
import { spawn } from '../bridge/spawn.js';
import { freeze, thaw } from '../src/task/freeze.js';
import { Injector } from '../src/inject/injector.js';
import { fileAt, mismatch, OPENED_SCRATCH_BYTES } from '../src/inject/opened.js';
import { SYS } from '../src/inject/syscalls.js';
import { O_LARGEFILE, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY, type Desc, type DescFields, type FdTable, oneProcess } from '../src/model/fdtable.js';
import { listFds } from '../src/proc/fds.js';
import { cr } from './helpers/cli.js';
import { assertRunning } from './helpers/fdlayout.js';
import { ensureReaped, waitInSyscall } from './helpers/processes.js';
import { tableJson } from '../src/model/json.js';

const SYS_clock_nanosleep = 230;
const SYS_nanosleep = 35;
const BYTES = 'bytes the image queued in its FIFO\n';
const FILE_TEXT = 'the file that took the FIFO\'s place: not one byte may change\n';
const NULL_RDEV = statSync('/dev/null').rdev;

const tempDir = (): string => realpathSync(mkdtempSync(join(tmpdir(), 'cr-paths-')));
const fdLinks = (pid: number): string[] => listFds(pid).map((fd) => `${fd} ${readlinkSync(`/proc/${pid}/fd/${fd}`)}`);
const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** One description at fd 3 (and, for a FIFO, its queued bytes), limit 1024. */
function oneDesc(desc: DescFields, data = ''): FdTable {
  return {
    fds: [{ fd: 3, desc: 0, cloexec: false }],
    descs: [{ id: 0, ...desc } as Desc],
    pipes: desc.kind === 'fifo' ? [{ id: 0, capacity: 65536, data: Buffer.from(data) }] : [],
    rlimit: { soft: 1024, hard: 1024 },
  };
}

const fifoTable = (path: string): FdTable => oneDesc({ kind: 'fifo', flags: O_RDONLY | O_LARGEFILE, pipe: 0, path }, BYTES);

/** A sleep holding /dev/null at 0, 1, 2, asleep, for --into; killed after fn. */
async function withSleeper(fn: (pid: number) => Promise<void>): Promise<void> {
  const devNull = openFile('/dev/null', O_RDWR);
  let pid = 0;
  try {
    pid = spawn(['/bin/sleep', '1000'], { fds: [[devNull, 0], [devNull, 1], [devNull, 2]] });
    waitInSyscall(pid, [SYS_clock_nanosleep, SYS_nanosleep]);
    await fn(pid);
  } finally {
    closeFd(devNull);
    if (pid > 0) ensureReaped(pid);
  }
}

/** A process cr says it killed must be gone. */
function assertKilled(stderr: string): void {
  const pid = Number(/(?:pid|process) (\d+)(?: \([^)]*\))? was killed/.exec(stderr)?.[1]);
  assert.ok(pid > 0, `no killed process named in: ${stderr}`);
  let alive = true;
  try {
    readFileSync(`/proc/${pid}/status`);
  } catch {
    alive = false;
  }
  assert.not.ok(alive, `pid ${pid} is still there`);
}

/**
 * Restore `table` in a new process, into a live one (with and without --exact): each refused with
 * exit 2 and one line naming fd 3, the path and `why`, the new process killed, the live one as it was.
 */
async function refusedEverywhere(file: string, table: FdTable, why: string): Promise<void> {
  writeFileSync(file, tableJson(oneProcess(table, 1)));
  const path = (table.descs[0] as { path: string }).path;
  const line = (tail: string): RegExp => new RegExp(`^cr restore: fd 3: "${escape(path)}" now opens ${why}; refused before anything was written through it; ${tail}\\n$`);
  // --detach: were the path not refused, the test must not wait for the sleep.
  const fresh = await cr(['restore', file, '--detach', '--', '/bin/sleep', '1000']);
  if (fresh.code === 0) ensureReaped(Number(fresh.stdout.trim()));
  assert.is(fresh.code, 2, fresh.stderr);
  assert.match(fresh.stderr, line('pid \\d+ \\(/bin/sleep\\) was killed'));
  assertKilled(fresh.stderr);
  await withSleeper(async (pid) => {
    const before = fdLinks(pid);
    for (const exact of [[], ['--exact']]) {
      const r = await cr(['restore', file, '--into', String(pid), ...exact]);
      assert.is(r.code, 2, r.stderr);
      assert.match(r.stderr, line(`rolled back: pid ${pid}'s fd table is as it was`), r.stderr);
      assert.equal(fdLinks(pid), before);
      assertRunning(pid);
    }
  });
}

let cgroup: string | null = null;
/** A pids cgroup of the test's own, or null where cr cannot make one; no process is ever put in it. */
function testCgroup(): string | null {
  const dir = `/sys/fs/cgroup/pids/cr-paths-${process.pid}`;
  try {
    mkdirSync(dir);
    return (cgroup = dir);
  } catch {
    return null;
  }
}

test('a FIFO path that became a regular file, a directory, a socket or a cgroup file is refused, nothing written', async () => {
  const dir = tempDir();
  try {
    const file = join(dir, 'fifo');
    writeFileSync(file, FILE_TEXT);
    const mtime = statSync(file).mtimeMs;
    await refusedEverywhere(join(dir, 'a.json'), fifoTable(file), 'a regular file, not a FIFO');
    assert.is(readFileSync(file, 'utf8'), FILE_TEXT);
    assert.is(statSync(file).mtimeMs, mtime);

    const sub = join(dir, 'dir');
    mkdirSync(sub);
    await refusedEverywhere(join(dir, 'b.json'), fifoTable(sub), 'a directory, not a FIFO');

    const sock = join(dir, 'sock');
    execFileSync('python3', ['-c', 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', sock]);
    await refusedEverywhere(join(dir, 'c.json'), fifoTable(sock), 'a socket, not a FIFO');

    // pids.max stands for cgroup.procs: the image's bytes written there would change it.
    const cg = testCgroup();
    if (cg) {
      const max = join(cg, 'pids.max');
      const was = readFileSync(max, 'utf8');
      await refusedEverywhere(join(dir, 'd.json'), { ...fifoTable(max), pipes: [{ id: 0, capacity: 65536, data: Buffer.from('7\n') }] }, 'a regular file, not a FIFO');
      assert.is(readFileSync(max, 'utf8'), was);
    } else {
      console.log('  (no pids cgroup could be made here: the cgroup case was not run)');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file that became a directory or a FIFO, a device path that became a file or another device: refused', async () => {
  const dir = tempDir();
  try {
    const sub = join(dir, 'was-a-file');
    mkdirSync(sub);
    await refusedEverywhere(join(dir, 'a.json'), oneDesc({ kind: 'file', flags: O_RDONLY | O_LARGEFILE, path: sub, offset: 0 }), 'a directory, not a regular file');

    // Nobody writes to this FIFO: an open that waited for a writer (or reader) would never return.
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    for (const flags of [O_RDONLY, O_WRONLY]) {
      await refusedEverywhere(join(dir, 'b.json'), oneDesc({ kind: 'file', flags: flags | O_LARGEFILE, path: fifo, offset: 0 }), 'a FIFO, not a regular file');
    }

    const notNull = join(dir, 'null');
    writeFileSync(notNull, '');
    await refusedEverywhere(join(dir, 'c.json'), oneDesc({ kind: 'chr', flags: O_WRONLY | O_LARGEFILE, path: notNull, rdev: NULL_RDEV }), 'a regular file, not a character device');
    assert.is(readFileSync(notNull, 'utf8'), '');
    await refusedEverywhere(join(dir, 'd.json'), oneDesc({ kind: 'chr', flags: O_WRONLY | O_LARGEFILE, path: '/dev/zero', rdev: NULL_RDEV }), 'a character device 1:5, not 1:3');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a file replaced by another regular file is restored (moved or rotated), with its flags as planned', async () => {
  const dir = tempDir();
  try {
    const log = join(dir, 'log');
    writeFileSync(log, 'the file at dump time\n');
    const table = oneDesc({ kind: 'file', flags: O_WRONLY | O_LARGEFILE, path: log, offset: 4 });
    const file = join(dir, 't.json');
    writeFileSync(file, tableJson(oneProcess(table, 1)));
    rmSync(log);
    writeFileSync(log, 'another file now\n');
    const r = await cr(['restore', file, '--detach', '--', '/bin/sleep', '1000']);
    assert.is(r.code, 0, r.stderr);
    const pid = Number(r.stdout.trim());
    try {
      assert.is(readlinkSync(`/proc/${pid}/fd/3`), log);
      const info = readFileSync(`/proc/${pid}/fdinfo/3`, 'utf8');
      assert.is(/^pos:\s*(\d+)/m.exec(info)?.[1], '4');
      // O_NONBLOCK was added for the open only: the fd has the image's flags.
      assert.is(Number.parseInt(/^flags:\s*(\d+)/m.exec(info)![1]!, 8) & O_NONBLOCK, 0);
    } finally {
      ensureReaped(pid);
    }
    assert.is(readFileSync(log, 'utf8'), 'another file now\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('restart of a whole process whose FIFO path became a regular file: refused, the husk killed, the file intact', async () => {
  const dir = tempDir();
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  const ours = openSync(fifo, 'r+');
  let open = true;
  const devNull = openFile('/dev/null', O_RDWR);
  let pid = 0;
  try {
    writeSync(ours, BYTES);
    pid = spawn(['/bin/sleep', '1000'], { fds: [[devNull, 0], [devNull, 1], [devNull, 2], [ours, 3]] });
    waitInSyscall(pid, [SYS_clock_nanosleep, SYS_nanosleep]);
    const image = join(dir, 'sleep.img');
    const d = await cr(['dump', '--pid', String(pid), '-o', image]);
    assert.is(d.code, 0, d.stderr);
    ensureReaped(pid);
    closeSync(ours);
    open = false;
    rmSync(fifo);
    writeFileSync(fifo, FILE_TEXT);
    const r = await cr(['restore', image, '--detach']);
    if (r.code === 0) ensureReaped(Number(r.stdout.trim()));
    assert.is(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^cr restore: fd 3: "${escape(fifo)}" now opens a regular file, not a FIFO; refused before anything was written through it; the half-restored process \\d+ was killed\\n$`));
    assertKilled(r.stderr);
    assert.is(readFileSync(fifo, 'utf8'), FILE_TEXT);
  } finally {
    if (open) closeSync(ours);
    closeFd(devNull);
    if (pid > 0) ensureReaped(pid);
    rmSync(dir, { recursive: true, force: true });
  }
});

// The judgement restart applies to mapped files and the executable (src/restart/memory.ts,
// state.ts), where no test can swap the file between cr's look and the husk's open: here it is
// run on fds a real process holds.
test('what an fd opened, as the target reports it: type, device, inode, procfs, pipe or FIFO', () => {
  const dir = tempDir();
  const [r, w] = pipe2(0);
  const devNull = openFile('/dev/null', O_RDWR);
  let pid = 0;
  try {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const data = join(dir, 'data');
    writeFileSync(data, 'x');
    pid = spawn(['/bin/sleep', '1000'], { fds: [[devNull, 0], [r, 3], [w, 4]] });
    waitInSyscall(pid, [SYS_clock_nanosleep, SYS_nanosleep]);
    const frozen = freeze(pid);
    try {
      const inj = Injector.attach(pid);
      try {
        const buf = inj.scratch(OPENED_SCRATCH_BYTES);
        const open = (path: string): bigint => inj.call('openat', SYS.openat, -100n, inj.put(path), BigInt(O_RDONLY | O_NONBLOCK), 0n);
        const st = statSync(data);
        const file = fileAt(inj, open(data), buf);
        assert.is(file.type, 'regular file');
        assert.is(mismatch(file, { type: 'regular file', inode: { dev: st.dev, ino: st.ino } }), null);
        assert.match(mismatch(file, { type: 'regular file', inode: { dev: st.dev, ino: st.ino + 1 } }) ?? '', /^inode \d+ on device/);
        const null0 = fileAt(inj, 0n, buf);
        assert.is(null0.rdev, NULL_RDEV);
        assert.is(mismatch(null0, { type: 'character device', rdev: NULL_RDEV }), null);
        assert.is(mismatch(fileAt(inj, open(fifo), buf), { type: 'FIFO' }), null);
        assert.is(mismatch(fileAt(inj, 3n, buf), { type: 'FIFO' }), 'an anonymous pipe, not a FIFO');
        assert.match(mismatch(fileAt(inj, open('/proc/self/status'), buf), { type: 'regular file' }) ?? '', /^a file in \/proc/);
        assert.is(mismatch(fileAt(inj, open(dir), buf), { type: 'FIFO' }), 'a directory, not a FIFO');
      } finally {
        inj.finish();
      }
    } finally {
      thaw(frozen, { leaveStopped: false });
    }
  } finally {
    closeFd(r);
    closeFd(w);
    closeFd(devNull);
    if (pid > 0) ensureReaped(pid);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.after(() => {
  if (cgroup) rmdirSync(cgroup);
});

test.run();
