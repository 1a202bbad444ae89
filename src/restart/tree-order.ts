// The order a tree's restart makes its processes in, so that each gets the parent, session and
// process group it had relative to the root (docs/trees.md, "Order of restore"). Pure: it reads the
// recorded tree and says who forks whom, who calls setsid() before or after which of its forks, and
// which setpgid() each member makes once every process exists. The kernel's rules it follows:
// - a child starts in its parent's session and group (fork);
// - setsid() makes a new session and group, both with the caller's pid, and is refused to a group
//   leader (a freshly forked child never is one: its group is its parent's);
// - setpgid() joins a group of the caller's own session, or with (0, 0) makes one; a session
//   leader may not change its group.
// So a member in session S got there by its own setsid() (S is its pid), or from its parent at
// fork: the parent's session then, which is the parent's own session, or, for a parent that is a
// session leader, the one it was in before its setsid(). Children of the second kind are forked
// before their parent's setsid(). Anything else (a child reparented into the tree across sessions)
// cannot be made by forks and is refused. Groups are set after all forks, leaders first: every
// group's leader, or for the root's group the root, exists by then in the member's session.

/** What the order needs of a member of the recorded tree (src/image/tree.ts has them all). */
export interface OrderMember {
  pid: number;
  /** the parent's pid; for the root, whatever is outside the tree */
  ppid: number;
  pgid: number;
  sid: number;
}

/** How a member gets its process group once every process exists. */
export type GroupStep =
  /** setsid() gave it (a session leader) or it stays in the group it starts in (the root outside) */
  | { kind: 'none' }
  /** setpgid(0, 0): it leads a group of its own */
  | { kind: 'lead' }
  /** setpgid(0, pgid of member `of`, as restored): the group of a leader, or the root's */
  | { kind: 'join'; of: number };

export interface MemberOrder {
  /** index of its parent in the tree; -1 for the root */
  parent: number;
  /** it calls setsid(): after forking `before`, before forking `after` */
  setsid: boolean;
  /** children (indices) forked while it is still in the session it started in */
  before: number[];
  /** children forked after its setsid() (all of them when it calls none) */
  after: number[];
  group: GroupStep;
}

export interface TreeOrder {
  members: MemberOrder[];
  /** indices of the members that call setpgid(), in the order they must: group leaders first */
  setpgid: number[];
}

/**
 * The order for `members` (root first, parents before children). Throws an Error naming the
 * member when a session cannot be made by forks: its parent had it neither when it forked nor
 * after (a process reparented into the tree).
 */
export function treeOrder(members: readonly OrderMember[]): TreeOrder {
  const index = new Map<number, number>(members.map((m, i) => [m.pid, i]));
  const root = members[0];
  if (root === undefined) throw new Error('an empty tree');
  const leads = (m: OrderMember): boolean => m.sid === m.pid;
  // The session each member is in just after its fork: its parent's then. Undefined for a root
  // that leads its session: what it was in before is outside the tree.
  const startsIn: Array<number | undefined> = [leads(root) ? undefined : root.sid];
  const out: MemberOrder[] = [{ parent: -1, setsid: leads(root), before: [], after: [], group: { kind: 'none' } }];
  for (let i = 1; i < members.length; i++) {
    const m = members[i]!;
    const p = index.get(m.ppid);
    if (p === undefined || p >= i) throw new Error(`process ${m.pid}: its parent ${m.ppid} is not in the tree before it`);
    const parent = members[p]!;
    // A session leader child calls setsid() itself: fork it whenever (after its parent's setsid()).
    let early = false;
    if (!leads(m) && m.sid !== parent.sid) {
      if (!leads(parent) || m.sid !== startsIn[p]) {
        throw new Error(
          `process ${m.pid} is in session ${m.sid}, which its parent ${parent.pid} (session ${parent.sid}) was not in when it forked it, and it did not start: a process moved into the tree across sessions cannot be recreated by fork`,
        );
      }
      early = true;
    }
    startsIn.push(early ? startsIn[p] : parent.sid);
    (early ? out[p]!.before : out[p]!.after).push(i);
    out.push({ parent: p, setsid: leads(m), before: [], after: [], group: { kind: 'none' } });
  }
  const lead: number[] = [];
  const join: number[] = [];
  members.forEach((m, i) => {
    if (leads(m)) return; // setsid() made its group
    if (m.pgid === m.pid) {
      out[i]!.group = { kind: 'lead' };
      lead.push(i);
      return;
    }
    const leader = index.get(m.pgid);
    if (i === 0) return; // the root in a group outside the tree: it stays in the one it starts in
    const of = leader ?? (m.pgid === root.pgid ? 0 : undefined);
    if (of === undefined) throw new Error(`process ${m.pid} is in group ${m.pgid}, which neither a member nor the root's group is`);
    out[i]!.group = { kind: 'join', of };
    join.push(i);
  });
  return { members: out, setpgid: [...lead, ...join] };
}
