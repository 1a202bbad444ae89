// treeOrder (src/restart/tree-order.ts): who forks whom, where each setsid() goes among a parent's
// forks, and which setpgid() each member makes, for trees shaped as shells, daemons and pipelines
// make them. A small kernel model below replays the order (fork copies session and group, setsid
// and setpgid with the kernel's refusals) and must end with every member's recorded session and
// group, relative to the root.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { treeOrder, type OrderMember, type TreeOrder } from '../src/restart/tree-order.js';

const m = (pid: number, ppid: number, pgid: number, sid: number): OrderMember => ({ pid, ppid, pgid, sid });

/** Run the order in a model of the kernel's rules; the sessions and groups each member ends in. */
function replayOrder(members: OrderMember[], order: TreeOrder): Array<{ pgid: number; sid: number }> {
  // New pids: 1000 + index; the world outside the tree (cr) is session 1, group 1.
  const now = members.map(() => ({ pgid: 0, sid: 0, made: false }));
  const pid = (i: number): number => 1000 + i;
  now[0] = { pgid: 1, sid: 1, made: true };
  const setsid = (i: number): void => {
    if (now[i]!.pgid === pid(i)) throw new Error(`${i}: setsid of a group leader (EPERM)`);
    now[i]!.sid = now[i]!.pgid = pid(i);
  };
  // Each member forks `before`, calls setsid, forks `after`: a child starts with its parent's
  // session and group as they are at its fork.
  const walk = (i: number, inherited: { pgid: number; sid: number }): void => {
    const o = order.members[i]!;
    now[i] = { ...inherited, made: true };
    for (const c of o.before) walk(c, { ...now[i]! });
    if (o.setsid) setsid(i);
    for (const c of o.after) walk(c, { ...now[i]! });
  };
  walk(0, { pgid: 1, sid: 1 });
  for (const i of order.setpgid) {
    const g = order.members[i]!.group;
    if (now[i]!.sid === pid(i)) throw new Error(`${i}: setpgid of a session leader (EPERM)`);
    if (g.kind === 'lead') now[i]!.pgid = pid(i);
    else if (g.kind === 'join') {
      const target = now[g.of]!.pgid;
      const inGroup = now.some((x) => x.made && x.pgid === target);
      const sameSession = now.every((x) => !x.made || x.pgid !== target || x.sid === now[i]!.sid);
      if (!inGroup || !sameSession) throw new Error(`${i}: setpgid into group ${target} refused`);
      now[i]!.pgid = target;
    }
  }
  return now.map(({ pgid, sid }) => ({ pgid, sid }));
}

/** The recorded relations, with ids translated the way a restore translates them. */
function expected(members: OrderMember[]): Array<{ pgid: number; sid: number }> {
  const root = members[0]!;
  const idx = new Map(members.map((x, i) => [x.pid, i]));
  const tr = (id: number, outside: number): number => (idx.has(id) ? 1000 + idx.get(id)! : id === (outside === 1 ? root.sid : root.pgid) ? 1 : -1);
  return members.map((x) => ({ pgid: tr(x.pgid, 2), sid: tr(x.sid, 1) }));
}

const cases: Array<[string, OrderMember[]]> = [
  ['one process in its caller\'s group', [m(50, 1, 7, 7)]],
  ['a session leader alone', [m(50, 1, 50, 50)]],
  // sh -c 'gen | tr | sink': the shell leads its session (setsid'd by a terminal emulator), the
  // pipeline is one job whose leader is its first process.
  ['an interactive shell running a pipeline', [m(10, 1, 10, 10), m(11, 10, 11, 10), m(12, 10, 11, 10), m(13, 10, 11, 10)]],
  // the same shell run by cr's caller without job control: everyone in the caller's group
  ['a pipeline in its caller\'s group', [m(10, 5, 5, 4), m(11, 10, 5, 4), m(12, 10, 5, 4), m(13, 10, 5, 4)]],
  // a daemon: the root forks a child that setsid()s, which forks workers
  ['a daemon with workers', [m(20, 1, 3, 3), m(21, 20, 21, 21), m(22, 21, 21, 21), m(23, 21, 21, 21), m(24, 22, 21, 21)]],
  // a session leader with one child forked before its setsid (left in the old session)
  ['a child forked before its parent\'s setsid', [m(30, 1, 30, 30), m(31, 30, 30, 30), m(32, 31, 30, 30), m(33, 31, 33, 33), m(34, 33, 30, 30), m(35, 33, 35, 33)]],
  // a group led by a later sibling's descendant, joined by an earlier member
  ['a group whose leader comes later', [m(40, 1, 40, 40), m(41, 40, 44, 40), m(42, 40, 40, 40), m(44, 42, 44, 40)]],
  ['a root group leader in its caller\'s session', [m(60, 1, 60, 9), m(61, 60, 60, 9), m(62, 61, 62, 9), m(63, 60, 62, 9)]],
];

for (const [name, members] of cases) {
  test(`treeOrder: ${name}`, () => {
    const order = treeOrder(members);
    assert.equal(replayOrder(members, order), expected(members));
    // every member but the root is forked once, by its recorded parent
    const forked = order.members.flatMap((o) => [...o.before, ...o.after]).sort((a, b) => a - b);
    assert.equal(forked, members.slice(1).map((_, i) => i + 1));
    order.members.forEach((o, i) => {
      for (const c of [...o.before, ...o.after]) assert.is(members[c]!.ppid, members[i]!.pid);
    });
  });
}

test('treeOrder: leaders set their group before anyone joins it', () => {
  const order = treeOrder(cases[6]![1]);
  const leadAt = order.setpgid.findIndex((i) => order.members[i]!.group.kind === 'join');
  assert.ok(order.setpgid.slice(leadAt).every((i) => order.members[i]!.group.kind === 'join'));
});

test('treeOrder: a member in a session neither it nor its parent started is refused', () => {
  // 32's parent 31 leads session 31, and 32 is in session 30, which 31 was never in
  const members = [m(30, 1, 30, 30), m(31, 30, 31, 31), m(33, 30, 33, 33), m(32, 31, 33, 33)];
  assert.throws(() => treeOrder(members), /process 32 is in session 33, which its parent 31 \(session 31\) was not in when it forked it/);
});

test.run();
