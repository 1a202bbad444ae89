// A pty pair inside the image (src/kinds/pty.ts), end to end: a C program
// (test/fixtures/pty-selfcheck.c) holds a master, its dup and two slave descriptions, with raw
// termios, a window size and packet mode; it checks them itself (the slaves are the master's peer,
// termios, window, flags, close-on-exec, kcmp, both ends talk) before and after a whole-process
// dump, and in every restore mode: `-- CMD`, `--into` a target whose own fds collide (with and
// without --exact), and restart. A dump refuses a pty with bytes queued (an echo on its way back
// counted) or a packet-mode status byte waiting; plans pass the simulator.
// A pty shared across a tree (test/fixtures/pty-tree-selfcheck.c: the parent holds the master, its
// child leads a session on the slave and runs a foreground job) comes back as one new pty, the
// controlling terminal of the child's session with the job in the foreground, in cr's session or
// one of its own, while the original runs on; the parent and the child talk over a unix stream
// socketpair with a message queued each way, delivered exactly once after the restore.
import { closeSync, mkdtempSync, openSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFd } from '../bridge/file.js';
import { lastErrno, libc } from '../bridge/libc.js';
import { kill, SIGKILL } from '../bridge/signal.js';
import { spawn } from '../bridge/spawn.js';
import { ProcessImage } from '../src/image/process-format.js';
import { readPty, TIOCGPTPEER, TIOCSPTLCK } from '../src/kinds/pty.js';
import { listTree } from '../src/proc/tree.js';
import { O_CLOEXEC, O_NOCTTY, O_RDWR, type FdTable } from '../src/model/fdtable.js';
import { planRestore } from '../src/plan/planner.js';
import { verify } from '../src/sim/verify.js';
import { cr } from './helpers/cli.js';
import { waitFile } from './helpers/fdlayout.js';
import { ensureReaped, buildFixture } from './helpers/processes.js';
import { builtAndDumped, passesInEveryMode, verdict } from './helpers/selfcheck-modes.js';
import { TreeScene } from './helpers/tree-scene.js';

const PROG = buildFixture('pty-selfcheck');
const TREE_PROG = buildFixture('pty-tree-selfcheck');
const IMAGE_FDS = [5, 6, 7, 8];

const tempDir = (what: string): string => realpathSync(mkdtempSync(join(tmpdir(), `cr-pty-${what}-`)));

test('a pty pair the process made: PASS before and after the dump and in every restore mode', async () => {
  const dir = tempDir('modes');
  try {
    const image = join(dir, 'image');
    const table = await builtAndDumped(PROG, dir, image);
    const kinds = IMAGE_FDS.map((fd) => table.descs.find((d) => d.id === table.fds.find((f) => f.fd === fd)!.desc)!);
    assert.equal(kinds.map((d) => d.kind), ['ptmx', 'pts', 'ptmx', 'pts']);
    const master = kinds[0]!;
    assert.ok(master.kind === 'ptmx' && master.packet && !master.locked, 'packet mode on, unlocked');
    assert.ok(kinds[1]!.kind === 'pts' && kinds[1]!.master === master.id);
    await passesInEveryMode(PROG, IMAGE_FDS, image, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * A python3 process that runs `setup` (pty and its modules imported; m and s the pty's ends), then
 * sleeps: its dump must be refused in one line matching `reason`.
 */
async function refusedAtDump(name: string, setup: string[], reason: RegExp): Promise<void> {
  const dir = tempDir(name);
  try {
    const pid = spawn(['python3', '-c', [
      'import fcntl, os, pty, struct, sys, termios, time',
      'm, s = pty.openpty()',
      ...setup,
      `open(${JSON.stringify(join(dir, 'ready'))}, "w").close()`,
      'time.sleep(120)',
    ].join('\n')], { fds: [] });
    try {
      waitFile(dir, 'ready');
      const d = await cr(['dump', '--pid', String(pid), '-o', join(dir, 'image')]);
      assert.is(d.code !== 0, true, d.stdout);
      assert.match(d.stderr, reason);
      assert.is(d.stderr.trim().split('\n').length, 1, d.stderr);
    } finally {
      ensureReaped(pid);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a pty with bytes queued is refused at dump, naming them; the process runs on untouched', () =>
  refusedAtDump('queued', ['os.write(s, b"unread output")'], /bytes written on the slave side are not read from the master yet/));

test('a partial line typed at the master just before the dump: its echo, on its way back through the slave, is counted at the master', () => {
  // The slave does not count a line not yet ended; its echo reaches the master only once a worker
  // has passed the typed bytes to the slave's line discipline. Read in the old order (the master
  // settled and counted before the slave) the count was 0 in 841 of 2,000 tries here.
  for (let i = 0; i < 200; i++) {
    const master = openSync('/dev/ptmx', 'r+');
    let slave = -1;
    try {
      assert.is(libc.ioctlBuf(master, Number(TIOCSPTLCK), Buffer.alloc(4)), 0, 'TIOCSPTLCK');
      slave = libc.ioctl(master, Number(TIOCGPTPEER), 'int', Number(O_RDWR | O_NOCTTY | O_CLOEXEC));
      assert.ok(slave >= 0, `TIOCGPTPEER: errno ${lastErrno()}`);
      writeFd(master, Buffer.from('abc'));
      const s = readPty(process.pid, master);
      assert.is(s.input, 0, `try ${i}: a line not ended is not counted at the slave`);
      assert.is(s.output, 3, `try ${i}: the echo of 'abc' at the master`);
    } finally {
      if (slave >= 0) closeSync(slave);
      closeSync(master);
    }
  }
});

test('a packet-mode status byte waiting at the master (TIOCINQ does not count it) is refused at dump, in one line', () =>
  refusedAtDump('status', [
    'fcntl.ioctl(m, termios.TIOCPKT, struct.pack("i", 1))',
    'termios.tcflush(s, termios.TCIFLUSH)', // the master's reader gets TIOCPKT_FLUSHREAD
  ], /a packet-mode status byte is not read from the master yet/));

test('plans of a pty pair pass the simulator: fresh, and into a target whose fds collide', () => {
  const termios = '00'.repeat(44);
  const winsize = '2500650000000000';
  const table: FdTable = {
    fds: [
      { fd: 0, desc: 1, cloexec: false },
      { fd: 3, desc: 0, cloexec: true },
      { fd: 4, desc: 2, cloexec: false },
      { fd: 9, desc: 1, cloexec: false },
    ],
    descs: [
      { id: 0, kind: 'ptmx', flags: 0o100002, index: 3, termios, winsize, locked: true, packet: false },
      { id: 1, kind: 'pts', flags: 0o100002, master: 0, index: 3 },
      { id: 2, kind: 'pts', flags: 0o104002, master: 0, index: 3 },
    ],
    pipes: [],
    rlimit: { soft: 1024, hard: 1024 },
  };
  for (const mode of ['fresh', 'into', 'into-exact'] as const) {
    const target = { fds: [0, 1, 2, 3, 9], rlimit: { soft: 1024, hard: 1024 }, mode };
    const plan = planRestore(table, target);
    assert.equal(verify(table, target, plan), { ok: true }, mode);
    const ptyOps = plan.ops.filter((o) => o.op === 'pty');
    assert.is(ptyOps.length, 2, mode);
    assert.ok(plan.ops.indexOf(ptyOps[0]!) < plan.commit, `${mode}: the pty is made before the commit`);
  }
});

/** Kill every process of the tree of root (a child of the test, reaped; the others are init's to reap). */
function killTree(root: number): void {
  for (const m of listTree(root)) {
    try {
      kill(m.pid, SIGKILL);
    } catch {
      // gone
    }
  }
  ensureReaped(root);
}

/** The pty tree's scene: restored trees are killed at the end with the originals. */
class PtyScene extends TreeScene {
  constructor() {
    super('pty-tree');
  }

  /** restore IMAGE --detach EXTRA... (cr in this process: the root is its child), the restored root and the verdict of a round in it. */
  async restore(image: string, ...extra: string[]): Promise<{ root: number; verdict: string }> {
    const r = await cr(['restore', image, '--detach', ...extra]);
    const root = Number(r.stdout.trim());
    if (r.code !== 0 || !(root > 0)) return { root: 0, verdict: `cr exit ${r.code}: ${r.stderr}` };
    this.watch(root, listTree(root).map((m) => m.pid));
    return { root, verdict: verdict(root, this.dir) };
  }
}

test('a pty across a tree (master in the parent, slave the controlling terminal of the child\'s session, a job in the foreground) and a socketpair with a message queued each way: one new pty, terminal and foreground given back, each message delivered once, in every restart mode', async () => {
  const s = new PtyScene();
  try {
    const root = s.start([TREE_PROG, s.dir]);
    assert.is(waitFile(s.dir, 'ready'), '', 'the job is on the master\'s peer');
    assert.is(verdict(root, s.dir), 'PASS\n', 'as built');
    const [, leader, job] = s.tree(root);
    const d = await cr(['dump', '--pid', String(root), '-o', s.path('image')]);
    assert.is(d.code, 0, d.stderr);
    const image = ProcessImage.read(s.path('image'));
    assert.is(verdict(root, s.dir), 'PASS\n', 'the original, after the dump');
    const slaves = image.fdImage.table.descs.filter((d) => d.kind === 'pts');
    assert.ok(slaves.length > 0 && slaves.every((d) => d.kind === 'pts' && image.fdImage.table.descs.some((m) => m.id === d.master && m.kind === 'ptmx')), 'the members\' slaves are the master\'s, not paths');
    const led = image.tree.find((m) => m.pid === leader)!;
    assert.is(led.sid, leader);
    assert.is(led.ctty?.fg, job, 'the job\'s group was the foreground');
    const table = image.fdImage.table;
    const ends = table.descs.filter((d) => d.kind === 'unix');
    const holders = ends.map((d) => table.processes.filter((p) => p.fds.some((f) => f.desc === d.id)).map((p) => p.pid));
    assert.equal(holders, [[root], [leader]], 'the socketpair\'s ends: one in the parent, one in the child');
    for (const d of ends) {
      assert.ok(d.kind === 'unix' && d.type === 'stream' && d.pair === 0 && Buffer.from(d.queue, 'base64').length === 16, `a message queued at each end: ${JSON.stringify(d)}`);
    }

    const failed: string[] = [];
    const mode = async (name: string, ...extra: string[]): Promise<void> => {
      const r = await s.restore(s.path('image'), ...extra);
      if (r.verdict !== 'PASS\n') failed.push(`${name}: ${r.verdict.trim().replace(/\n/g, '; ')}`);
      if (r.root > 0) killTree(r.root);
    };
    // The original runs on, its pty open: a copy must not reach it by its old /dev/pts path.
    await mode('in cr\'s session', '--new-pid');
    await mode('in a session of its own', '--new-pid', '--setsid');
    assert.is(verdict(root, s.dir), 'PASS\n', 'the original, after its copies ran');
    assert.equal(failed, []);
  } finally {
    s.end();
  }
});

test.run();
