// The checks around a replay: the plan must pass the simulator before any process is touched,
// and afterwards the target must hold exactly the fd numbers the plan promised.
import { CrError } from '../errors.js';
import type { FdTable } from '../model/fdtable.js';
import type { Plan, PlanTarget } from '../plan/ops.js';
import { planRestore } from '../plan/planner.js';
import { listFds } from '../proc/fds.js';
import { verify } from '../sim/verify.js';

/** The planner's plan for this target, refused (CrError) unless the simulator accepts it. */
export function checkedPlan(table: FdTable, target: PlanTarget): Plan {
  const plan = planRestore(table, target);
  const check = verify(table, target, plan);
  if (!check.ok) {
    throw new CrError(`the plan failed the simulator's check${check.op === undefined ? '' : ` at op ${check.op + 1}`}: ${check.reason}`);
  }
  return plan;
}

/** The fd numbers a target must have once the plan ran. */
export function expectedFds(table: FdTable, target: PlanTarget): number[] {
  const fds = new Set(table.fds.map((f) => f.fd));
  if (target.mode === 'into') for (const fd of target.fds) fds.add(fd);
  return [...fds].sort((a, b) => a - b);
}

/** Throw unless pid's open fd numbers are exactly `want`. */
export function checkFdNumbers(pid: number, want: number[]): void {
  const got = listFds(pid);
  const wanted = new Set(want);
  const have = new Set(got);
  const extra = got.filter((fd) => !wanted.has(fd));
  const missing = want.filter((fd) => !have.has(fd));
  const problems = [
    ...(extra.length ? [`has fds ${extra.join(', ')} the plan did not make`] : []),
    ...(missing.length ? [`lacks fds ${missing.join(', ')}`] : []),
  ];
  if (problems.length > 0) throw new CrError(`after the replay pid ${pid} ${problems.join(' and ')}`);
}
