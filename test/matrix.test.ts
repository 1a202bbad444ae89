// The restore matrix: every layout in every restore mode, judged by the restored process itself.
// A layout is built by test/fixtures/fd-selfcheck.c from a spec written at set-up; that process
// checks its own fds with the kernel's answers (F_GETFL/F_GETFD, kcmp, fstat, lseek, tee of the
// pipe bytes) and must say PASS before it is dumped (the spec is right), after its two dumps
// (whole and --fds-only: they consumed nothing), and then in each restored process:
// `restore IMAGE -- CMD` (CMD the same program told the same spec), `--into` a live target whose
// own fds collide with every fd of the image and fill its table up to its limit (with and
// without --exact), each from either image, and a whole-process restart (with and without
// --same-pid). A process the test starts is killed at its end, failure or not.
//
// Random layouts come from seeds: CR_MATRIX_SEEDS=1,2,3 (or CR_MATRIX_RANDOM=N for N fresh
// ones) replaces the fixed ones; a failing seed is in the failure's name.
import { chownSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeFd, openFile } from '../bridge/file.js';
import { kill, SIGUSR1 } from '../bridge/signal.js';
import { spawn } from '../bridge/spawn.js';
import { O_RDWR } from '../src/model/fdtable.js';
import { cr, crProcess, type Run } from './helpers/cli.js';
import { waitFile } from './helpers/fdlayout.js';
import { ensureReaped, waitInSyscall } from './helpers/processes.js';
import { layoutSpec, O_APPEND, O_DIRECT, O_DIRECTORY, O_DSYNC, O_NOATIME, O_NONBLOCK, O_SYNC, randomLayout, selfcheckProgram, type Layout, type LayoutDesc, type LayoutFd, type LayoutPipe } from './helpers/selfcheck.js';
import { asUser, NOBODY, unprivilegedTest } from './helpers/unprivileged.js';

const PROG = selfcheckProgram();
const STATIC_PROG = selfcheckProgram({ static: true });
const SYS_rt_sigtimedwait = 128;

/** A restore mode; "fds-only" ones restore the `dump --fds-only` image, the others the whole one. */
type Mode = 'fresh' | 'fresh, fds-only' | 'into' | 'into, fds-only' | 'into --exact' | 'restart' | 'restart --same-pid';
const MODES: Mode[] = ['fresh', 'fresh, fds-only', 'into', 'into, fds-only', 'into --exact', 'restart', 'restart --same-pid'];

const bytes = (n: number, salt = 0): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 13 + salt) & 0xff));
const text = (s: string): Buffer => Buffer.from(s);

// ---- the layouts: the kernel's rules, one family each ----

const fds = (desc: number, ...numbers: Array<number | [number, boolean]>): LayoutFd[] =>
  numbers.map((n) => (Array.isArray(n) ? { fd: n[0], desc, cloexec: n[1] } : { fd: n, desc, cloexec: false }));
const end = (id: number, pipe: number, access: 'r' | 'w', flags = 0): LayoutDesc => ({ id, kind: 'end', pipe, access, flags });
const lim = (soft: number, hard = 20000): Layout['rlimit'] => ({ soft, hard });

function layouts(dir: string): Layout[] {
  const file = (name: string): string => join(dir, name);
  const L = (name: string, rlimit: Layout['rlimit'], pipes: LayoutPipe[], descs: LayoutDesc[], table: LayoutFd[]): Layout => ({ name, rlimit, pipes, descs, fds: table });
  return [
    // The seed patch's: read end 9 above write end 4, dups 12 and 7, bytes queued, O_NONBLOCK on
    // the write end (shared by its dup), a half-closed pipe at 5 still holding bytes.
    L('seed', lim(1024), [{ id: 0, data: text('hello from the original process\n') }, { id: 1, data: text('this pipe lost its writer but kept its bytes\n') }],
      [end(0, 0, 'r'), end(1, 0, 'w', O_NONBLOCK), end(2, 1, 'r')],
      [...fds(0, 9, 12), ...fds(1, 4, 7), ...fds(2, 5)]),
    // Half-closed both ways: a write end alone with bytes (its reader gone), a read end alone.
    L('half-closed', lim(1024), [{ id: 0, data: text('nobody reads me yet') }, { id: 1, data: bytes(5000) }, { id: 2 }],
      [end(0, 0, 'w'), end(1, 1, 'r', O_NONBLOCK), end(2, 2, 'w', O_NONBLOCK)],
      [...fds(0, 3, [6, true]), ...fds(1, 4), ...fds(2, 8)]),
    // Standard fds taken: a pipe's read end at 1 and write end at 0, its dup at 2.
    L('stdio swapped', lim(1024), [{ id: 0, data: text('x') }], [end(0, 0, 'r'), end(1, 0, 'w')], [...fds(0, 1), ...fds(1, 0, 2)]),
    // High numbers: a sparse table far from 0, an fd at 4095/4096 (fd-table growth boundaries).
    L('high numbers', lim(16384), [{ id: 0, data: text('far away') }, { id: 1 }],
      [end(0, 0, 'r'), end(1, 0, 'w'), end(2, 1, 'r', O_NONBLOCK), end(3, 1, 'w')],
      [...fds(0, 1000, [15000, true]), ...fds(1, 4095), ...fds(2, 4096), ...fds(3, 63, 64)]),
    // Around the limit: every number below a soft limit of 40 taken (a plan has no free number),
    // and a lower hard limit.
    L('full to the limit', lim(40, 4096), [{ id: 0, data: text('full') }, { id: 1 }],
      [end(0, 0, 'r'), end(1, 0, 'w'), end(2, 1, 'r'), end(3, 1, 'w', O_NONBLOCK), { id: 4, kind: 'chr', path: '/dev/null', access: 'rw', flags: 0 }],
      [...fds(0, 39, 0), ...fds(1, 38, [1, true]), ...fds(2, 2), ...fds(3, 3), ...fds(4, ...Array.from({ length: 34 }, (_, k): [number, boolean] => [k + 4, k % 3 === 0]))]),
    L('one fd under the limit', lim(20), [{ id: 0, data: text('edge') }], [end(0, 0, 'r'), end(1, 0, 'w')], [...fds(0, 19), ...fds(1, 18)]),
    // Close-on-exec is per fd: dups of one description differ.
    L('cloexec mix', lim(1024), [{ id: 0, data: text('c') }],
      [end(0, 0, 'r'), end(1, 0, 'w'), { id: 2, kind: 'chr', path: '/dev/null', access: 'w', flags: 0 }],
      [...fds(0, [3, true], 4, [5, true]), ...fds(1, 6, [7, true]), ...fds(2, [0, true], 1, [2, true])]),
    // Full pipes: bytes up to the capacity, at the default size and at one page.
    L('full pipes', lim(1024), [{ id: 0, data: bytes(65536, 1) }, { id: 1, capacity: 4096, data: bytes(4096, 2) }, { id: 2, capacity: 8192, data: bytes(8192, 3) }],
      [end(0, 0, 'r'), end(1, 0, 'w', O_NONBLOCK), end(2, 1, 'w'), end(3, 2, 'r')],
      [...fds(0, 3), ...fds(1, 4), ...fds(2, 5), ...fds(3, 6)]),
    // Resized pipes (F_SETPIPE_SZ), up to pipe-max-size, bytes beyond the default capacity.
    L('resized pipes', lim(1024), [{ id: 0, capacity: 1 << 20, data: bytes(70_000, 4) }, { id: 1, capacity: 131072 }, { id: 2, capacity: 16384, data: text('small') }],
      [end(0, 0, 'r'), end(1, 0, 'w'), end(2, 1, 'r'), end(3, 1, 'w'), end(4, 2, 'r')],
      [...fds(0, 10), ...fds(1, 11), ...fds(2, 12), ...fds(3, 13), ...fds(4, 14)]),
    // Packet mode: O_DIRECT writes keep their boundaries; a packet pipe whose reader is gone, and
    // O_DIRECT on a pipe with nothing queued.
    L('packets', lim(1024), [{ id: 0, data: bytes(1 + 4096 + 100 + 512, 5), packets: [1, 4096, 100, 512] }, { id: 1, capacity: 8192, data: bytes(4096 + 3, 6), packets: [4096, 3] }, { id: 2 }],
      [end(0, 0, 'r', O_NONBLOCK), end(1, 0, 'w', O_DIRECT), end(2, 1, 'w', O_DIRECT), end(3, 2, 'r', O_DIRECT), end(4, 2, 'w', O_DIRECT | O_NONBLOCK)],
      [...fds(0, 3), ...fds(1, 4, 9), ...fds(2, 5), ...fds(3, 6), ...fds(4, 7)]),
    // Reopened descriptions (/proc/self/fd/N): O_RDWR on an anonymous pipe, reopens beside and
    // instead of pipe2()'s ends.
    L('reopened ends', lim(1024), [{ id: 0, data: text('reopened') }, { id: 1, data: text('only reopens left') }],
      [end(0, 0, 'r'), { id: 1, kind: 'reopen', pipe: 0, access: 'rw', flags: 0 }, { id: 2, kind: 'reopen', pipe: 0, access: 'w', flags: O_NONBLOCK }, { id: 3, kind: 'reopen', pipe: 1, access: 'r', flags: 0 }, { id: 4, kind: 'reopen', pipe: 1, access: 'w', flags: O_APPEND }],
      [...fds(0, 3), ...fds(1, 4, 5), ...fds(2, 6), ...fds(3, 7), ...fds(4, 8)]),
    // FIFOs: one opened O_RDWR with bytes, one opened for reading and writing separately, one
    // held only for writing with bytes its gone reader left (a restore needs a reader to open it).
    L('fifos', lim(1024), [{ id: 0, fifo: file('rdwr.fifo'), data: text('fifo bytes') }, { id: 1, fifo: file('two.fifo'), capacity: 8192, data: bytes(3000) }, { id: 2, fifo: file('w.fifo'), data: text('left for a reader') }],
      [{ id: 0, kind: 'fifoend', pipe: 0, access: 'rw', flags: 0 }, { id: 1, kind: 'fifoend', pipe: 1, access: 'r', flags: O_NONBLOCK }, { id: 2, kind: 'fifoend', pipe: 1, access: 'w', flags: 0 }, { id: 3, kind: 'fifoend', pipe: 2, access: 'w', flags: O_NONBLOCK }],
      [...fds(0, 3, [4, true]), ...fds(1, 5), ...fds(2, 6), ...fds(3, 7)]),
    // Files: offsets (one file through two descriptions at different offsets), O_APPEND, O_NOATIME,
// and what only open() gives (O_SYNC, O_DSYNC).
    L('files', lim(1024), [],
      [{ id: 0, kind: 'file', path: file('a'), access: 'w', flags: 0, offset: 17 }, { id: 1, kind: 'file', path: file('a'), access: 'r', flags: O_NOATIME, offset: 3 },
        { id: 2, kind: 'file', path: file('b'), access: 'rw', flags: O_APPEND, offset: 123456 }, { id: 3, kind: 'file', path: file('c'), access: 'r', flags: O_NONBLOCK, offset: 0 },
        { id: 4, kind: 'file', path: file('d'), access: 'w', flags: O_SYNC, offset: 8 }, { id: 5, kind: 'file', path: file('d'), access: 'rw', flags: O_DSYNC, offset: 2 }],
      [...fds(0, 3), ...fds(1, 4, [10, true]), ...fds(2, 5), ...fds(3, 0), ...fds(4, 6), ...fds(5, [11, true])]),
    // Character devices: /dev/null and /dev/zero, one of them dup'd, with status flags.
    L('devices', lim(1024), [],
      [{ id: 0, kind: 'chr', path: '/dev/null', access: 'rw', flags: 0 }, { id: 1, kind: 'chr', path: '/dev/zero', access: 'r', flags: O_NONBLOCK }, { id: 2, kind: 'chr', path: '/dev/null', access: 'w', flags: O_APPEND }],
      [...fds(0, 0), ...fds(1, 1, 7), ...fds(2, 2)]),
    // The kinds added as modules: eventfds (counters up to 2^53 - 1, semaphore mode, O_NONBLOCK,
    // O_APPEND), directories at positions inside, at the start and past the end, with and without
    // O_DIRECTORY, and O_PATH fds on a file, a directory and a device; dups among them.
    L('eventfds, directories, O_PATH', lim(1024), [],
      [{ id: 0, kind: 'eventfd', count: 0n, semaphore: false, flags: 0 }, { id: 1, kind: 'eventfd', count: 2n ** 53n - 1n, semaphore: false, flags: O_NONBLOCK },
        { id: 2, kind: 'eventfd', count: 3n, semaphore: true, flags: O_NONBLOCK | O_APPEND },
        { id: 3, kind: 'dir', path: file('d'), flags: O_DIRECTORY, skip: 4 }, { id: 4, kind: 'dir', path: file('d'), flags: 0, skip: 0 }, { id: 5, kind: 'dir', path: file('d'), flags: O_NONBLOCK, skip: 10 },
        { id: 6, kind: 'file', path: file('f'), access: 'w', flags: 0, offset: 5 },
        { id: 7, kind: 'opath', path: file('f'), flags: 0 }, { id: 8, kind: 'opath', path: file('d'), flags: O_DIRECTORY }, { id: 9, kind: 'opath', path: '/dev/null', flags: 0 }],
      [...fds(0, 0, [9, true]), ...fds(1, 1), ...fds(2, [2, true]), ...fds(3, 3, 10), ...fds(4, 4), ...fds(5, [5, true]), ...fds(6, 6), ...fds(7, 7, [11, true]), ...fds(8, 8), ...fds(9, 12)]),
    // Many pipes at shuffled numbers, a byte each.
    L('many pipes', lim(1024), Array.from({ length: 40 }, (_, k) => ({ id: k, data: bytes(k + 1, k) })),
      Array.from({ length: 40 }, (_, k) => end(k, k, k % 2 ? 'r' : 'w', k % 5 === 0 ? O_NONBLOCK : 0)),
      Array.from({ length: 40 }, (_, k) => ({ fd: (k * 37) % 101, desc: k, cloexec: k % 3 === 0 }))),
  ];
}

// ---- one cell: a mode on an image, judged by the process ----

/** Ask the process in `dir` to check itself; its verdict, first line PASS or FAIL. */
function verdict(pid: number, dir: string): string {
  rmSync(join(dir, 'result'), { force: true });
  kill(pid, SIGUSR1);
  return waitFile(dir, 'result');
}

const tempDir = (what: string): string => realpathSync(mkdtempSync(join(tmpdir(), `cr-matrix-${what}-`)));

interface Subject {
  layout: Layout;
  /** the builder's directory: its spec, ready and result files, its FIFOs and files */
  dir: string;
  spec: string;
  /** the whole-process image, and the fd-table one (`dump --fds-only`) */
  image: string;
  fdsImage: string;
  /** the builder's pid when it was dumped */
  pid: number;
  /** run cr as this user (a process of its own) rather than in this process */
  uid?: number;
}

const crAs = (s: Subject, args: string[]): Promise<Run> => (s.uid === undefined ? cr(args) : Promise.resolve(crProcess(args, { uid: s.uid })));
const prefix = (s: Subject): string[] => (s.uid === undefined ? [] : asUser(s.uid));

/** A directory the subject's user may write. */
function ownedDir(s: Subject, what: string): string {
  const dir = tempDir(what);
  if (s.uid !== undefined) chownSync(dir, s.uid, s.uid);
  return dir;
}

/** Run one mode; returns the restored process's verdict (or why there is none). */
async function cell(s: Subject, mode: Mode): Promise<string> {
  const pids: number[] = [];
  const dirs: string[] = [];
  try {
    const image = mode.endsWith('fds-only') ? s.fdsImage : s.image;
    if (mode === 'fresh' || mode === 'fresh, fds-only') {
      const dir = ownedDir(s, 'fresh');
      dirs.push(dir);
      // A table with no free number below its limit leaves a dynamic loader none for libc.
      const full = s.layout.fds.length >= s.layout.rlimit.soft;
      const r = await crAs(s, ['restore', image, '--detach', '--', full ? STATIC_PROG : PROG, 'check', s.spec, dir]);
      if (r.code !== 0) return `cr exit ${r.code}: ${r.stderr}`;
      const pid = Number(r.stdout.trim());
      pids.push(pid);
      waitFile(dir, 'ready');
      return verdict(pid, dir);
    }
    if (mode === 'into' || mode === 'into, fds-only' || mode === 'into --exact') {
      const exact = mode === 'into --exact';
      const dir = ownedDir(s, 'into');
      dirs.push(dir);
      // The target's own fds, all /dev/null: every number up to the image's highest fd and one
      // more, its soft limit right above them (a full table: the plan must raise the limit to
      // stage); where that would be thousands of fds, only 0, 1, 2, every fd of the image and
      // the first number the image leaves free.
      const imageFds = s.layout.fds.map((f) => f.fd);
      const top = Math.max(2, ...imageFds) + 1;
      let spare = 0;
      while (imageFds.includes(spare)) spare++;
      const full = top < 1100;
      const targetFds = full ? Array.from({ length: top + 1 }, (_, fd) => fd) : [...new Set([0, 1, 2, spare, ...imageFds])];
      const kept = targetFds.filter((fd) => !imageFds.includes(fd));
      const devNull = openFile('/dev/null', O_RDWR);
      let pid: number;
      try {
        const own = exact || kept.length === 0 ? '-' : kept.join(',');
        pid = spawn([...prefix(s), PROG, 'check', s.spec, dir, own, ...(full ? [String(top + 1)] : [])], { fds: targetFds.map((fd): [number, number] => [devNull, fd]) });
      } finally {
        closeFd(devNull);
      }
      pids.push(pid);
      waitFile(dir, 'ready');
      waitInSyscall(pid, SYS_rt_sigtimedwait);
      const r = await crAs(s, ['restore', image, '--into', String(pid), ...(exact ? ['--exact'] : [])]);
      if (r.code !== 0) return `cr exit ${r.code}: ${r.stderr}`;
      return verdict(pid, dir);
    }
    const samePid = mode === 'restart --same-pid';
    const r = await crAs(s, ['restore', s.image, '--detach', ...(samePid ? ['--same-pid'] : [])]);
    if (r.code !== 0) return `cr exit ${r.code}: ${r.stderr}`;
    const pid = Number(r.stdout.trim());
    pids.push(pid);
    if (samePid && pid !== s.pid) return `restarted as pid ${pid}, not ${s.pid}`;
    return verdict(pid, s.dir);
  } finally {
    for (const pid of pids) ensureReaped(pid);
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Build the layout, check it before and after a whole-process dump, kill the original (a FIFO
 * is one pipe for all who open it: restores must not join the original's), then run every mode.
 * Returns one line per mode that did not PASS.
 */
async function matrix(layout: Layout, dir: string, modes: Mode[], uid?: number): Promise<string[]> {
  const spec = join(dir, 'spec');
  writeFileSync(spec, layoutSpec(layout));
  const pid = spawn([...(uid === undefined ? [] : asUser(uid)), PROG, 'build', spec, dir], { fds: [] });
  const s: Subject = { layout, dir, spec, image: join(dir, 'image'), fdsImage: join(dir, 'fds-image'), pid, uid };
  try {
    waitFile(dir, 'ready');
    assert.is(verdict(pid, dir), 'PASS\n', `${layout.name}: as built`);
    const d = await crAs(s, ['dump', '--pid', String(pid), '-o', s.image]);
    assert.is(d.code, 0, `${layout.name}: dump: ${d.stderr}`);
    const f = await crAs(s, ['dump', '--fds-only', '--pid', String(pid), '-o', s.fdsImage]);
    assert.is(f.code, 0, `${layout.name}: dump --fds-only: ${f.stderr}`);
    assert.is(verdict(pid, dir), 'PASS\n', `${layout.name}: after the dumps, the original`);
  } finally {
    ensureReaped(pid);
  }
  const failed: string[] = [];
  for (const mode of modes) {
    const v = await cell(s, mode);
    if (v !== 'PASS\n') failed.push(`${layout.name}, ${mode}${uid === undefined ? '' : ` as uid ${uid}`}: ${v.trim().replace(/\n/g, '; ')}`);
  }
  return failed;
}

async function inDir(what: string, fn: (dir: string) => Promise<void>, uid?: number): Promise<void> {
  const dir = tempDir(what);
  if (uid !== undefined) chownSync(dir, uid, uid);
  try {
    await fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const name of layouts('/').map((l) => l.name)) {
  test(`matrix, ${name}: PASS in every mode`, () =>
    inDir('layout', async (dir) => {
      const layout = layouts(dir).find((l) => l.name === name)!;
      assert.equal(await matrix(layout, dir, MODES), []);
    }));
}

const seeds = (): number[] => {
  if (process.env.CR_MATRIX_SEEDS) return process.env.CR_MATRIX_SEEDS.split(',').map(Number);
  if (process.env.CR_MATRIX_RANDOM) return Array.from({ length: Number(process.env.CR_MATRIX_RANDOM) }, () => Math.floor(Math.random() * 2 ** 31));
  // Of the first 300 seeds, those whose layouts hold the most kinds (every kind among them,
  // packets too; 79 and 207 fill their table up to a soft limit of 24).
  return [92, 142, 79, 207, 61, 118];
};

for (const seed of seeds()) {
  test(`matrix, random layout of seed ${seed} (CR_MATRIX_SEEDS=${seed} to run it again): PASS in every mode`, () =>
    inDir('random', async (dir) => {
      assert.equal(await matrix(randomLayout(seed, dir), dir, ['fresh', 'into', 'into --exact', 'restart']), []);
    }));
}

// As nobody, where rights matter: a file nobody owns opened O_NOATIME (the owner's right alone),
// nobody's FIFO, a pipe resized to pipe-max-size (what an unprivileged user may ask for), and a
// device, in one layout (each run of cr as another user starts a node of its own).
unprivilegedTest(`matrix as uid ${NOBODY}: its files, FIFO, a pipe at pipe-max-size and a device, PASS in every mode nobody can use`, () =>
  inDir(
    'nobody',
    async (dir) => {
      const layout: Layout = {
        name: "nobody's own",
        rlimit: lim(1024),
        pipes: [{ id: 0, fifo: join(dir, 'fifo'), data: text('nobody queued this') }, { id: 1, capacity: 1 << 20, data: bytes(70_000, 9) }],
        descs: [
          { id: 0, kind: 'file', path: join(dir, 'own'), access: 'rw', flags: O_NOATIME | O_APPEND, offset: 99 },
          { id: 1, kind: 'fifoend', pipe: 0, access: 'rw', flags: O_NONBLOCK },
          end(2, 1, 'r'),
          end(3, 1, 'w'),
          { id: 4, kind: 'chr', path: '/dev/null', access: 'rw', flags: 0 },
        ],
        fds: [...fds(0, 3, 0), ...fds(1, 4), ...fds(2, 5), ...fds(3, [6, true]), ...fds(4, 1, 2)],
      };
      assert.equal(await matrix(layout, dir, ['fresh', 'into', 'into --exact', 'restart'], NOBODY), []);
    },
    NOBODY,
  ));

test.run();
