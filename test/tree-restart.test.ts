// Restart of a whole tree (src/restart/restart-tree.ts) from a tree image made of real dumps:
// three counters (test/fixtures/process-counter.c: each checks its own pipe and clock, and counts
// into its own file), dumped and killed, composed into a 3-level tree (test/helpers/compose-tree.ts)
// whose root leads its session, one member leads a group of its own, and a zombie that exited 7.
// Restored with new pids (twice from the same image) and with --same-pid: each counter goes on from
// the number after its last with no gap or repeat, and the shape (parents, groups, sessions relative
// to the root, the zombie's status) is the recorded one.
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { kill, SIGKILL } from '../bridge/signal.js';
import { spawn } from '../bridge/spawn.js';
import { restore, waitExit } from '../src/api.js';
import { ProcessImage } from '../src/image/process-format.js';
import { cr } from './helpers/cli.js';
import { composeTree } from './helpers/compose-tree.js';
import { ensureReaped, buildFixture } from './helpers/processes.js';

const COUNTER = buildFixture('process-counter');
const dir = mkdtempSync(join(tmpdir(), 'cr-tree-restart-'));
const stop = join(dir, 'STOP');
const names = ['a', 'b', 'c'];
const out = (n: string): string => join(dir, `out-${n}`);
const sleep = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const lines = (n: string): number[] => readFileSync(out(n), 'utf8').split('\n').filter(Boolean).map(Number);

function stat(pid: number): { state: string; ppid: number; pgid: number; sid: number; exit: number } {
  const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { state: f[0]!, ppid: Number(f[1]), pgid: Number(f[2]), sid: Number(f[3]), exit: Number(f[f.length - 1]) };
}

/** A pid nobody has, for the zombie. */
function freePid(): number {
  const max = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  let pid = Math.floor(max / 3) + (process.pid % 1000) * 7;
  while (existsSync(`/proc/${pid}`)) pid++;
  return pid;
}

const image = join(dir, 'tree.img');
let zombiePid = 0;
const atDump = new Map<string, number>();

test.before(async () => {
  const pids = names.map((n, i) => spawn([COUNTER, out(n), stop], { fds: [], setsid: i === 0 }));
  try {
    for (const n of names) while (!existsSync(out(n)) || lines(n).length < 5) sleep(5);
    const parts = [];
    for (const [i, n] of names.entries()) {
      const r = await cr(['dump', '--pid', String(pids[i]), '-o', join(dir, `${n}.img`), '--kill']);
      assert.is(r.code, 0, r.stderr);
      atDump.set(n, lines(n).length);
      copyFileSync(out(n), `${out(n)}.dumped`);
    }
    zombiePid = freePid();
    parts.push(
      { image: join(dir, 'a.img'), parent: -1, group: -1, session: -1 },
      { image: join(dir, 'b.img'), parent: 0, group: 0, session: 0 },
      { image: join(dir, 'c.img'), parent: 1, group: 2, session: 0 },
      { zombie: { pid: zombiePid, exit: { code: 7, signal: null, core: false } }, parent: 1, group: 0, session: 0 },
    );
    composeTree(image, parts);
  } finally {
    for (const pid of pids) ensureReaped(pid);
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

async function restoreAndCheck(samePid: boolean): Promise<void> {
  for (const n of names) copyFileSync(`${out(n)}.dumped`, out(n));
  rmSync(stop, { force: true });
  const tree = ProcessImage.read(image).tree;
  const r = await restore(image, { detach: true, samePid, newPid: !samePid });
  const now = r.members!.map((m) => m.now);
  try {
    assert.equal(r.members!.map((m) => m.was), tree.map((m) => m.pid));
    if (samePid) assert.equal(now, tree.map((m) => m.pid));
    else assert.ok(now.every((p, i) => p !== tree[i]!.pid), 'new pids');
    const idx = new Map(tree.map((m, i) => [m.pid, i]));
    tree.forEach((m, i) => {
      const s = stat(now[i]!);
      if (i > 0) assert.is(s.ppid, now[idx.get(m.ppid)!], `parent of member ${i}`);
      assert.is(s.pgid, now[idx.get(m.pgid)!], `group of member ${i}`);
      assert.is(s.sid, now[idx.get(m.sid)!], `session of member ${i}`);
    });
    assert.is(r.pid, now[0]);
    const z = stat(now[3]!);
    assert.equal([z.state, z.exit], ['Z', 7 << 8]);
    // Each counter goes on: 40 more numbers, with nothing missing or repeated.
    for (const n of names) {
      const want = atDump.get(n)! + 40;
      for (let i = 0; lines(n).length < want; i++) {
        if (i > 2000) assert.unreachable(`counter ${n} stopped at ${lines(n).length}`);
        sleep(5);
      }
      const got = lines(n);
      assert.equal(got.slice(0, want), Array.from({ length: want }, (_, k) => k + 1), `counter ${n}`);
    }
    writeFileSync(stop, '');
    assert.is(await waitExit(r.pid), 0, 'the root counter found no fault in its pipe or clock');
    // The others end too (their parents are gone: their reaper reaps them).
    for (const pid of now.slice(1)) {
      for (let i = 0; existsSync(`/proc/${pid}`) && stat(pid).state !== 'Z'; i++) {
        if (i > 2000) assert.unreachable(`pid ${pid} did not end`);
        sleep(5);
      }
    }
  } finally {
    for (const pid of now.slice(1)) {
      try {
        kill(pid, SIGKILL);
      } catch {
        // gone already
      }
    }
    ensureReaped(r.pid);
  }
}

test('a tree restarted with new pids: counters go on, shape and zombie as recorded', () => restoreAndCheck(false));
test('the same tree image restarted a second time', () => restoreAndCheck(false));
test('a tree restarted with --same-pid: every member at its recorded pid', () => restoreAndCheck(true));

test('restore -- CMD and --into refuse a tree image in one line', async () => {
  let r = await cr(['restore', image, '--', 'true']);
  assert.is(r.code, 2);
  assert.match(r.stderr, /holds a tree of 4 processes; -- CMD takes the fds of one process: restore IMAGE alone restarts the whole tree/);
  r = await cr(['restore', image, '--into', String(process.pid)]);
  assert.is(r.code, 2);
  assert.match(r.stderr, /--into takes the fds of one process/);
});

test.run();
