// Sockets (src/kinds/unix.ts), end to end: a C program (test/fixtures/sockets-selfcheck.c) holds
// unix socket pairs with bytes queued both ways, datagrams and seqpacket records with their
// boundaries, an end whose peer was closed, a pair shut down one way and a listener at a path,
// and checks them itself before and after a whole-process dump and in every restore mode. Also:
// a socket connected to a peer outside the image and fds in flight are refused at dump, naming
// them; the planner and simulator on socket pairs; bad socket descriptions in one line.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeFd, openFile } from '../bridge/file.js';
import { spawn } from '../bridge/spawn.js';
import { O_RDWR, oneProcess, type FdTable, type InetDesc, type UnixDesc } from '../src/model/fdtable.js';
import { planRestore } from '../src/plan/planner.js';
import { verify } from '../src/sim/verify.js';
import { cr } from './helpers/cli.js';
import { waitFile } from './helpers/fdlayout.js';
import { ensureReaped, buildFixture } from './helpers/processes.js';
import { builtAndDumped, passesInEveryMode } from './helpers/selfcheck-modes.js';

const PROG = buildFixture('sockets-selfcheck');
const IMAGE_FDS = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14];

const tempDir = (what: string): string => realpathSync(mkdtempSync(join(tmpdir(), `cr-sockets-${what}-`)));

test('unix socket pairs, datagrams, a lone end, a shutdown, a unix listener, a TCP listener and a bound UDP socket: PASS before and after the dump and in every restore mode', async () => {
  const dir = tempDir('modes');
  try {
    const image = join(dir, 'image');
    const table = await builtAndDumped(PROG, dir, image);
    const desc = (fd: number) => table.descs.find((d) => d.id === table.fds.find((f) => f.fd === fd)!.desc)!;
    const at = (fd: number): UnixDesc => desc(fd) as UnixDesc;
    const [tcpPort, udpPort] = readFileSync(join(dir, 'expect'), 'utf8').trim().split(' ').slice(1).map(Number);
    assert.equal(desc(13), { id: desc(13).id, kind: 'inet', flags: O_RDWR, family: 4, protocol: 'tcp', state: 'listening', address: '127.0.0.1', port: tcpPort, backlog: 3, options: (desc(13) as InetDesc).options });
    assert.is((desc(13) as InetDesc).options.reuseaddr, 1);
    assert.is((desc(14) as InetDesc).port, udpPort);
    assert.equal(IMAGE_FDS.map((fd) => at(fd).kind), [...IMAGE_FDS.slice(0, 8).map(() => 'unix'), 'inet', 'inet']);
    assert.is(Buffer.from(at(5).queue, 'base64').toString(), 'to five');
    assert.is(at(5).pair, at(6).pair);
    assert.equal(at(8).packets, [5, 7]);
    assert.equal(at(9).packets, [2, 3]);
    assert.is(at(9).shutdown, 3, 'a lone end: its peer closed');
    assert.is(at(11).shutdown, 2);
    assert.is(at(12).state, 'listening');
    assert.is(at(12).address, join(dir, 'l.sock'));
    assert.is(at(12).backlog, 5);
    await passesInEveryMode(PROG, IMAGE_FDS, image, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a unix socket whose peer is outside the image is refused at dump, naming the process that holds the peer; fds in flight too', async () => {
  const dir = tempDir('outside');
  const python = [
    'import socket, os, sys, time',
    'a, b = socket.socketpair()',
    'c, d = socket.socketpair()',
    'f = os.open("/dev/null", os.O_RDONLY)',
    'socket.send_fds(d, [b"x"], [f])',
    'pid = os.fork()',
    'if pid == 0:',
    '    a.close(); c.close(); d.close()',
    '    time.sleep(60); os._exit(0)',
    'b.close()',
    `open(${JSON.stringify(join(dir, 'ready.tmp'))}, "w").write(str(pid))`,
    `os.rename(${JSON.stringify(join(dir, 'ready.tmp'))}, ${JSON.stringify(join(dir, 'ready'))})`,
    'time.sleep(60)',
  ].join('\n');
  const pid = spawn(['python3', '-S', '-c', python], { fds: [] });
  let child = 0;
  try {
    child = Number(waitFile(dir, 'ready'));
    const r = await cr(['dump', '--fds-only', '--pid', String(pid), '-o', join(dir, 'image')]);
    assert.is(r.code, 1, r.stderr);
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`unix stream socket\\) connected to socket:\\[\\d+\\], which process ${child} \\(python3\\) holds at its fd \\d+: cr restores a connection only with both its ends`));
    assert.match(r.stderr, /it has 1 fd in flight \(an SCM_RIGHTS message queued\), which cr does not carry/);
    // The dump took nothing: the fd is still in flight, and the process runs on.
    const again = await cr(['dump', '--fds-only', '--pid', String(pid), '-o', join(dir, 'image')]);
    assert.match(again.stderr, /1 fd in flight/);
  } finally {
    ensureReaped(pid);
    if (child > 0) ensureReaped(child);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('python3 -m http.server dumped, killed and restarted answers on its port', async () => {
  const dir = tempDir('http');
  const port = freePort();
  writeFileSync(join(dir, 'hello.txt'), 'served after a restart\n');
  const devNull = openFile('/dev/null', O_RDWR);
  let pid: number;
  try {
    pid = spawn(['python3', '-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', dir], { fds: [0, 1, 2].map((fd): [number, number] => [devNull, fd]) });
  } finally {
    closeFd(devNull);
  }
  let restored = 0;
  try {
    assert.is(await get(port, 'hello.txt', 10_000), 'served after a restart\n', 'the original');
    const d = await cr(['dump', '--pid', String(pid), '-o', join(dir, 'image'), '--kill']);
    assert.is(d.code, 0, d.stderr);
    const r = await cr(['restore', join(dir, 'image'), '--detach']);
    assert.is(r.code, 0, r.stderr);
    restored = Number(r.stdout.trim());
    assert.is(await get(port, 'hello.txt', 10_000), 'served after a restart\n', 'the restarted copy');
  } finally {
    ensureReaped(pid);
    if (restored > 0) ensureReaped(restored);
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A TCP port on loopback nobody holds now (the kernel's choice for a bind to port 0). */
function freePort(): number {
  const out = execFileSync('python3', ['-c', 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'], { encoding: 'utf8' });
  return Number(out.trim());
}

/** GET a file from the server, retrying while it is not yet listening, for up to `ms`. */
async function get(port: number, name: string, ms: number): Promise<string> {
  const until = Date.now() + ms;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/${name}`);
      return await res.text();
    } catch (err) {
      if (Date.now() > until) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

const unixDesc = (id: number, pair: number | undefined, extra: Partial<UnixDesc> = {}): UnixDesc => ({
  id, kind: 'unix', flags: O_RDWR, type: 'stream', state: pair === undefined ? 'unconnected' : 'connected',
  ...(pair === undefined ? {} : { pair }), queue: '', shutdown: 0, options: {}, ...extra,
});

const tableOf = (descs: UnixDesc[], fds: Array<[number, number, boolean?]>): FdTable => ({
  fds: fds.map(([fd, desc, cloexec]) => ({ fd, desc, cloexec: cloexec ?? false })),
  descs,
  pipes: [],
  rlimit: { soft: 1024, hard: 1024 },
});

test('socket pairs plan as one socketpair each, ends placed by their homes, and pass the simulator', () => {
  const table = tableOf(
    [
      unixDesc(0, 0, { queue: Buffer.from('abc').toString('base64') }),
      unixDesc(1, 0, { flags: O_RDWR | 0o4000 }),
      unixDesc(2, 1, { type: 'dgram', queue: Buffer.from('xyz').toString('base64'), packets: [1, 2] }),
      unixDesc(3, undefined, { state: 'listening', address: '/srv/s', backlog: 4 }),
    ],
    // The pair's ends reversed (the higher home first), a lone dgram end, a dup of a listener.
    [[9, 0], [4, 1], [5, 2, true], [6, 3], [7, 3, true]],
  );
  for (const mode of ['fresh', 'into', 'into-exact'] as const) {
    const target = { fds: [0, 1, 2, 4, 9], rlimit: { soft: 1024, hard: 1024 }, mode };
    const plan = planRestore(table, target);
    assert.equal(verify(table, target, plan), { ok: true }, mode);
    const pairs = plan.ops.filter((o) => o.op === 'socketpair');
    assert.is(pairs.length, 2, mode);
    assert.ok(pairs.some((o) => o.op === 'socketpair' && o.descs.includes(-1)), `${mode}: the lone end has a temporary peer`);
  }
  // The simulator tells a plan that pairs the wrong ends: the same plan, judged against a table
  // whose pairs are made of other descriptions.
  const target = { fds: [], rlimit: { soft: 1024, hard: 1024 }, mode: 'fresh' as const };
  const plan = planRestore(table, target);
  const other = structuredClone(table);
  (other.descs[1] as UnixDesc).pair = 1;
  (other.descs[2] as UnixDesc).pair = 0;
  assert.match(String((verify(other, target, plan) as { reason: string }).reason), /ends of (one )?socket pair/);
});

test('bad socket descriptions are one line each', async () => {
  const dir = tempDir('bad');
  try {
    const cases: Array<[unknown[], RegExp]> = [
      [[unixDesc(0, 0, { flags: 0 })], /a socket is O_RDWR/],
      [[unixDesc(0, 0, { state: 'listening' })], /a connected socket has a pair/],
      [[unixDesc(0, undefined, { state: 'listening' })], /a listening socket is bound to a name/],
      [[unixDesc(0, 0, { type: 'dgram', queue: 'YWJj' })], /need their message lengths/],
      [[unixDesc(0, 0, { type: 'dgram', queue: 'YWJj', packets: [1, 1] })], /add up to 2 bytes, the queue holds 3/],
      [[unixDesc(0, undefined, { address: 'relative' })], /expected an absolute path/],
      [[unixDesc(0, 0, { options: { nosuch: 1 } })], /not an option cr carries/],
      [[unixDesc(0, 0), unixDesc(1, 0, { type: 'dgram' })], /socket pair 0 has a stream end .* and a dgram one/],
      [[unixDesc(0, 0), unixDesc(1, 0), unixDesc(2, 0)], /socket pair 0 already has two ends/],
    ];
    for (const [descs, why] of cases) {
      writeFileSync(join(dir, 't.json'), JSON.stringify(oneProcess(tableOf(descs as UnixDesc[], descs.map((_, i) => [3 + i, i])), 1)));
      const r = await cr(['plan', join(dir, 't.json'), '--target-fds', '0-2']);
      assert.is(r.code, 2, `${JSON.stringify(descs)}: ${r.stderr}`);
      assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, why);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
