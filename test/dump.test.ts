// dump and show against real processes: test/fixtures/fdlayout.py builds a known fd table,
// `cr dump` checkpoints it, `cr show --json` must print exactly that table, and the fixture must
// then read back exactly the bytes it queued (so the dump consumed nothing).
import { onlyProcess, type FdTables } from '../src/model/fdtable.js';
import { chmodSync, chownSync, closeSync, existsSync, linkSync, lstatSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { detach, seizeAndStop } from '../bridge/ptrace.js';
import { kill, SIGCONT, SIGUSR2 } from '../bridge/signal.js';
import { reap } from '../bridge/spawn.js';
import { waitpid, WNOHANG, WUNTRACED } from '../bridge/wait.js';
import { freeze, thaw } from '../src/task/freeze.js';
import { readImage } from '../src/image/format.js';
import { O_APPEND, O_DIRECT, O_LARGEFILE, O_NONBLOCK, O_RDWR, O_WRONLY, type Desc, type FdTable, type Fd, type Pipe } from '../src/model/fdtable.js';
import { cr, crProcess } from './helpers/cli.js';
import { assertRunning, expectedReadBack, fixtureReadBack, sleep, spawnFixture, waitFile } from './helpers/fdlayout.js';
import { buildC, ensureReaped, withProcess } from './helpers/processes.js';
import { NOBODY, unprivilegedTest } from './helpers/unprivileged.js';
import { tableJson } from '../src/model/json.js';


/** The bytes the fixture queues: pattern(seed, n) in fdlayout.py. */
function pattern(seed: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 17 + (i >> 8)) & 0xff;
  return b;
}

interface Fixture {
  pid: number;
  dir: string;
}

/** Run fn with a fixture building `scenario`; the fixture is killed and reaped whatever happens. */
async function withFixture(scenario: string, fn: (fx: Fixture) => void | Promise<void>): Promise<void> {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), `cr-dump-${scenario}-`)));
  const pid = spawnFixture(scenario, dir);
  try {
    const fx = { pid, dir };
    waitFile(dir, 'ready');
    await fn(fx);
  } finally {
    ensureReaped(pid);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function dumpOk(fx: Fixture, extra: string[] = []): Promise<string> {
  const image = join(fx.dir, 'image');
  const r = await cr(['dump', '--fds-only', '--pid', String(fx.pid), '-o', image, ...extra]);
  assert.is(r.code, 0, r.stderr);
  return image;
}

/** `show --json` of image, its one process's view: as JSON gives it (bytes as base64 text). */
async function showJson(image: string): Promise<FdTable> {
  const r = await cr(['show', image, '--json']);
  assert.is(r.code, 0, r.stderr);
  // A dump holds one process: its view is the table the builders below describe.
  const tables = JSON.parse(r.stdout) as FdTables;
  assert.is(tables.processes.length, 1);
  return onlyProcess(tables);
}

// Builders for expected tables, in dump's canonical numbering: descriptions by lowest fd,
// pipes by first description.
const fd = (n: number, desc: number, cloexec = false): Fd => ({ fd: n, desc, cloexec });
const pipeDesc = (id: number, flags: number, pipe: number): Desc => ({ id, kind: 'pipe', flags, pipe });
const streamPipe = (id: number, data: Buffer, capacity = 65536): Pipe => ({ id, capacity, data });

/** Dump a fixture, compare `show --json` with `expected`, check the read-back, keep the image for plan. */
async function checkScenario(scenario: string, expected: (dir: string) => FdTable, extra: string[] = []): Promise<void> {
  await withFixture(scenario, async (fx) => {
    const image = await dumpOk(fx, extra);
    assertRunning(fx.pid);
    const want = expected(fx.dir);
    assert.equal(await showJson(image), JSON.parse(tableJson(want)));
    assert.equal(fixtureReadBack(fx.pid, fx.dir), expectedReadBack(want, want.pipes.map((p) => `p${p.id}`)));
    const copy = join(imageDir, `${scenario}.img`);
    writeFileSync(copy, readFileSync(image), { mode: 0o600 });
    images.push(copy);
  });
}

const imageDir = mkdtempSync(join(tmpdir(), 'cr-dump-images-'));
const images: string[] = [];

test('seed layout: read end at 9, write end at 4, dups at 12 and 7, bytes queued', async () => {
  await checkScenario('seed', () => ({
    fds: [fd(4, 0), fd(7, 0), fd(9, 1), fd(12, 1)],
    descs: [pipeDesc(0, O_WRONLY, 0), pipeDesc(1, 0, 0)],
    pipes: [streamPipe(0, pattern(1, 11))],
    rlimit: { soft: 1024, hard: 4096 },
  }));
});

test('a full pipe with dup\'d and /proc-reopened ends, O_NONBLOCK on some descriptions', async () => {
  await checkScenario('full', () => ({
    fds: [fd(3, 0), fd(4, 1, true), fd(5, 2), fd(6, 3, true), fd(7, 0, true), fd(8, 2), fd(10, 4), fd(11, 4)],
    descs: [
      pipeDesc(0, 0, 0),
      pipeDesc(1, O_WRONLY | O_NONBLOCK, 0),
      pipeDesc(2, O_NONBLOCK | O_LARGEFILE, 0),
      pipeDesc(3, O_WRONLY | O_LARGEFILE, 0),
      pipeDesc(4, O_RDWR | O_LARGEFILE, 0),
    ],
    pipes: [streamPipe(0, pattern(2, 65536))],
    rlimit: { soft: 1024, hard: 4096 },
  }));
});

test('a pipe resized to 1 MiB and full', async () => {
  await checkScenario('big', () => ({
    fds: [fd(5, 0), fd(6, 1)],
    descs: [pipeDesc(0, 0, 0), pipeDesc(1, O_WRONLY, 0)],
    pipes: [streamPipe(0, pattern(3, 1 << 20), 1 << 20)],
    rlimit: { soft: 1024, hard: 4096 },
  }));
});

test('FIFOs: one open read-write with bytes and a second reader, one held write-only', async () => {
  await checkScenario('fifo', (dir) => {
    const fifo = join(dir, 'fifo');
    const wfifo = join(dir, 'wfifo');
    return {
      fds: [fd(3, 0), fd(4, 1, true), fd(6, 2)],
      descs: [
        { id: 0, kind: 'fifo', flags: O_RDWR | O_LARGEFILE, pipe: 0, path: fifo },
        { id: 1, kind: 'fifo', flags: O_NONBLOCK | O_LARGEFILE, pipe: 0, path: fifo },
        { id: 2, kind: 'fifo', flags: O_WRONLY | O_APPEND | O_LARGEFILE, pipe: 1, path: wfifo },
      ],
      pipes: [streamPipe(0, pattern(4, 5000)), streamPipe(1, pattern(5, 300))],
      rlimit: { soft: 1024, hard: 4096 },
    };
  });
});

test('half-closed pipes: only a write end (no reader anywhere), only a read end; a one-page pipe with a non-blocking reader', async () => {
  await checkScenario('halfclosed', () => ({
    fds: [fd(4, 0), fd(5, 1), fd(7, 2), fd(8, 3)],
    descs: [pipeDesc(0, O_WRONLY, 0), pipeDesc(1, 0, 1), pipeDesc(2, O_NONBLOCK, 2), pipeDesc(3, O_WRONLY, 2)],
    pipes: [streamPipe(0, pattern(6, 777)), streamPipe(1, pattern(7, 12)), streamPipe(2, pattern(8, 1), 4096)],
    rlimit: { soft: 1024, hard: 4096 },
  }));
});

test('packet mode: packet boundaries kept (a 1-byte last packet too); O_DIRECT writes merged into plain bytes stay a stream', async () => {
  const packets = [pattern(9, 5), pattern(10, 4096), pattern(11, 1), pattern(12, 700)];
  await checkScenario('packets', () => ({
    fds: [fd(3, 0), fd(4, 1), fd(5, 2), fd(6, 3), fd(7, 4), fd(8, 5)],
    descs: [
      // pipe2(O_DIRECT) sets O_DIRECT on the write end only.
      pipeDesc(0, 0, 0),
      pipeDesc(1, O_WRONLY | O_DIRECT, 0),
      pipeDesc(2, 0, 1),
      pipeDesc(3, O_WRONLY | O_DIRECT, 1),
      pipeDesc(4, 0, 2),
      pipeDesc(5, O_WRONLY | O_DIRECT, 2),
    ],
    pipes: [
      { ...streamPipe(0, Buffer.concat(packets)), packets: packets.map((p) => p.length) },
      { ...streamPipe(1, pattern(13, 1)), packets: [1] },
      streamPipe(2, Buffer.concat([pattern(14, 10), pattern(15, 6)])),
    ],
    rlimit: { soft: 1024, hard: 4096 },
  }));
});

test('regular files at two offsets, a dup with another close-on-exec bit, O_APPEND, /dev/null and /dev/zero', async () => {
  await checkScenario('files', (dir) => ({
    fds: [fd(3, 0), fd(4, 1, true), fd(5, 0, true), fd(6, 2), fd(7, 3, true)],
    descs: [
      { id: 0, kind: 'file', flags: O_LARGEFILE, path: join(dir, 'data'), offset: 10 },
      { id: 1, kind: 'file', flags: O_RDWR | O_APPEND | O_LARGEFILE, path: join(dir, 'data'), offset: 105 },
      { id: 2, kind: 'chr', flags: O_WRONLY | O_LARGEFILE, path: '/dev/null', rdev: statSync('/dev/null').rdev },
      { id: 3, kind: 'chr', flags: O_NONBLOCK | O_LARGEFILE, path: '/dev/zero', rdev: statSync('/dev/zero').rdev },
    ],
    pipes: [],
    rlimit: { soft: 1024, hard: 4096 },
  }));
});

test('a controlling terminal: the pty slave and /dev/tty by path', async () => {
  await checkScenario('tty', (dir) => ({
    fds: [fd(3, 0), fd(4, 1)],
    descs: [
      { id: 0, kind: 'chr', flags: O_RDWR | O_LARGEFILE, path: readFileSync(join(dir, 'tty'), 'utf8'), rdev: statSync(readFileSync(join(dir, 'tty'), 'utf8')).rdev },
      { id: 1, kind: 'chr', flags: O_RDWR | O_NONBLOCK | O_LARGEFILE, path: '/dev/tty', rdev: statSync('/dev/tty').rdev },
    ],
    pipes: [],
    rlimit: { soft: 1024, hard: 4096 },
  }));
});

test('pipes at fd numbers 2^i up to 8192', async () => {
  await checkScenario('pow2', () => {
    const t: FdTable = { fds: [], descs: [], pipes: [], rlimit: { soft: 16384, hard: 20000 } };
    for (let k = 0; k < 7; k++) {
      t.fds.push(fd(1 << (2 * k), 2 * k), fd(1 << (2 * k + 1), 2 * k + 1));
      t.descs.push(pipeDesc(2 * k, 0, k), pipeDesc(2 * k + 1, O_WRONLY, k));
      t.pipes.push(streamPipe(k, pattern(30 + k, 10 + k)));
    }
    return t;
  });
});

test('RLIMIT_NOFILE 64 with 63 fds open', async () => {
  await checkScenario('limit64', () => {
    const t: FdTable = { fds: [], descs: [], pipes: [], rlimit: { soft: 64, hard: 64 } };
    for (let k = 0; k < 21; k++) {
      t.fds.push(fd(3 * k, 2 * k), fd(3 * k + 1, 2 * k + 1), fd(3 * k + 2, 2 * k));
      t.descs.push(pipeDesc(2 * k, 0, k), pipeDesc(2 * k + 1, O_WRONLY, k));
      t.pipes.push(streamPipe(k, pattern(40 + k, 1 + k)));
    }
    return t;
  });
});

test('a process with threads blocked in read, sleep and a futex', async () => {
  await checkScenario('threads', () => ({
    fds: [fd(3, 0), fd(4, 1), fd(5, 2), fd(6, 3)],
    descs: [pipeDesc(0, 0, 0), pipeDesc(1, O_WRONLY, 0), pipeDesc(2, 0, 1), pipeDesc(3, O_WRONLY, 1)],
    pipes: [streamPipe(0, Buffer.alloc(0)), streamPipe(1, pattern(50, 99))],
    rlimit: { soft: 1024, hard: 4096 },
  }));
});

test('freeze holds every thread in a ptrace stop; thaw lets each go untraced', async () => {
  await withFixture('threads', async (fx) => {
    const tids = readdirSync(`/proc/${fx.pid}/task`);
    assert.is(tids.length, 4);
    const taskStatus = (tid: string): string => readFileSync(`/proc/${fx.pid}/task/${tid}/status`, 'utf8');
    const frozen = freeze(fx.pid);
    try {
      assert.equal([...frozen.threads.keys()].sort(), tids.map(Number).sort());
      for (const tid of tids) {
        assert.match(taskStatus(tid), /^State:\s*t \(tracing stop\)/m);
        assert.match(taskStatus(tid), new RegExp(`^TracerPid:\\s*${process.pid}$`, 'm'));
      }
    } finally {
      thaw(frozen, { leaveStopped: false });
    }
    for (const tid of tids) {
      assert.match(taskStatus(tid), /^TracerPid:\s*0$/m);
      assert.not.match(taskStatus(tid), /^State:\s*[tT]/m);
    }
  });
});

// A process counting queued real-time signals, and a sender flooding it with them.
const COUNTER_C = `#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
static volatile sig_atomic_t n;
static void count(int s) { n++; }
int main(void) {
  struct sigaction sa = { .sa_handler = count, .sa_flags = SA_RESTART };
  sigaction(SIGRTMIN, &sa, 0);
  sigset_t set; sigemptyset(&set); sigaddset(&set, SIGUSR2); sigprocmask(SIG_BLOCK, &set, 0);
  int sig; sigwait(&set, &sig);
  printf("%d\\n", (int)n);
  return 0;
}`;
const SENDER_C = `#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int pid = atoi(argv[1]), k = atoi(argv[2]); union sigval v = { 0 };
  for (int i = 0; i < k; i++) { while (sigqueue(pid, SIGRTMIN, v) != 0) usleep(100); usleep(20); }
  return 0;
}`;

test('freezing during a flood of queued signals loses none (signal-delivery-stops hand theirs back)', async () => {
  const SIGNALS = 3000;
  const dir = mkdtempSync(join(tmpdir(), 'cr-signals-'));
  const outFd = openSync(join(dir, 'out'), 'w');
  try {
    await withProcess([buildC(COUNTER_C)], { fds: [[outFd, 1]] }, async (pid) => {
      // SIGRTMIN's default action kills: send none before the counter catches it.
      const catches = (): boolean => ((BigInt('0x' + /^SigCgt:\s*([0-9a-f]+)/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))![1]!) >> 33n) & 1n) === 1n;
      for (let waited = 0; !catches(); waited++) {
        assert.ok(waited < 10_000, 'the counter never installed its SIGRTMIN handler');
        sleep(1);
      }
      await withProcess([buildC(SENDER_C), String(pid), String(SIGNALS)], { fds: [] }, (sender) => {
        let freezes = 0;
        while (freezes < 20 || waitpid(sender, WNOHANG) === null) {
          thaw(freeze(pid), { leaveStopped: false });
          freezes++;
        }
      });
      kill(pid, SIGUSR2);
      assert.is(reap(pid, 10_000).code, 0);
      assert.is(readFileSync(join(dir, 'out'), 'utf8'), `${SIGNALS}\n`);
    });
  } finally {
    closeSync(outFd);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('packets and plain bytes in one pipe: refused with one line, bytes untouched', async () => {
  await withFixture('mixed', async (fx) => {
    const r = await cr(['dump', '--fds-only', '--pid', String(fx.pid), '-o', join(fx.dir, 'image')]);
    assert.is(r.code, 1);
    assert.match(r.stderr, /^cr dump: the pipe at fd 3 \(read\), fd 4 \(write\) holds packet-mode \(O_DIRECT\) data and plain bytes together/);
    assert.is(r.stderr.trim().split('\n').length, 1);
    assert.not.ok(existsSync(join(fx.dir, 'image')));
    assertRunning(fx.pid);
    assert.equal(fixtureReadBack(fx.pid, fx.dir), { p0: { data: Buffer.concat([pattern(16, 3), pattern(17, 4)]).toString('base64'), reads: [3, 4] } });
  });
});

test('unsupported fds: one line naming every one with its kind; --skip-unsupported drops and records them', async () => {
  await withFixture('unsupported', async (fx) => {
    const image = join(fx.dir, 'image');
    const r = await cr(['dump', '--fds-only', '--pid', String(fx.pid), '-o', image]);
    assert.is(r.code, 1);
    assert.match(
      r.stderr,
      /^cr dump: fd 5 is a socket, which cr cannot dump \(socket:\[\d+\]: only unix, TCP and UDP sockets are supported\); fd 6 is a pidfd, which cr cannot dump \(its process has exited and been reaped: a restore would have none to refer to\); fd 7 is an? userfaultfd, which cr cannot dump \([^)]*\); --skip-unsupported leaves them out\n$/,
    );
    assert.not.ok(existsSync(image));
    assertRunning(fx.pid);
    await dumpOk(fx, ['--skip-unsupported']);
    const img = readImage(image);
    assert.equal(
      img.dropped.map((d) => [d.fd, d.kind]),
      [[5, 'socket'], [6, 'pidfd'], [7, 'userfaultfd']],
    );
    assert.equal(onlyProcess(img.table).fds.map((f) => f.fd), [3, 4]);
    const shown = await cr(['show', image]);
    assert.is(shown.code, 0);
    assert.match(shown.stdout, /dropped fd 6 \(pidfd\)/);
    assert.equal(fixtureReadBack(fx.pid, fx.dir), { p0: { data: pattern(21, 3).toString('base64'), reads: [3] } });
  });
});

test('a deleted file is dumped with its contents, named by the path it had', async () => {
  await withFixture('deleted', async (fx) => {
    const r = await cr(['dump', '--fds-only', '--pid', String(fx.pid), '-o', join(fx.dir, 'image')]);
    assert.is(r.code, 0, r.stderr);
    const shown = await cr(['show', join(fx.dir, 'image')]);
    assert.match(shown.stdout, /^\s*3\s+deleted .*gone \(deleted\), 0 B \(0 B of data\) @ 0/m);
    assertRunning(fx.pid);
  });
});

test('--leave-stopped: the process stays stopped, then runs on with its bytes when continued', async () => {
  await withFixture('seed', async (fx) => {
    await dumpOk(fx, ['--leave-stopped']);
    const status = readFileSync(`/proc/${fx.pid}/status`, 'utf8');
    assert.match(status, /^State:\s*T \(stopped\)/m);
    assert.match(status, /^TracerPid:\s*0$/m);
    kill(fx.pid, SIGCONT);
    assert.equal(fixtureReadBack(fx.pid, fx.dir), { p0: { data: pattern(1, 11).toString('base64'), reads: [11] } });
  });
});

test('--leave-stopped, but the image cannot be written: refused before the freeze, the process runs on', async () => {
  await withFixture('seed', async (fx) => {
    const image = join(fx.dir, 'missing-dir', 'image');
    const r = await cr(['dump', '--fds-only', '--pid', String(fx.pid), '-o', image, '--leave-stopped']);
    assert.is(r.code, 1);
    assert.match(r.stderr, /^cr dump: cannot write .*missing-dir\/image: ENOENT \(open\)\n$/);
    // A stopped fixture would never answer SIGUSR1.
    assert.equal(fixtureReadBack(fx.pid, fx.dir), { p0: { data: pattern(1, 11).toString('base64'), reads: [11] } });
  });
});

test('a process that was stopped before the dump stays stopped after it', async () => {
  await withFixture('seed', async (fx) => {
    kill(fx.pid, 19); // SIGSTOP
    const deadline = Date.now() + 5000;
    while (!/^State:\s*T/m.test(readFileSync(`/proc/${fx.pid}/status`, 'utf8'))) {
      if (Date.now() > deadline) assert.unreachable('fixture did not stop');
      sleep(1);
    }
    // The real parent's wait sees the stop; reap it so it does not linger.
    waitpid(fx.pid, WNOHANG | WUNTRACED);
    await dumpOk(fx);
    assert.match(readFileSync(`/proc/${fx.pid}/status`, 'utf8'), /^State:\s*T \(stopped\)/m);
    kill(fx.pid, SIGCONT);
    assert.equal(fixtureReadBack(fx.pid, fx.dir), { p0: { data: pattern(1, 11).toString('base64'), reads: [11] } });
  });
});

test('errors: no such pid, bad arguments', async () => {
  let r = crProcess(['dump', '--fds-only', '--pid', '4000000', '-o', join(imageDir, 'none')]);
  assert.is(r.code, 1);
  assert.is(r.stderr, 'cr dump: no process with pid 4000000\n');
  r = await cr(['dump', '--fds-only', '--pid', 'abc', '-o', join(imageDir, 'none')]);
  assert.is(r.code, 2);
  r = await cr(['dump', '-o', join(imageDir, 'none')]);
  assert.is(r.code, 2);
  assert.is(r.stderr, 'cr dump: --pid PID is required; see node cr.mjs dump --help\n');
});

unprivilegedTest('a pid we may not trace: one EPERM line, the process left running', async () => {
  await withFixture('seed', async (fx) => {
    const out = mkdtempSync(join(tmpdir(), 'cr-nobody-'));
    chownSync(out, NOBODY, NOBODY);
    try {
      const denied = crProcess(['dump', '--fds-only', '--pid', String(fx.pid), '-o', join(out, 'image')], { uid: NOBODY });
      assert.is(denied.code, 1);
      assert.match(denied.stderr, new RegExp(`^cr dump: may not trace process ${fx.pid}: ptrace\\(PTRACE_SEIZE, pid=${fx.pid}, options=0x0\\): EPERM .*\\n$`));
      assertRunning(fx.pid);
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

test('a process another tracer holds is refused, and left to that tracer', async () => {
  await withFixture('seed', async (fx) => {
    seizeAndStop(fx.pid);
    try {
      const r = await cr(['dump', '--fds-only', '--pid', String(fx.pid), '-o', join(fx.dir, 'image')]);
      assert.is(r.code, 1);
      assert.is(r.stderr, `cr dump: process ${fx.pid} is already traced by pid ${process.pid}\n`);
    } finally {
      detach(fx.pid);
    }
    assertRunning(fx.pid);
    assert.equal(fixtureReadBack(fx.pid, fx.dir), { p0: { data: pattern(1, 11).toString('base64'), reads: [11] } });
  });
});

test('IMAGE: an existing one is kept (unless --force), a directory is refused, a symlink is never followed', async () => {
  await withFixture('seed', async (fx) => {
    const image = join(fx.dir, 'image');
    writeFileSync(image, 'precious');
    let r = await cr(['dump', '--fds-only', '--pid', String(fx.pid), '-o', image]);
    assert.is(r.code, 2);
    assert.is(r.stderr, `cr dump: ${image} exists (use --force to replace it)\n`);
    assert.is(readFileSync(image, 'utf8'), 'precious');

    const dir = join(fx.dir, 'adir');
    mkdirSync(dir);
    for (const extra of [[], ['--force']]) {
      r = await cr(['dump', '--fds-only', '--pid', String(fx.pid), '-o', dir, ...extra]);
      assert.is(r.code, 2);
      assert.is(r.stderr, `cr dump: ${dir} is a directory\n`);
    }

    const target = join(fx.dir, 'target');
    writeFileSync(target, 'not to be touched');
    const link = join(fx.dir, 'link');
    symlinkSync(target, link);
    r = await cr(['dump', '--fds-only', '--pid', String(fx.pid), '-o', link]);
    assert.is(r.code, 2);
    await dumpOk(fx, ['--force']);
    r = await cr(['dump', '--fds-only', '--pid', String(fx.pid), '-o', link, '--force']);
    assert.is(r.code, 0, r.stderr);
    assert.ok(lstatSync(link).isFile());
    assert.is(readFileSync(target, 'utf8'), 'not to be touched');
    assert.is(statSync(image).mode & 0o777, 0o600);
    assert.is(statSync(link).mode & 0o777, 0o600);
    assert.equal(onlyProcess(readImage(link).table), onlyProcess(readImage(image).table));
    assert.equal(fixtureReadBack(fx.pid, fx.dir), { p0: { data: pattern(1, 11).toString('base64'), reads: [11] } });
  });
});

test('dump --force removes what a killed cr left beside IMAGE (.IMAGE.<16 hex>.tmp): only its own regular files, never one being written, a symlink, a directory, another name', async () => {
  await withFixture('seed', async (fx) => {
    const image = await dumpOk(fx);
    const at = (hex: string, name = 'image'): string => join(fx.dir, `.${name}.${hex}.tmp`);
    // Left by a cr killed between the exchange of names and the unlink, and by one killed while
    // writing to a random name: removed.
    writeFileSync(at('0123456789abcdef'), readFileSync(image));
    writeFileSync(at('fedcba9876543210'), 'half an image', { mode: 0o600 });
    // Not removed: one a cr holds locked (being written), a symlink (and what it points to), a
    // directory, a file with a second link, another user's, names that are not cr's for IMAGE.
    const victim = join(fx.dir, 'victim');
    writeFileSync(victim, 'not to be touched');
    const locked = at('00000000000000aa');
    writeFileSync(locked, 'being written');
    symlinkSync(victim, at('00000000000000bb'));
    mkdirSync(at('00000000000000cc'));
    writeFileSync(at('00000000000000dd'), 'linked');
    linkSync(at('00000000000000dd'), join(fx.dir, 'second-link'));
    writeFileSync(at('00000000000000ee'), 'another user\'s');
    chownSync(at('00000000000000ee'), NOBODY, NOBODY);
    for (const other of [at('0123456789ABCDEF'), at('0123456789abcde'), at('0123456789abcdef', 'other'), join(fx.dir, '.image.0123456789abcdef.tmpx')]) writeFileSync(other, 'not a name of cr for IMAGE');
    const ready = join(fx.dir, 'lock-ready');
    const holder = ['python3', '-c', 'import fcntl, sys, time\nf = open(sys.argv[1])\nfcntl.flock(f, fcntl.LOCK_EX)\nopen(sys.argv[2], "w").write("1")\ntime.sleep(1000)', locked, ready];
    await withProcess(holder, { fds: [] }, async () => {
      waitFile(fx.dir, 'lock-ready');
      const before = readdirSync(fx.dir).filter((n) => n.startsWith('.')).sort();
      const r = await cr(['dump', '--fds-only', '--pid', String(fx.pid), '-o', image, '--force']);
      assert.is(r.code, 0, r.stderr);
      const gone = new Set([`.image.0123456789abcdef.tmp`, `.image.fedcba9876543210.tmp`]);
      assert.equal(readdirSync(fx.dir).filter((n) => n.startsWith('.')).sort(), before.filter((n) => !gone.has(n)));
    });
    assert.is(readFileSync(victim, 'utf8'), 'not to be touched');
    assert.is(readFileSync(locked, 'utf8'), 'being written');
    assert.ok(onlyProcess(readImage(image).table).fds.length > 0, "the new image at IMAGE");
    assertRunning(fx.pid);
  });
});

unprivilegedTest('plan reads every fixture image as an unprivileged user', () => {
  assert.is(images.length, 11);
  for (const image of images) {
    chownSync(image, NOBODY, NOBODY);
    chmodSync(imageDir, 0o755);
    const r = crProcess(['plan', image], { uid: NOBODY });
    assert.is(r.code, 0, `${image}: ${r.stderr}`);
  }
});

test.after(() => {
  rmSync(imageDir, { recursive: true, force: true });
});

test.run();
