// Objects made before the planner's creations: a pty, from which its master's description
// (F_DUPFD) and each slave's (TIOCGPTPEER) are made in whatever order the wasm planner creates
// them. Each is made by a `pty` op at the start of the plan (after the limit is raised, if it is)
// through the lowest free number, held at a spare number above every number the plan, the image
// and the target use, and finished and closed before the plan's closing prlimit. The planner
// stays kind-agnostic: it never sees the spare. Deterministic: the order is the table's.
import { kindOf } from '../kinds/registry.js';
import type { Desc, FdTable } from '../model/fdtable.js';
import type { PlanTarget } from '../model/restore-target.js';
import { OpWords, type Op } from './ops.js';
import { PlanImpossible } from './planner-error.js';

/** Every fd number an op names. */
function numbersOf(op: Op): number[] {
  switch (op.op) {
    case 'pipe2':
    case 'socketpair':
      return op.fds;
    case 'dup2':
      return [op.from, op.to];
    case 'dupfd':
      return [op.from, op.fd];
    case 'pty':
      return [op.lowest, op.fd];
    case 'open':
    case 'close':
    case 'setfl':
    case 'setfd':
    case 'setpipesz':
    case 'lseek':
    case 'create':
    case 'link':
    case 'write':
      return [op.fd];
    case 'prlimit':
    case 'fork':
    case 'commit':
      return [];
    default: {
      const never: never = op;
      return never;
    }
  }
}

/** `words` with the `pty` ops that make and finish the objects of `table`'s descriptions that need one. */
export function addPreparations(words: OpWords, table: FdTable, target: PlanTarget): OpWords {
  const inherited = new Set((target.inherited ?? []).map((h) => h.desc));
  const prepared = table.descs.filter((d) => !inherited.has(d.id) && kindOf(d).prepare !== undefined);
  if (prepared.length === 0) return words;
  // Only a table with a pty comes here: its ops as records, put back as words at the end.
  const ops = words.toOps();

  let start = 0;
  while (start < ops.length && ops[start]!.op === 'prlimit') start++;
  let end = ops.length;
  while (end > start && ops[end - 1]!.op === 'prlimit') end--;
  // The soft limit the plan runs with: the target's, or what a leading prlimit raised it to.
  const soft = start > 0 ? (ops[start - 1] as { soft: number }).soft : target.rlimit.soft;
  const held = new Set(target.fds);
  let lowest = 0;
  while (held.has(lowest)) lowest++;
  const used = [lowest, ...target.fds, ...table.fds.map((f) => f.fd), ...ops.flatMap(numbersOf)];
  const base = Math.max(...used) + 1;

  const make: Op[] = [];
  const finish: Op[] = [];
  prepared.forEach((d, k) => {
    const kind = kindOf(d) as { prepareText(d: Desc, lowest: number, fd: number, done: boolean): string };
    const fd = base + k;
    if (fd >= soft) throw new PlanImpossible(`description ${d.id} (${d.kind}) needs a spare fd above the table's, and none is free below the soft RLIMIT_NOFILE ${soft} the restore runs with`);
    make.push({ op: 'pty', desc: d.id, lowest, fd, done: false, call: kind.prepareText(d, lowest, fd, false) });
    finish.push({ op: 'pty', desc: d.id, lowest, fd, done: true, call: kind.prepareText(d, lowest, fd, true) });
  });
  return OpWords.fromOps([...ops.slice(0, start), ...make, ...ops.slice(start, end), ...finish, ...ops.slice(end)]);
}
