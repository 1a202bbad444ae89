// restore end to end on real processes. Every fixture of the dump tests (test/fixtures/fdlayout.py)
// is dumped, restored into a new process and into live processes whose own fds collide with the
// image's, dumped again and compared with `cr diff`; the restored process (a small C reader,
// test/fixtures/restore-reader.c) must then read exactly the bytes that were queued, and the
// original must still hold its own.
import { oneProcess } from '../src/model/fdtable.js';
import { onlyProcess } from '../src/model/fdtable.js';
import { spawn as spawnAsync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeFd, openFile, writeFd } from '../bridge/file.js';
import { pipe2 } from '../bridge/pipe.js';
import { prlimit, RLIMIT_NOFILE } from '../bridge/rlimit.js';
import { kill, SIGUSR1 } from '../bridge/signal.js';
import { reap, spawn } from '../bridge/spawn.js';
import { encodeImage, IMAGE_FORMAT_VERSION, IMAGE_MAGIC, readImage } from '../src/image/format.js';
import { O_RDWR, type FdTable } from '../src/model/fdtable.js';
import { listFds } from '../src/proc/fds.js';
import { cr, CR, crProcess, type Run } from './helpers/cli.js';
import { assertRunning, expectedReadBack, fixtureReadBack, sleep, spawnFixture, waitFile, type ReadBack } from './helpers/fdlayout.js';
import { ensureReaped, buildFixture } from './helpers/processes.js';
import { asUser, NOBODY, unprivilegedTest } from './helpers/unprivileged.js';
import { tableJson } from '../src/model/json.js';

const READER = buildFixture('restore-reader');

const tempDir = (what: string): string => realpathSync(mkdtempSync(join(tmpdir(), `cr-restore-${what}-`)));

async function dump(pid: number, image: string): Promise<void> {
  const r = await cr(['dump', '--fds-only', '--pid', String(pid), '-o', image]);
  assert.is(r.code, 0, r.stderr);
}

async function diff(a: string, b: string): Promise<Run> {
  return cr(['diff', a, b]);
}

// ---- what the fixtures queue and how they are read back ----

/** How the reader reaches each pipe of a fixture's image (as fdlayout.py's own read-back does). */
function readerSpecs(scenario: string, fixtureDir: string): string[] {
  switch (scenario) {
    case 'seed':
      return ['p0=fd:9'];
    case 'full':
      return ['p0=fd:8'];
    case 'big':
      return ['p0=fd:5'];
    case 'fifo':
      return ['p0=fd:4', `p1=path:${join(fixtureDir, 'wfifo')}`];
    case 'halfclosed':
      return ['p0=reopen:4', 'p1=fd:5', 'p2=fd:7'];
    case 'packets':
      return ['p0=fd:3', 'p1=fd:5', 'p2=fd:7'];
    case 'pow2':
      return Array.from({ length: 7 }, (_, k) => `p${k}=fd:${1 << (2 * k)}`);
    case 'limit64':
      return Array.from({ length: 21 }, (_, k) => `p${k}=fd:${3 * k}`);
    case 'threads':
      return ['p0=fd:3', 'p1=fd:5'];
    default:
      return [];
  }
}

// ---- the original process: fdlayout.py ----

interface Fixture {
  pid: number;
  dir: string;
  image: string;
}

async function withFixture(scenario: string, fn: (fx: Fixture) => Promise<void>): Promise<void> {
  const dir = tempDir(scenario);
  const pid = spawnFixture(scenario, dir);
  try {
    waitFile(dir, 'ready');
    const image = join(dir, 'original.img');
    await dump(pid, image);
    await fn({ pid, dir, image });
  } finally {
    ensureReaped(pid);
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- the restored process: restore-reader ----

interface Reader {
  pid: number;
  dir: string;
}

/** Tell the reader to read its pipes back; returns what it read, after it exited cleanly. */
function readerReadBack(rd: Reader): ReadBack {
  kill(rd.pid, SIGUSR1);
  const text = waitFile(rd.dir, 'result');
  const end = reap(rd.pid, 10_000);
  assert.is(end.kind, 'exited');
  assert.is(end.code, 0);
  const out: ReadBack = {};
  for (const line of text.split('\n').filter(Boolean)) {
    const [name, reads, hex] = line.split(' ') as [string, string, string];
    out[name] = { data: Buffer.from(hex, 'hex').toString('base64'), reads: reads === '-' ? [] : reads.split(',').map(Number) };
  }
  return out;
}

/** `cr restore IMAGE --detach -- restore-reader ...`, run fn with the reader, then kill and reap it. */
async function withRestored(image: string, specs: string[], fn: (rd: Reader) => Promise<void>): Promise<void> {
  const dir = tempDir('reader');
  let pid = 0;
  try {
    const r = await cr(['restore', image, '--detach', '--', READER, dir, ...specs]);
    assert.is(r.code, 0, r.stderr);
    pid = Number(r.stdout.trim());
    assert.ok(pid > 0, r.stdout);
    assert.is(waitFile(dir, 'ready'), String(pid));
    await fn({ pid, dir });
  } finally {
    if (pid > 0) ensureReaped(pid);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A reader started with /dev/null at each of `fds` (plus any [ourFd, fd] pairs), for --into. */
async function withReader(
  fds: number[],
  extra: Array<[number, number]>,
  specs: string[],
  fn: (rd: Reader) => Promise<void>,
  prefix: string[] = [],
): Promise<void> {
  const dir = tempDir('target');
  const devNull = openFile('/dev/null', O_RDWR);
  let pid = 0;
  try {
    if (prefix.length > 0) chownSync(dir, NOBODY, NOBODY);
    pid = spawn([...prefix, READER, dir, ...specs], { fds: [...fds.map((fd): [number, number] => [devNull, fd]), ...extra] });
    assert.is(waitFile(dir, 'ready'), String(pid));
    await fn({ pid, dir });
  } finally {
    closeFd(devNull);
    if (pid > 0) ensureReaped(pid);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Wait until the reader sleeps in sigwait (rt_sigtimedwait), holding only its given fds. */
function waitIdle(pid: number): void {
  const deadline = Date.now() + 5000;
  while (readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0] !== '128') {
    if (Date.now() > deadline) assert.unreachable(`reader ${pid} never reached sigwait`);
    sleep(1);
  }
}

const FIXTURES = ['seed', 'full', 'big', 'fifo', 'halfclosed', 'packets', 'files', 'pow2', 'limit64', 'threads'];

/**
 * A FIFO is one pipe for whoever opens its path: while the original holds it, a restored process
 * would join that very pipe. So the original reads its FIFO empty and exits first.
 */
const sharesKernelPipe = (scenario: string): boolean => scenario === 'fifo';

for (const scenario of FIXTURES) {
  test(`restore -- CMD, ${scenario}: dump of the new process equals the image, it reads the queued bytes, the original keeps its own`, async () => {
    await withFixture(scenario, async (fx) => {
      const table = onlyProcess(readImage(fx.image).table);
      const specs = readerSpecs(scenario, fx.dir);
      const want = expectedReadBack(table, specs.map((s) => s.split('=')[0]!));
      if (sharesKernelPipe(scenario)) assert.equal(fixtureReadBack(fx.pid, fx.dir), want);
      await withRestored(fx.image, specs, async (rd) => {
        assertRunning(rd.pid);
        waitIdle(rd.pid);
        const again = join(rd.dir, 'restored.img');
        await dump(rd.pid, again);
        const d = await diff(fx.image, again);
        assert.is(d.code, 0, d.stdout);
        assert.equal(readerReadBack(rd), want);
      });
      if (!sharesKernelPipe(scenario)) assert.equal(fixtureReadBack(fx.pid, fx.dir), want);
    });
  });
}

for (const scenario of FIXTURES) {
  test(`restore --into, ${scenario}: a live target whose fds (0, 1, 2 and the image's own numbers) collide; with and without --exact`, async () => {
    await withFixture(scenario, async (fx) => {
      const table = onlyProcess(readImage(fx.image).table);
      const specs = readerSpecs(scenario, fx.dir);
      const want = expectedReadBack(table, specs.map((s) => s.split('=')[0]!));
      if (sharesKernelPipe(scenario)) assert.equal(fixtureReadBack(fx.pid, fx.dir), want);
      const imageFds = table.fds.map((f) => f.fd);
      let spare = 3;
      while (imageFds.includes(spare)) spare++;
      // One fd of the target's own beside the image's, unless that would leave the reader no
      // number for its result file (limit64 fills all but one below its limit).
      const own = spare < table.rlimit.soft - 1 ? [0, 1, 2, spare] : [0, 1, 2];
      const targetFds = [...new Set([...own, ...imageFds])].sort((a, b) => a - b);
      const kept = targetFds.filter((fd) => !imageFds.includes(fd));
      for (const exact of [false, true]) {
        await withReader(targetFds, [], specs, async (rd) => {
          waitIdle(rd.pid);
          const r = await cr(['restore', fx.image, '--into', String(rd.pid), ...(exact ? ['--exact'] : [])]);
          assert.is(r.code, 0, r.stderr);
          assert.match(r.stdout, new RegExp(`^restored ${table.fds.length} fds?, .* into pid ${rd.pid}`));
          assertRunning(rd.pid);
          for (const fd of exact ? [] : kept) assert.is(readlinkSync(`/proc/${rd.pid}/fd/${fd}`), '/dev/null');
          const again = join(rd.dir, 'restored.img');
          await dump(rd.pid, again);
          const d = await diff(fx.image, again);
          if (exact || kept.length === 0) assert.is(d.code, 0, d.stdout);
          else {
            assert.is(d.code, 1);
            assert.is(d.stdout, kept.map((fd) => `fd ${fd}: only in B (chr /dev/null)\n`).join(''));
          }
          assert.equal(readerReadBack(rd), want);
        });
      }
      if (!sharesKernelPipe(scenario)) assert.equal(fixtureReadBack(fx.pid, fx.dir), want);
    });
  });
}

/** A table for failure tests: pipes with bytes at 0, 1, 2 and 5, then a file at fd 7. */
function stagingTable(file: string): FdTable {
  return {
    fds: [
      { fd: 0, desc: 0, cloexec: false },
      { fd: 1, desc: 1, cloexec: false },
      { fd: 2, desc: 1, cloexec: false },
      { fd: 5, desc: 2, cloexec: true },
      { fd: 7, desc: 3, cloexec: false },
    ],
    descs: [
      { id: 0, kind: 'pipe', flags: 0, pipe: 0 },
      { id: 1, kind: 'pipe', flags: 1, pipe: 0 },
      { id: 2, kind: 'pipe', flags: 0, pipe: 1 },
      { id: 3, kind: 'file', flags: 0o100000, path: file, offset: 3 },
    ],
    pipes: [
      { id: 0, capacity: 65536, data: Buffer.from('hello') },
      { id: 1, capacity: 4096, data: Buffer.alloc(0) },
    ],
    rlimit: { soft: 1024, hard: 4096 },
  };
}

const fdLinks = (pid: number): string[] => listFds(pid).map((fd) => `${fd} ${readlinkSync(`/proc/${pid}/fd/${fd}`)}`);
const limits = (pid: number): string => /^Max open files.*$/m.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'))![0];
const sigBlk = (pid: number): string => /^SigBlk:\s*(\w+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]!;

const OWN_BYTES = { own: { data: Buffer.from('its own bytes').toString('base64'), reads: [13] } };

/** Run fn with a pipe holding 'its own bytes', its write end closed; returns after closing the read end. */
async function withOwnPipe(fn: (readEnd: number) => Promise<void>): Promise<void> {
  const [r, w] = pipe2(0);
  try {
    writeFd(w, Buffer.from('its own bytes'));
    closeFd(w);
    await fn(r);
  } finally {
    closeFd(r);
  }
}

unprivilegedTest('--into, staging failure: a file the target may not open fails after pipes were staged; the target is exactly as it was', async () => {
  const dir = tempDir('staging');
  try {
    const secret = join(dir, 'secret');
    writeFileSync(secret, 'root only', { mode: 0o600 });
    chmodSync(dir, 0o755);
    const tableFile = join(dir, 'table.json');
    writeFileSync(tableFile, tableJson(oneProcess(stagingTable(secret), 1)));
    // The target runs as nobody: the open is its own, so an image cannot hand it a root-only file.
    await withOwnPipe(async (r) => {
      await withReader([0, 1, 2, 7, 9], [[r, 5]], ['own=fd:5'], async (rd) => {
        waitIdle(rd.pid);
        const before = { links: fdLinks(rd.pid), limits: limits(rd.pid), mask: sigBlk(rd.pid) };
        const result = await cr(['restore', tableFile, '--into', String(rd.pid)]);
        assert.is(result.code, 1);
        assert.match(
          result.stderr,
          new RegExp(`^cr restore: op \\d+ of \\d+ \\(fd \\d+\\): open\\("${secret}", O_RDONLY\\|O_LARGEFILE\\|O_NOCTTY\\) = \\d+: EACCES \\(Permission denied\\); rolled back: pid ${rd.pid}'s fd table is as it was\\n$`),
        );
        const op = Number(/op (\d+)/.exec(result.stderr)![1]);
        assert.ok(op > 3, `the failing open should come after pipes were made (op ${op})`);
        assertRunning(rd.pid);
        assert.equal(fdLinks(rd.pid), before.links);
        assert.is(limits(rd.pid), before.limits);
        // Back in sigwait (which swaps the mask while it waits) with the mask it had.
        waitIdle(rd.pid);
        assert.is(sigBlk(rd.pid), before.mask);
        assert.equal(readerReadBack(rd), OWN_BYTES);
      }, asUser(NOBODY));
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--into --exact, staging failure (a missing file): rolled back, the target still reads its own pipe', async () => {
  const dir = tempDir('staging2');
  try {
    const tableFile = join(dir, 'table.json');
    writeFileSync(tableFile, tableJson(oneProcess(stagingTable(join(dir, 'missing')), 1)));
    await withOwnPipe(async (r) => {
      await withReader([0, 1, 2, 7], [[r, 5]], ['own=fd:5'], async (rd) => {
        waitIdle(rd.pid);
        const before = fdLinks(rd.pid);
        const result = await cr(['restore', tableFile, '--into', String(rd.pid), '--exact']);
        assert.is(result.code, 1);
        assert.match(result.stderr, /: ENOENT \(No such file or directory\); rolled back: pid \d+'s fd table is as it was\n$/);
        assertRunning(rd.pid);
        assert.equal(fdLinks(rd.pid), before);
        assert.equal(readerReadBack(rd), OWN_BYTES);
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('restore -- CMD failure: one line naming op, fd and errno; the new process is killed', async () => {
  const dir = tempDir('fail');
  try {
    const tableFile = join(dir, 'table.json');
    writeFileSync(tableFile, tableJson(oneProcess(stagingTable(join(dir, 'missing')), 1)));
    const r = await cr(['restore', tableFile, '--detach', '--', 'sleep', '30']);
    assert.is(r.code, 1);
    assert.is(r.stdout, '');
    const m = /^cr restore: op \d+ of \d+ \(fd \d+\): open\("[^"]*missing", O_RDONLY\|O_LARGEFILE\|O_NOCTTY\) = \d+: ENOENT \(No such file or directory\); pid (\d+) \(sleep\) was killed\n$/.exec(r.stderr);
    assert.ok(m, r.stderr);
    assert.not.ok(existsSync(`/proc/${m![1]}`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a target whose table is full up to its limit: works when the hard limit leaves room, else a clear error and an untouched target', async () => {
  await withFixture('seed', async (fx) => {
    const all = Array.from({ length: 64 }, (_, i) => i);
    await withReader(all, [], [], async (rd) => {
      waitIdle(rd.pid);
      prlimit(rd.pid, RLIMIT_NOFILE, { soft: 64, hard: 64 });
      const before = { links: fdLinks(rd.pid), limits: limits(rd.pid) };
      const r = await cr(['restore', fx.image, '--into', String(rd.pid)]);
      assert.is(r.code, 2);
      assert.is(r.stderr, 'cr restore: no free fd number left below the target\'s hard RLIMIT_NOFILE 64 to create pipe 0 (every number is taken and a temporary fd is needed)\n');
      assertRunning(rd.pid);
      assert.equal(fdLinks(rd.pid), before.links);
      assert.is(limits(rd.pid), before.limits);
    });
    await withReader(all, [], [], async (rd) => {
      waitIdle(rd.pid);
      prlimit(rd.pid, RLIMIT_NOFILE, { soft: 64, hard: 128 });
      const r = await cr(['restore', fx.image, '--into', String(rd.pid)]);
      assert.is(r.code, 0, r.stderr);
      assert.match(r.stderr, /warning: hard RLIMIT_NOFILE 4096 is above the target's 128/);
      assertRunning(rd.pid);
      assert.equal(listFds(rd.pid), all);
      assert.match(limits(rd.pid), /^Max open files\s+128\s+128\s/);
      const again = join(rd.dir, 'restored.img');
      await dump(rd.pid, again);
      const d = await diff(fx.image, again);
      assert.is(d.code, 1);
      const others = all.filter((fd) => ![4, 7, 9, 12].includes(fd));
      assert.is(d.stdout, [...others.map((fd) => `fd ${fd}: only in B (chr /dev/null)`), 'RLIMIT_NOFILE 1024:4096 in A, 128:128 in B', ''].join('\n'));
    });
  });
});

test('a controlling terminal is not restorable: /dev/tty fails with ENXIO in a process without one, and the process is killed', async () => {
  await withFixture('tty', async (fx) => {
    // setsid: cr (and so the new process) has no controlling terminal, wherever the tests run.
    const r = crProcess(['restore', fx.image, '--', 'sleep', '30'], { setsid: true });
    assert.is(r.code, 1);
    assert.match(r.stderr, /^cr restore: op \d+ of \d+ \(fd \d+\): open\("\/dev\/tty", O_RDWR\|O_NONBLOCK\|O_LARGEFILE\|O_NOCTTY\) = \d+: ENXIO \(No such device or address\); pid \d+ \(sleep\) was killed\n$/);
  });
});

test('without --detach cr waits for CMD and exits with its status, saying so when it is not 0; --pidfile names it', async () => {
  await withFixture('seed', async (fx) => {
    const pidfile = join(fx.dir, 'pid');
    // fd 9 is the restored read end: with the write ends closed, cat reads the 11 queued bytes and
    // meets the end of the pipe; sh exits with how many there were.
    const r = crProcess(['restore', fx.image, '--pidfile', pidfile, '--', 'sh', '-c', 'exec 4>&- 7>&-; n=$(cat <&9 | wc -c); exit $n']);
    assert.is(r.stdout, '');
    assert.is(r.code, 11);
    assert.match(readFileSync(pidfile, 'utf8'), /^\d+\n$/);
    // sh's status is not 0: said on cr's stderr (the image gives sh no fd 2 of its own to say it on).
    assert.is(r.stderr, `cr restore: sh (pid ${readFileSync(pidfile, 'utf8').trim()}) exited with status 11; it has no fd 2\n`);
  });
});

test('without --detach a signal to cr reaches CMD, and cr exits 128 + the signal', async () => {
  await withFixture('seed', async (fx) => {
    const pidfile = join(fx.dir, 'pid');
    const child = spawnAsync(process.execPath, [CR, 'restore', fx.image, '--pidfile', pidfile, '--', 'sleep', '30'], { stdio: 'ignore' });
    try {
      const ended = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      const pid = Number(waitFile(fx.dir, 'pid'));
      assert.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /^sleep\0/);
      child.kill('SIGTERM');
      assert.is(await ended, 128 + 15);
      assert.not.ok(existsSync(`/proc/${pid}`));
    } finally {
      child.kill('SIGKILL');
    }
  });
});

test('a hard limit above what the kernel allows the target: restored as far as it can be, with a warning', async () => {
  const dir = tempDir('hard');
  try {
    const own = prlimit(0, RLIMIT_NOFILE);
    const table = stagingTable('/dev/null');
    table.descs[3] = { id: 3, kind: 'chr', flags: 0o100000, path: '/dev/null' };
    table.rlimit = { soft: 1024, hard: own.hard + 1000 };
    const tableFile = join(dir, 'table.json');
    writeFileSync(tableFile, tableJson(oneProcess(table, 1)));
    // The reader, not sleep: sleep's setlocale() may hold a locale file open for a moment.
    const r = await cr(['restore', tableFile, '--detach', '--', READER, dir]);
    const pid = Number(r.stdout.trim());
    try {
      assert.is(r.code, 0, r.stderr);
      assert.is(r.stderr, `cr restore: warning: hard RLIMIT_NOFILE ${own.hard + 1000} is above the target's ${own.hard} and cannot be raised without CAP_SYS_RESOURCE; it stays ${own.hard}\n`);
      assert.match(limits(pid), new RegExp(`^Max open files\\s+1024\\s+${own.hard}\\s`));
      waitFile(dir, 'ready');
      waitIdle(pid);
      assert.equal(listFds(pid), [0, 1, 2, 5, 7]);
    } finally {
      if (pid > 0) ensureReaped(pid);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a FIFO the dumped process still holds with the image\'s bytes: joined, its bytes not queued twice; the original keeps its bytes', async () => {
  await withFixture('fifo', async (fx) => {
    const want = expectedReadBack(onlyProcess(readImage(fx.image).table), ['p0', 'p1']);
    const r = await cr(['restore', fx.image, '--detach', '--', 'sleep', '30']);
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stderr, '');
    ensureReaped(Number(r.stdout.trim()));
    assert.equal(fixtureReadBack(fx.pid, fx.dir), want, 'the 5000 bytes once, not twice');
  });
});

test('--into a process with four threads, one blocked in read on a pipe the image replaces', async () => {
  await withFixture('threads', async (fx) => {
    await withFixture('seed', async (seed) => {
      assert.is(readdirSync(`/proc/${fx.pid}/task`).length, 4);
      const r = await cr(['restore', seed.image, '--into', String(fx.pid)]);
      assert.is(r.code, 0, r.stderr);
      // The thread reading fd 3 may end now: it meets the end of its pipe once fd 4 is replaced.
      for (const tid of readdirSync(`/proc/${fx.pid}/task`)) {
        let status: string;
        try {
          status = readFileSync(`/proc/${fx.pid}/task/${tid}/status`, 'utf8');
        } catch {
          continue;
        }
        assert.match(status, /^TracerPid:\s*0$/m);
        assert.not.match(status, /^State:\s*[tT]/m);
      }
      const again = join(fx.dir, 'restored.img');
      await dump(fx.pid, again);
      // fd 4, the write end the reader thread waited on, is now the seed's; 3, 5 and 6 stay.
      const d = await diff(seed.image, again);
      assert.is(d.stdout, ['fd 3: only in B (pipe read end)', 'fd 5: only in B (pipe read end)', 'fd 6: only in B (pipe write end)', ''].join('\n'));
      assert.equal(onlyProcess(readImage(again).table).rlimit, onlyProcess(readImage(seed.image).table).rlimit);
    });
  });
});

test('a signal to cr during a restore --into is held until the restore is complete, then ends cr', async () => {
  const dir = tempDir('held');
  try {
    // One pipe and 3000 dups of its read end: long enough a replay to signal cr in the middle.
    const table: FdTable = {
      fds: [{ fd: 3, desc: 1, cloexec: false }, ...Array.from({ length: 3000 }, (_, i) => ({ fd: 10 + i, desc: 0, cloexec: false }))],
      descs: [{ id: 0, kind: 'pipe', flags: 0, pipe: 0 }, { id: 1, kind: 'pipe', flags: 1, pipe: 0 }],
      pipes: [{ id: 0, capacity: 65536, data: Buffer.from('held') }],
      rlimit: { soft: 4096, hard: 4096 },
    };
    const tableFile = join(dir, 'table.json');
    writeFileSync(tableFile, tableJson(oneProcess(table, 1)));
    await withReader([], [], ['p0=fd:10'], async (rd) => {
      waitIdle(rd.pid);
      const child = spawnAsync(process.execPath, [CR, 'restore', tableFile, '--into', String(rd.pid)], { stdio: 'ignore' });
      try {
        const ended = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
        const deadline = Date.now() + 10_000;
        while (/^TracerPid:\s*0$/m.test(readFileSync(`/proc/${rd.pid}/status`, 'utf8'))) {
          if (Date.now() > deadline) assert.unreachable('cr never attached');
        }
        child.kill('SIGTERM');
        assert.is(await ended, 128 + 15);
        assertRunning(rd.pid);
        assert.equal(listFds(rd.pid), table.fds.map((f) => f.fd));
        assert.equal(readerReadBack(rd), { p0: { data: Buffer.from('held').toString('base64'), reads: [4] } });
      } finally {
        child.kill('SIGKILL');
      }
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an image with fds dump left out (--skip-unsupported): restored without them, with a warning', async () => {
  const dir = tempDir('unsupported');
  const pid = spawnFixture('unsupported', dir);
  try {
    waitFile(dir, 'ready');
    const image = join(dir, 'original.img');
    const dumped = await cr(['dump', '--fds-only', '--pid', String(pid), '-o', image, '--skip-unsupported']);
    assert.is(dumped.code, 0, dumped.stderr);
    const readerDir = join(dir, 'reader');
    mkdirSync(readerDir);
    const r = await cr(['restore', image, '--detach', '--', READER, readerDir, 'p0=fd:3']);
    const restored = Number(r.stdout.trim());
    try {
      assert.is(r.code, 0, r.stderr);
      assert.is(r.stderr, 'cr restore: warning: the image left out fd 5 (socket), fd 6 (pidfd), fd 7 (userfaultfd); the restored process will not have them\n');
      waitFile(readerDir, 'ready');
      waitIdle(restored);
      assert.equal(listFds(restored), [3, 4]);
      assert.equal(readerReadBack({ pid: restored, dir: readerDir }), expectedReadBack(onlyProcess(readImage(image).table), ['p0']));
    } finally {
      if (restored > 0) ensureReaped(restored);
    }
  } finally {
    ensureReaped(pid);
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- refusals before any process is touched ----

/** A table with /dev/null at fd 50 (or the device at `path` at fd 3), limit 1024. */
const oneFile = (path = '/dev/null', fd = 50): FdTable => ({
  fds: [{ fd, desc: 0, cloexec: false }],
  descs: [{ id: 0, kind: 'chr', flags: 0o100000, path }],
  pipes: [],
  rlimit: { soft: 1024, hard: 1024 },
});

function imageOf(file: string, table: FdTable, uid: number): string {
  writeFileSync(file, encodeImage({ magic: IMAGE_MAGIC, formatVersion: IMAGE_FORMAT_VERSION, toolVersion: '0.1.0', kernel: 'test', process: { pid: 1, comm: 'x', cmdline: [], uid }, table: oneProcess(table, 1), dropped: [] }), { mode: 0o644 });
  return file;
}

test('paths that lead into /proc through symlinks are refused before any process is touched; plan still plans them', async () => {
  const dir = tempDir('proclink');
  try {
    symlinkSync('/dev/null', join(dir, 'null'));
    symlinkSync(`${'../'.repeat(dir.split('/').length)}proc/self/status`, join(dir, 'status'));
    const refused: Array<[string, string]> = [
      ['/dev/fd/0', '/proc/self/fd/0'], ['/dev/stdin', '/proc/self/fd/0'], ['/dev/fd/../status', '/proc/self/fd/../status'],
      ['/etc/mtab', '/proc/[^\\n]*mounts'], [join(dir, 'status'), '/proc/self/status'],
    ];
    await withReader([0, 1, 2], [], [], async (rd) => {
      const before = fdLinks(rd.pid);
      for (const [path, as] of refused) {
        const file = join(dir, 'table.json');
        writeFileSync(file, tableJson(oneProcess(oneFile(path, 3), 1)));
        const escaped = path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        for (const args of [['--', 'true'], ['--into', String(rd.pid)]]) {
          const r = await cr(['restore', file, ...args]);
          assert.is(r.code, 2, `${path} ${args[0]}: ${r.stderr}`);
          assert.match(r.stderr, new RegExp(`^cr restore: fd 3: "${escaped}" leads into /proc \\(as ${as}\\); [^\\n]+\\n$`));
        }
        // plan works from the image alone: no look-up in the file system.
        assert.is((await cr(['plan', file])).code, 0);
      }
      assert.equal(fdLinks(rd.pid), before);
      assertRunning(rd.pid);
    });
    // A symlink elsewhere is only a path: the restored fd 3 is /dev/null, where it leads.
    const file = join(dir, 'ok.json');
    writeFileSync(file, tableJson(oneProcess(oneFile(join(dir, 'null'), 3), 1)));
    const out = join(dir, 'fd3');
    const r = await cr(['restore', file, '--', '/bin/sh', '-c', `readlink /proc/$$/fd/3 > ${out}`]);
    assert.is(r.code, 0, r.stderr);
    assert.is(readFileSync(out, 'utf8'), '/dev/null\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

unprivilegedTest('an image of one user\'s process is restored as another\'s only with --allow-uid-change: --into, -- CMD, a whole process', async () => {
  const dir = tempDir('uid');
  chmodSync(dir, 0o755);
  try {
    const root = imageOf(join(dir, 'root.img'), oneFile(), 0);
    await withReader([0, 1, 2], [], [], async (rd) => {
      const before = fdLinks(rd.pid);
      let r = await cr(['restore', root, '--into', String(rd.pid)]);
      assert.is(r.code, 2, r.stderr);
      assert.is(r.stderr, `cr restore: the image was dumped from a process of uid 0, but pid ${rd.pid} runs as uid ${NOBODY}; pass --allow-uid-change to restore it anyway\n`);
      assert.equal(fdLinks(rd.pid), before);
      r = await cr(['restore', root, '--into', String(rd.pid), '--allow-uid-change']);
      assert.is(r.code, 0, r.stderr);
      assert.ok(listFds(rd.pid).includes(50));
    }, asUser(NOBODY));
    const nobodys = imageOf(join(dir, 'nobody.img'), oneFile(), NOBODY);
    let r = await cr(['restore', nobodys, '--', 'true']);
    assert.is(r.code, 2, r.stderr);
    assert.is(r.stderr, `cr restore: the image was dumped from a process of uid ${NOBODY}, but CMD (as cr's uid) runs as uid 0; pass --allow-uid-change to restore it anyway\n`);
    const out = join(dir, 'fd50');
    r = await cr(['restore', nobodys, '--allow-uid-change', '--', '/bin/sh', '-c', `readlink /proc/$$/fd/50 > ${out}`]);
    assert.is(r.code, 0, r.stderr);
    assert.is(readFileSync(out, 'utf8'), '/dev/null\n');
    // A whole process of root's restarts as cr's user when cr is not root: refused as well.
    const pid = spawn(['/bin/sleep', '60'], { fds: [] });
    const whole = join(dir, 'whole.img');
    try {
      r = await cr(['dump', '--pid', String(pid), '-o', whole]);
      assert.is(r.code, 0, r.stderr);
    } finally {
      ensureReaped(pid);
    }
    chmodSync(whole, 0o644);
    r = crProcess(['restore', whole, '--detach'], { uid: NOBODY });
    assert.is(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`^cr restore: the image was dumped from a process of uid 0, but the restarted process [^\\n]* runs as uid ${NOBODY}; pass --allow-uid-change [^\\n]+\\n$`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

unprivilegedTest('--into another user\'s process: refused in one line with ptrace\'s EPERM, the process untouched', async () => {
  const dir = tempDir('eperm');
  chmodSync(dir, 0o755);
  try {
    const file = join(dir, 'table.json');
    writeFileSync(file, tableJson(oneProcess(oneFile(), 1)), { mode: 0o644 });
    await withReader([0, 1, 2], [], [], async (rd) => {
      const before = fdLinks(rd.pid);
      const r = crProcess(['restore', file, '--into', String(rd.pid)], { uid: NOBODY });
      assert.is(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`^cr restore: may not trace process ${rd.pid}: [^\\n]*EPERM[^\\n]*\\n$`));
      assert.equal(fdLinks(rd.pid), before);
      assertRunning(rd.pid);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad input: usage, a missing command, an image that is not one, both modes at once', async () => {
  await withFixture('seed', async (fx) => {
    let r = await cr(['restore', fx.image, '--']);
    assert.is(r.code, 2);
    assert.is(r.stderr, 'cr restore: CMD is missing after "--"; see node cr.mjs restore --help\n');
    // An fd-table image alone is no process to restart (test/cli-process.test.ts has the whole-process kind).
    r = await cr(['restore', fx.image]);
    assert.is(r.code, 2);
    assert.match(r.stderr, /^cr restore: \S+ holds an fd table only \(dump --fds-only\): restore it with -- CMD or --into PID; [^\n]+\n$/);
    r = await cr(['restore', fx.image, '--', 'no-such-command-here']);
    assert.is(r.code, 2);
    assert.is(r.stderr, 'cr restore: no-such-command-here: command not found\n');
    r = await cr(['restore', fx.image, '--into', '1', '--', 'sleep', '1']);
    assert.is(r.code, 2);
    r = await cr(['restore', fx.image, '--into', 'abc']);
    assert.is(r.code, 2);
    r = await cr(['restore', join(fx.dir, 'ready'), '--', 'sleep', '1']);
    assert.is(r.code, 2);
    assert.match(r.stderr, /not a valid cr image/);
    r = await cr(['restore', fx.image, '--into', '4000000']);
    assert.is(r.code, 1);
    assert.is(r.stderr, 'cr restore: no process with pid 4000000\n');
  });
});

test.run();
