// Two process trees compared by shape (docs/trees.md): members matched by position (pre-order),
// each member's parent, group and session said relative to the tree (which member it is, or the
// root's from outside), so that two dumps of one tree under other pids are the same shape; then
// whether each is a zombie and how it ended, stopped, and its command.
import { describeExit, type TreeMember } from '../model/tree.js';

/** `member 2`, `the root's outside group`, ...: what an id names within its tree. */
function relative(tree: readonly TreeMember[], id: number, rootId: number, what: string): string {
  const i = tree.findIndex((m) => m.pid === id);
  if (i >= 0) return `member ${i}'s ${what}`;
  return id === rootId ? `the root's ${what} (from outside)` : `${what} ${id} (from outside)`;
}

const label = (a: TreeMember, b: TreeMember, i: number): string =>
  a.pid === b.pid ? `process ${a.pid}` : `process ${a.pid} (${b.pid} in B, member ${i})`;

/** Every difference of shape between two trees, one line each; [] when they have the same shape. */
export function compareTrees(a: readonly TreeMember[], b: readonly TreeMember[]): string[] {
  if (a.length !== b.length) return [`A's tree holds ${a.length} processes, B's ${b.length}`];
  const out: string[] = [];
  const rootA = a[0]!;
  const rootB = b[0]!;
  a.forEach((x, i) => {
    const y = b[i]!;
    const at = label(x, y, i);
    if (i > 0) {
      const pa = a.findIndex((m) => m.pid === x.ppid);
      const pb = b.findIndex((m) => m.pid === y.ppid);
      if (pa !== pb) out.push(`${at}: its parent is member ${pa} in A, member ${pb} in B`);
    }
    const group = [relative(a, x.pgid, rootA.pgid, 'group'), relative(b, y.pgid, rootB.pgid, 'group')];
    if (group[0] !== group[1]) out.push(`${at}: in ${group[0]} in A, ${group[1]} in B`);
    const session = [relative(a, x.sid, rootA.sid, 'session'), relative(b, y.sid, rootB.sid, 'session')];
    if (session[0] !== session[1]) out.push(`${at}: in ${session[0]} in A, ${session[1]} in B`);
    const state = (m: TreeMember): string => (m.zombie ? `a zombie (${describeExit(m.zombie)})` : m.stopped ? 'stopped' : 'live');
    if (state(x) !== state(y)) out.push(`${at}: ${state(x)} in A, ${state(y)} in B`);
    if (x.comm !== y.comm) out.push(`${at}: comm ${JSON.stringify(x.comm)} in A, ${JSON.stringify(y.comm)} in B`);
  });
  return out;
}
