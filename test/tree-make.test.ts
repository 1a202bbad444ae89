// makeTree (src/restart/tree.ts), the engine under a tree's restart, on real processes: husks
// forked by husks through injected clone3 calls, with the sessions, groups and fds a recorded tree
// says, zombies ended as recorded, all stopped and traced by cr until the test kills them all.
// Checked from /proc: each member's parent, session and group relative to the root, which pipe
// each holds and its bytes, each zombie's state, name and wait status.
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readlinkSync, readSync } from 'node:fs';
import { constants } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { O_LARGEFILE, O_RDONLY, O_WRONLY, type FdTables } from '../src/model/fdtable.js';
import { AREA_BYTES } from '../src/restart/husk.js';
import { freeRange, huskMappings } from '../src/restart/memory.js';
import { endZombies, killTree, makeTree, type MadeTree, type MakeMember } from '../src/restart/tree.js';

const LIMIT = { soft: 1024, hard: 4096 };
const mem = (pid: number, ppid: number, pgid: number, sid: number, zombie: MakeMember['zombie'] = null): MakeMember => ({ pid, ppid, pgid, sid, comm: zombie ? `z${pid}` : 'x', zombie });

// 100 leads its session; 101 leads a group that 102 (its child) and zombie 106 join; 103 forks 108
// before its setsid (108 stays in 100's session and group), then 104 and 105 in its new session,
// 105 joining 104's group; zombies 106 (exit 3) and 107 (SIGTERM).
const MEMBERS: MakeMember[] = [
  mem(100, 1, 100, 100),
  mem(101, 100, 101, 100),
  mem(102, 101, 101, 100),
  mem(103, 100, 103, 103),
  mem(104, 103, 104, 103),
  mem(105, 104, 104, 103),
  mem(106, 100, 101, 100, { code: 3, signal: null }),
  mem(107, 101, 101, 100, { code: null, signal: 15 }),
  mem(108, 103, 100, 100),
];

/** Pipe 0 from 102 (fd 7) to 105 (fd 0), 6 bytes queued; /dev/null at fd 1 everywhere, one description. */
const TABLES = (members: MakeMember[]): FdTables => {
  const live = members.filter((m) => m.zombie === null);
  return {
    descs: [
      { id: 1, kind: 'pipe', flags: O_RDONLY, pipe: 0 },
      { id: 2, kind: 'pipe', flags: O_WRONLY, pipe: 0 },
      { id: 3, kind: 'chr', flags: O_WRONLY | O_LARGEFILE, path: '/dev/null' },
    ],
    pipes: [{ id: 0, capacity: 65536, data: Buffer.from('queued') }],
    processes: live.map((m, i) => ({
      pid: m.pid,
      ...(i === 0 ? {} : { parent: m.ppid }),
      fds: [{ fd: 1, desc: 3, cloexec: false }, ...(m === members[2] ? [{ fd: 7, desc: 2, cloexec: false }] : []), ...(m === members[5] ? [{ fd: 0, desc: 1, cloexec: true }] : [])],
      rlimit: LIMIT,
    })),
  };
};

const stat = (pid: number): string[] => {
  const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
  return [s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')), ...s.slice(s.lastIndexOf(')') + 2).split(' ')];
};

function checkShape(made: MadeTree, members: MakeMember[]): void {
  const idx = new Map(members.map((m, i) => [m.pid, i]));
  const now = (id: number): number => made.pids[idx.get(id)!]!;
  members.forEach((m, i) => {
    const s = stat(made.pids[i]!);
    // fields after comm: state ppid pgrp session
    if (i > 0) assert.is(Number(s[2]), now(m.ppid), `parent of ${m.pid}`);
    assert.is(Number(s[3]), now(m.pgid), `group of ${m.pid}`);
    assert.is(Number(s[4]), now(m.sid), `session of ${m.pid}`);
  });
}

function run(samePid: boolean, members = MEMBERS): void {
  let made: MadeTree | undefined;
  const pids: number[] = [];
  try {
    made = makeTree(members, TABLES(members), { area: (pid) => BigInt(freeRange(AREA_BYTES, huskMappings(pid))), samePid, timeoutMs: 5000 });
    pids.push(...made.pids);
    if (samePid) assert.equal(made.pids, members.map((m) => m.pid));
    checkShape(made, members);
    // Every live member is stopped under cr (state t), none ran its own code.
    members.forEach((m, i) => {
      if (m.zombie === null) assert.is(stat(made!.pids[i]!)[1], 't', `state of ${m.pid}`);
    });
    // The pipe reaches 102 and 105 only, its bytes once; nobody else holds a pipe.
    const at = (i: number, fd: number): string => readlinkSync(`/proc/${made!.pids[i]}/fd/${fd}`);
    assert.is(at(2, 7), at(5, 0));
    assert.match(at(2, 7), /^pipe:/);
    members.forEach((m, i) => {
      if (m.zombie !== null) return;
      const fds = readFileSync(`/proc/${made!.pids[i]}/fdinfo/1`, 'latin1');
      assert.ok(fds.includes('flags'), `fd 1 of ${m.pid}`);
      const want = i === 2 ? ['1', '7'] : i === 5 ? ['0', '1'] : ['1'];
      const have = readdirFds(made!.pids[i]!);
      assert.equal(have, want, `fds of ${m.pid}`);
    });
    assert.match(readFileSync(`/proc/${made.pids[5]}/fdinfo/0`, 'latin1'), /flags:\s+02000000/);
    endZombies(members, made);
    for (const [i, status] of [[6, 3 << 8], [7, 15]] as const) {
      const s = stat(made.pids[i]!);
      assert.is(s[1], 'Z');
      assert.is(s[0], members[i]!.comm);
      assert.is(Number(s[s.length - 1]), status, `wait status of zombie ${members[i]!.pid}`);
    }
    checkShape(made, members);
    const fd = openSync(`/proc/${made.pids[5]}/fd/0`, constants.O_RDONLY | constants.O_NONBLOCK);
    const buf = Buffer.alloc(64);
    const n = readSync(fd, buf);
    closeSync(fd);
    assert.is(buf.subarray(0, n).toString(), 'queued');
  } finally {
    if (made) killTree(made);
  }
  // Nothing is left: each process is gone (a killed member's zombie is reaped by its reaper).
  const deadline = Date.now() + 5000;
  const left = (): number[] => pids.filter((p) => existsSync(`/proc/${p}`) && stat(p)[1] !== 'Z');
  while (left().length > 0 && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 5);
  assert.equal(left(), []);
}

const readdirFds = (pid: number): string[] => readdirSync(`/proc/${pid}/fd`).sort();

/** MEMBERS moved to pids from `base` on (recorded pid 100 at base), none of them in use now. */
function movedTo(base: number): MakeMember[] {
  const at = (p: number): number => (p === 1 ? 1 : base + p - 100);
  const moved = MEMBERS.map((m) => ({ ...m, pid: at(m.pid), ppid: at(m.ppid), pgid: at(m.pgid), sid: at(m.sid), comm: m.zombie ? `z${m.pid}` : m.comm }));
  return moved;
}

test('makeTree: a 3-level tree with two sessions, four groups, two zombies and a pipe across it', () => {
  run(false);
});

test('makeTree --same-pid: every member at its recorded pid', () => {
  // Recorded pids that are free: a block high above the ones in use, away from other runs'.
  const max = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  let base = Math.floor(max / 2) + (process.pid % 100) * 50;
  while (MEMBERS.some((m) => existsSync(`/proc/${base + m.pid - 100}`))) base = base + 50 < max - 100 ? base + 50 : 1000;
  run(true, movedTo(base));
});

test.run();
