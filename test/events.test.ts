// The event family of fds (src/kinds/: epoll), end to end: a C program
// (test/fixtures/events-selfcheck.c) holds them, checks them itself (interest lists as fdinfo shows
// them, which description each item watches by kcmp KCMP_EPOLL_TFD, the ready sets, a one-shot and
// an exclusive item firing) before and after a whole-process dump, and again in every restore
// mode: `-- CMD`, `--into` a target whose own fds collide (with and without --exact), and
// restart. Plans checked by the simulator, show and diff, bad descriptions, and a dump refused
// for an epoll watching a file no fd of the process holds.
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeFd, openFile, writeFd } from '../bridge/file.js';
import { spawn } from '../bridge/spawn.js';
import { O_RDWR, oneProcess, type FdTable } from '../src/model/fdtable.js';
import { planRestore } from '../src/plan/planner.js';
import { SimProcess, SimWorld } from '../src/sim/kernel.js';
import { verify } from '../src/sim/verify.js';
import { cr } from './helpers/cli.js';
import { assertRunning, waitFile } from './helpers/fdlayout.js';
import { ensureReaped, buildFixture } from './helpers/processes.js';
import { builtAndDumped, passesInEveryMode } from './helpers/selfcheck-modes.js';

const PROG = buildFixture('events-selfcheck');
const IMAGE_FDS = [5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26];

const tempDir = (what: string): string => realpathSync(mkdtempSync(join(tmpdir(), `cr-events-${what}-`)));

test('epolls (moved and dup-shadowed targets, an epoll of an epoll, ET, one-shot, exclusive), timerfds (each clock, relative, absolute, periodic, unread expirations) a signalfd, memfds (sparse, sealed, noexec), deleted files (sparse, read-only, append-only), an inotify with a skipped wd: PASS before and after the dump and in every restore mode', async () => {
  const dir = tempDir('modes');
  try {
    const image = join(dir, 'image');
    const table = await builtAndDumped(PROG, dir, image);
    const at = (fd: number) => table.descs.find((d) => d.id === table.fds.find((f) => f.fd === fd)!.desc)!;
    assert.equal(IMAGE_FDS.map((fd) => at(fd).kind), ['pipe', 'pipe', 'eventfd', 'eventfd', 'epoll', 'epoll', 'epoll', 'eventfd', 'eventfd', 'timerfd', 'timerfd', 'timerfd', 'timerfd', 'timerfd', 'signalfd', 'memfd', 'memfd', 'deleted', 'deleted', 'deleted', 'inotify']);
    const m21 = at(21);
    assert.ok(m21.kind === 'memfd' && m21.extents.length === 2 && m21.size === 4 << 20, JSON.stringify(m21).slice(0, 300));
    // The absolute timer keeps its expiry (read a few microseconds late at most), the disarmed one its ticks.
    const t18 = at(18);
    assert.ok(t18.kind === 'timerfd' && t18.settime === 3 && t18.clock === 0 && t18.interval === '3000000000');
    assert.ok(Math.abs(Number(BigInt(t18.value) - 2_000_000_000n * 1_000_000_000n)) < 1e9, t18.value);
    assert.equal(at(17), { id: at(17).id, kind: 'timerfd', flags: 0o2, clock: 1, settime: 0, value: '0', interval: '0', ticks: 5 });
    assert.equal(at(20), { id: at(20).id, kind: 'signalfd', flags: 0o4002, mask: '0000001000000800' });
    const a = at(9);
    assert.ok(a.kind === 'epoll');
    // Item 12 watches fd 8's description, item 13 fd 14's (fd 13 now holds fd 7's).
    const item = (fd: number) => a.items.find((i) => i.fd === fd)!;
    assert.is(item(12).target, at(8).id);
    assert.is(item(13).target, at(14).id);
    assert.is(item(5).data, '1122334455667788');
    assert.is(item(5).events >>> 0, 0x80000019);
    await passesInEveryMode(PROG, IMAGE_FDS, image, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const table = (descs: FdTable['descs'], fds: Array<[number, number, boolean?]>): FdTable => ({
  fds: fds.map(([fd, desc, cloexec]) => ({ fd, desc, cloexec: cloexec ?? false })),
  descs,
  pipes: [],
  rlimit: { soft: 1024, hard: 1024 },
});

/** An epoll (fd 9) watching an eventfd at its own number (3), at a number now free (20), at one another eventfd holds (4), and an epoll watching it. */
const EPOLLS = table(
  [
    { id: 0, kind: 'eventfd', flags: 0o2, count: 1, semaphore: false },
    { id: 1, kind: 'eventfd', flags: 0o2, count: 0, semaphore: false },
    { id: 2, kind: 'epoll', flags: 0o2, items: [
      { fd: 3, target: 0, events: 0x19, data: '0000000000000003' },
      { fd: 20, target: 0, events: 0x80000019, data: 'ffffffffffffffff' },
      { fd: 4, target: 0, events: 0x40000000, data: '0000000000000004' },
    ] },
    { id: 3, kind: 'epoll', flags: 0o4002, items: [{ fd: 9, target: 2, events: 0x19, data: '0000000000000009' }] },
  ],
  [[3, 0], [4, 1, true], [9, 2, true], [10, 3]],
);

test('plans of epolls pass the simulator, fresh and into a target whose fds collide; one without its links does not', () => {
  for (const mode of ['fresh', 'into', 'into-exact'] as const) {
    const target = { fds: [0, 1, 2, 3, 9], rlimit: { soft: 1024, hard: 1024 }, mode };
    const plan = planRestore(EPOLLS, target);
    assert.equal(verify(EPOLLS, target, plan), { ok: true }, mode);
    assert.is(plan.ops.filter((o) => o.op === 'link').length, 4, mode);
  }
  const target = { fds: [], rlimit: { soft: 1024, hard: 1024 }, mode: 'fresh' as const };
  const plan = planRestore(EPOLLS, target);
  const texts = plan.ops.map((o) => (o.op === 'link' ? o.call : ''));
  assert.ok(texts.includes('epoll_ctl(9, EPOLL_CTL_ADD, 20, {IN|ERR|HUP|ET, 0xffffffffffffffff})'), texts.join('\n'));
  const noLink = { ...plan, ops: plan.ops.filter((o) => !(o.op === 'link' && o.item === 1 && o.desc === 2)) };
  assert.match(String((verify(EPOLLS, target, noLink) as { reason: string }).reason), /fd 9 \(description 2\) watches \[3\/0\/25\/3, 4\/0\/1073741848\/4\] \(fd\/description\/events\/data\), the image says \[20\/0\//);
  // The item at fd 20 made through fd 4 (not 20) is another item: the simulator tells.
  const wrongNumber = { ...plan, ops: plan.ops.map((o) => (o.op === 'dup2' && o.to === 20 ? { ...o, to: 21 } : o.op === 'close' && o.fd === 20 ? { ...o, fd: 21 } : o)) };
  assert.is(verify(EPOLLS, target, wrongNumber).ok, false);
  // An item's number at or above the soft limit, and no number to hold fd 4's eventfd aside below it: refused in words.
  const low = { fds: [], rlimit: { soft: 11, hard: 11 }, mode: 'fresh' as const };
  assert.throws(() => planRestore({ ...EPOLLS, rlimit: low.rlimit }, low), /description 2 \(epoll\) item 1 is kept under fd 20, not below the soft RLIMIT_NOFILE 11/);
  const without20 = structuredClone(EPOLLS);
  if (without20.descs[2]!.kind === 'epoll') without20.descs[2]!.items.splice(1, 1);
  assert.throws(() => planRestore({ ...without20, rlimit: low.rlimit }, low), /description 2 \(epoll\) item 1: no fd number above the table's is free below the soft RLIMIT_NOFILE 11 to hold fd 4 aside/);
});

const TIMERS = table(
  [
    { id: 0, kind: 'timerfd', flags: 0o4002, clock: 1, settime: 0, value: '970000000000', interval: '0', ticks: 0 },
    { id: 1, kind: 'timerfd', flags: 0o2, clock: 0, settime: 3, value: '2000000000000000000', interval: '3000000000', ticks: 2 ** 40 },
    { id: 2, kind: 'timerfd', flags: 0o2, clock: 7, settime: 0, value: '0', interval: '0', ticks: 5 },
    { id: 3, kind: 'signalfd', flags: 0o4002, mask: '0000001000000800' },
    { id: 4, kind: 'epoll', flags: 0o2, items: [{ fd: 5, target: 2, events: 0x19, data: '0000000000000005' }, { fd: 4, target: 3, events: 0x19, data: '0000000000000004' }] },
  ],
  [[3, 0], [4, 1, true], [5, 2], [6, 3, true], [7, 4]],
);

test('plans of timerfds and signalfds pass the simulator, which knows settime clears the ticks', () => {
  for (const mode of ['fresh', 'into', 'into-exact'] as const) {
    const target = { fds: [0, 1, 2, 3, 5], rlimit: { soft: 1024, hard: 1024 }, mode };
    assert.equal(verify(TIMERS, target, planRestore(TIMERS, target)), { ok: true }, mode);
  }
  const target = { fds: [], rlimit: { soft: 1024, hard: 1024 }, mode: 'fresh' as const };
  const plan = planRestore(TIMERS, target);
  const calls = plan.ops.flatMap((o) => (o.op === 'create' ? [o.call] : []));
  assert.ok(calls.includes('timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC) + settime(2000000000 s absolute, every 3 s) + ticks 1099511627776'), calls.join('\n'));
  assert.ok(calls.includes('signalfd4(-1, {12,37}, SFD_NONBLOCK|SFD_CLOEXEC)'), calls.join('\n'));
  // The simulated kernel's order matters as the kernel's does: timerfd_settime sets the ticks to 0,
  // TFD_IOC_SET_TICKS refuses 0, signalfd4 drops SIGKILL and SIGSTOP.
  const proc = new SimProcess(new SimWorld(), { soft: 64, hard: 64 });
  const fd = proc.timerfdCreate(1, 0);
  proc.timerfdSetTicks(fd, 5n);
  proc.timerfdSettime(fd, 0, 10n, 0n);
  assert.is(proc.get(fd)!.desc.timer!.ticks, 0);
  assert.throws(() => proc.timerfdSetTicks(fd, 0n), /EINVAL/);
  assert.is(proc.get(proc.signalfd4((1n << 8n) | (1n << 11n), 0))!.desc.mask, 1n << 11n);
});

test('show and diff print and compare timerfds and signalfds', async () => {
  const dir = tempDir('show-timers');
  try {
    const b = structuredClone(TIMERS);
    (b.descs[0] as { value: string }).value = '960000000000';
    (b.descs[3] as { mask: string }).mask = '0000000000000800';
    writeFileSync(join(dir, 'a.json'), JSON.stringify(oneProcess(TIMERS, 1)));
    writeFileSync(join(dir, 'b.json'), JSON.stringify(oneProcess(b, 1)));
    const shown = await cr(['show', join(dir, 'a.json')]);
    assert.is(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /timerfd .*CLOCK_MONOTONIC, in 970 s/);
    assert.match(shown.stdout, /timerfd .*CLOCK_REALTIME, at 2000000000 s, every 3 s, cancel on set, 1099511627776 unread/);
    assert.match(shown.stdout, /signalfd .*signals 12,37/);
    const diff = await cr(['diff', join(dir, 'a.json'), join(dir, 'b.json')]);
    assert.is(diff.code, 1);
    assert.equal(diff.stdout.trim().split('\n'), ['fd 3: expiry 970 s in A, 960 s in B', 'fd 6: signals 12,37 in A, 12 in B']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const FILES = table(
  [
    { id: 0, kind: 'memfd', flags: 0o102002, name: 'shm', size: 1 << 20, offset: 5, mode: 0o666, seals: 0x2f, extents: [{ offset: 4096, data: Buffer.alloc(300000, 1) }] },
    { id: 1, kind: 'deleted', flags: 0o100000, path: '/srv/gone', size: 10, offset: 3, mode: 0o400, extents: [{ offset: 0, data: Buffer.from('hello') }] },
    { id: 2, kind: 'deleted', flags: 0o102001, path: '/srv/log', size: 0, offset: 0, mode: 0o600, extents: [] },
  ],
  [[3, 0], [4, 1, true], [5, 2], [6, 1]],
);

test('plans of memfds and deleted files pass the simulator, which knows seals and the order they need', () => {
  for (const mode of ['fresh', 'into', 'into-exact'] as const) {
    const target = { fds: [0, 1, 2, 3, 5], rlimit: { soft: 1024, hard: 1024 }, mode };
    assert.equal(verify(FILES, target, planRestore(FILES, target)), { ok: true }, mode);
  }
  // A write seal stops the data: the kind adds the seals last, and the simulator refuses a write after one.
  const proc = new SimProcess(new SimWorld(), { soft: 64, hard: 64 });
  const fd = proc.memfdCreate('x', 2);
  proc.addSeals(fd, 8);
  assert.throws(() => proc.pwrite(fd, Buffer.from('a'), 0), /EPERM/);
  assert.throws(() => proc.addSeals(proc.memfdCreate('y', 0), 8), /EPERM/);
});

test('show and diff print and compare epoll items', async () => {
  const dir = tempDir('show');
  try {
    const b = structuredClone(EPOLLS);
    const ep = b.descs[2]!;
    if (ep.kind === 'epoll') ep.items[1]!.events = 0x19;
    writeFileSync(join(dir, 'a.json'), JSON.stringify(oneProcess(EPOLLS, 1)));
    writeFileSync(join(dir, 'b.json'), JSON.stringify(oneProcess(b, 1)));
    const shown = await cr(['show', join(dir, 'a.json')]);
    assert.is(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /epoll .*fd 20 \(description 0\) IN\|ERR\|HUP\|ET data 0xffffffffffffffff/);
    const diff = await cr(['diff', join(dir, 'a.json'), join(dir, 'b.json')]);
    assert.is(diff.code, 1);
    assert.equal(diff.stdout.trim().split('\n'), ['fd 9: items [fd 20 (description 0) IN|ERR|HUP|ET data 0xffffffffffffffff] only in A, [fd 20 (description 0) IN|ERR|HUP data 0xffffffffffffffff] only in B']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad epoll, timerfd and signalfd descriptions are one line each', async () => {
  const dir = tempDir('bad');
  try {
    const evfd = { id: 0, kind: 'eventfd', flags: 0o2, count: 0, semaphore: false };
    const ep = (items: unknown[], flags = 0o2) => ({ id: 1, kind: 'epoll', flags, items });
    const it = (target: number, more: Record<string, unknown> = {}) => ({ fd: 3, target, events: 0x19, data: '0000000000000001', ...more });
    const cases: Array<[unknown[], RegExp]> = [
      [[evfd, ep([it(0)], 0o0)], /an epoll is O_RDWR/],
      [[evfd, ep([it(7)])], /items\[0\]\.target: no description with id 7/],
      [[evfd, ep([it(1)])], /an epoll cannot watch itself/],
      [[evfd, ep([it(0), it(0)])], /description 0 at fd 3 is watched twice/],
      [[evfd, ep([it(0, { data: '1' })])], /data: expected 16 lowercase hex digits/],
      [[evfd, ep([it(0, { events: 0x10000000 | 0x2000 })])], /EPOLLEXCLUSIVE with RDHUP/],
      [[{ id: 0, kind: 'file', flags: 0o100000, path: '/etc/hostname', offset: 0 }, ep([it(0)])], /a file, which epoll cannot watch/],
      [[{ id: 0, kind: 'epoll', flags: 2, items: [it(1)] }, ep([it(0)])], /epolls watching each other in a loop/],
      [[evfd, { id: 1, kind: 'timerfd', flags: 2, clock: 3, settime: 0, value: '0', interval: '0', ticks: 0 }], /clock: 3 is not a clock timerfd_create takes/],
      [[evfd, { id: 1, kind: 'timerfd', flags: 2, clock: 1, settime: 3, value: '0', interval: '0', ticks: 0 }], /CANCEL_ON_SET goes with TFD_TIMER_ABSTIME on a CLOCK_REALTIME clock only/],
      [[evfd, { id: 1, kind: 'timerfd', flags: 2, clock: 1, settime: 0, value: 5, interval: '0', ticks: 0 }], /value: expected nanoseconds below 2\^63 as a decimal string/],
      [[evfd, { id: 1, kind: 'signalfd', flags: 2, mask: '0000000000000100' }], /SIGKILL and SIGSTOP are never in a signalfd's mask/],
      [[evfd, { id: 1, kind: 'signalfd', flags: 0, mask: '0000000000000200' }], /a signalfd is O_RDWR/],
    ];
    for (const [descs, why] of cases) {
      const t = { descs, pipes: [], processes: [{ pid: 1, fds: [{ fd: 3, desc: 0, cloexec: false }, { fd: 4, desc: 1, cloexec: false }], rlimit: { soft: 1024, hard: 1024 } }] };
      writeFileSync(join(dir, 't.json'), JSON.stringify(t));
      const r = await cr(['plan', join(dir, 't.json'), '--target-fds', '0-2']);
      assert.is(r.code, 2, `${JSON.stringify(descs)}: ${r.stderr}`);
      assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, why);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an epoll watching a pipe only a child process holds is refused at dump in one line, and the process runs on', async () => {
  const dir = tempDir('orphan');
  const script = [
    'import os, select, sys, time',
    'r, w = os.pipe()',
    'ep = select.epoll()',
    'ep.register(r, select.EPOLLIN)',
    'pid = os.fork()',
    'if pid == 0:',
    '    time.sleep(1000)',
    '    os._exit(0)',
    'os.close(r)',
    `open(sys.argv[1] + '/child', 'w').write(str(pid))`,
    `open(sys.argv[1] + '/ready', 'w').close()`,
    'time.sleep(1000)',
  ].join('\n');
  const pid = spawn(['python3', '-S', '-c', script, dir], { fds: [] });
  let child = 0;
  try {
    waitFile(dir, 'ready');
    child = Number(readFileSync(join(dir, 'child'), 'utf8'));
    const r = await cr(['dump', '--fds-only', '--pid', String(pid), '-o', join(dir, 'image')]);
    assert.is(r.code, 1, r.stderr);
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /is an epoll, which cr cannot dump \(it watches a file \(inode \d+, added as fd \d+\) that no fd of the process holds/);
    assertRunning(pid);
  } finally {
    if (child > 0) ensureReaped(child);
    ensureReaped(pid);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a memfd reopened as a second description, and one above --max-deleted-size, are refused at dump in one line; the process runs on', async () => {
  const dir = tempDir('memfd-refused');
  const script = [
    'import os, sys, time',
    'm = os.memfd_create("big", 0)',
    'os.write(m, b"x" * 100000)',
    'if sys.argv[2] == "reopen":',
    '    r = os.open("/proc/self/fd/%d" % m, os.O_RDONLY)',
    `open(sys.argv[1] + '/ready', 'w').close()`,
    'time.sleep(1000)',
  ].join('\n');
  try {
    for (const [how, args, why] of [
      ['reopen', [], /is a memfd, which cr cannot dump \(\/memfd:big \(deleted\): opened read-only, a second description of it/],
      ['big', ['--max-deleted-size', '4096'], /is a memfd, which cr cannot dump \(\/memfd:big \(deleted\): \d+ bytes of data, above --max-deleted-size 4096\)/],
    ] as Array<[string, string[], RegExp]>) {
      rmSync(join(dir, 'ready'), { force: true });
      const pid = spawn(['python3', '-S', '-c', script, dir, how], { fds: [] });
      try {
        waitFile(dir, 'ready');
        const r = await cr(['dump', '--fds-only', '--pid', String(pid), '-o', join(dir, 'image'), ...args]);
        assert.is(r.code, 1, r.stderr);
        assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
        assert.match(r.stderr, why, r.stderr);
        assertRunning(pid);
      } finally {
        ensureReaped(pid);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tail -f (inotify on the file it follows) restarted: lines appended while it was dumped and after the restart appear', async () => {
  const dir = tempDir('tail');
  const followed = join(dir, 'log');
  const out = join(dir, 'out');
  writeFileSync(followed, 'line 1\n');
  const outFd = openFile(out, 0o101 | 0o2000000, 0o600); // O_WRONLY|O_CREAT, close-on-exec in cr
  const devNull = openFile('/dev/null', O_RDWR);
  const pids: number[] = [];
  const waitFor = (text: string): string => {
    for (let i = 0; i < 2000; i++) {
      const got = readFileSync(out, 'utf8');
      if (got.includes(text)) return got;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    }
    return readFileSync(out, 'utf8');
  };
  try {
    const pid = spawn(['tail', '-n', '+1', '-f', followed], { fds: [[devNull, 0], [outFd, 1], [devNull, 2]] });
    pids.push(pid);
    assert.match(waitFor('line 1\n'), /line 1\n/);
    const table = () => readFileSync(`/proc/${pid}/fdinfo/${readdirSync(`/proc/${pid}/fd`).find((fd) => readlinkSync(`/proc/${pid}/fd/${fd}`) === 'anon_inode:inotify')}`, 'utf8');
    assert.match(table(), /inotify wd:/, 'tail follows with inotify here');
    const image = join(dir, 'image');
    const d = await cr(['dump', '--pid', String(pid), '-o', image, '--kill']);
    assert.is(d.code, 0, d.stderr);
    appendFileSync(followed, 'line 2, while dumped\n');
    const r = await cr(['restore', image, '--detach']);
    assert.is(r.code, 0, r.stderr);
    pids.push(Number(r.stdout.trim()));
    appendFileSync(followed, 'line 3, after\n');
    assert.is(waitFor('line 3, after\n'), 'line 1\nline 2, while dumped\nline 3, after\n');
  } finally {
    for (const pid of pids) ensureReaped(pid);
    closeFd(outFd);
    closeFd(devNull);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a python asyncio program (epoll, its self-pipe socketpair, a timer, a FIFO reader) restarted with its pid carries on: its timer ticks on from its count and it reads what is written after', async () => {
  const dir = tempDir('asyncio');
  const fifo = join(dir, 'fifo');
  const out = join(dir, 'out');
  execFileSync('mkfifo', [fifo]);
  const script = [
    'import asyncio, os, sys',
    'out = open(sys.argv[2], "a", buffering=1)',
    'async def main():',
    '    loop = asyncio.get_running_loop()',
    '    reader = asyncio.StreamReader()',
    '    fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)',
    '    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", 0))',
    '    async def ticker():',
    '        n = 0',
    '        while True:',
    '            await asyncio.sleep(0.02)',
    '            n += 1',
    '            out.write("tick %d\\n" % n)',
    '    loop.create_task(ticker())',
    '    out.write("ready\\n")',
    '    while True:',
    '        line = await reader.readline()',
    '        if line:',
    '            out.write("got %s\\n" % line.decode().strip())',
    '        else:',
    '            await asyncio.sleep(0.01)',
    'asyncio.run(main())',
  ].join('\n');
  const devNull = openFile('/dev/null', O_RDWR);
  const pids: number[] = [];
  let writer = -1;
  const lines = (): string[] => readFileSync(out, 'utf8').split('\n').filter(Boolean);
  const waitFor = (pred: (l: string[]) => boolean): string[] => {
    for (let i = 0; i < 2000 && !pred(lines()); i++) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
    return lines();
  };
  try {
    writeFileSync(out, '');
    const pid = spawn(['python3', '-S', '-c', script, fifo, out], { fds: [[devNull, 0], [devNull, 1], [devNull, 2]] });
    pids.push(pid);
    waitFor((l) => l.includes('ready'));
    writer = openFile(fifo, 0o1 | 0o2000000); // O_WRONLY: the reader is there
    writeFd(writer, Buffer.from('before\n'));
    const before = waitFor((l) => l.includes('got before') && l.filter((x) => x.startsWith('tick')).length >= 3);
    assert.ok(before.includes('got before'), before.join('|'));
    const image = join(dir, 'image');
    const d = await cr(['dump', '--pid', String(pid), '-o', image, '--kill']);
    assert.is(d.code, 0, d.stderr);
    ensureReaped(pid); // killed by the dump: its pid is free once reaped
    const ticksAtDump = lines().filter((x) => x.startsWith('tick')).length;
    // --same-pid: asyncio keeps the pid its loop runs in (get_running_loop() is "no running event
    // loop" in another pid, as after a fork), so under a new pid its timer task dies at its next sleep.
    const r = await cr(['restore', image, '--detach', '--same-pid']);
    assert.is(r.code, 0, r.stderr);
    pids.push(Number(r.stdout.trim()));
    writeFd(writer, Buffer.from('after\n'));
    const after = waitFor((l) => l.includes('got after') && l.filter((x) => x.startsWith('tick')).length >= ticksAtDump + 3);
    assert.equal(after.filter((x) => !x.startsWith('tick')), ['ready', 'got before', 'got after'], after.slice(-5).join('|'));
    const ticks = after.filter((x) => x.startsWith('tick')).map((x) => Number(x.split(' ')[1]));
    // The count goes on from where it was, one by one: the restarted loop's timer, not a new program.
    assert.equal(ticks, ticks.map((_, i) => i + 1));
    assert.ok(ticks.length >= ticksAtDump + 3);
  } finally {
    for (const pid of pids) ensureReaped(pid);
    if (writer >= 0) closeFd(writer);
    closeFd(devNull);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
