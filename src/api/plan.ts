// plan (src/api.ts): from an image alone, no root, no ptrace; loads neither koffi nor checkpoint/.
import { badInput, CrError } from '../errors.js';
import { loadInput } from '../image/input.js';
import type { FdTables } from '../model/fdtable.js';
import { parseFdList, parseRlimit } from '../image/validate.js';
import type { PlanTarget, TargetMode } from '../model/restore-target.js';
import type { Plan } from '../plan/ops.js';
import { planTree, type TreePlan } from '../plan/tree.js';
import { verifyTree } from '../sim/verify.js';

const MODES: readonly TargetMode[] = ['fresh', 'into', 'into-exact'];

export interface PlanOptions {
  /** the fds the target has open already (a list, or `0-2,7`); default 0-2 */
  targetFds?: number[] | string;
  /** the target's RLIMIT_NOFILE (`N`, `SOFT:HARD`, or both numbers); default the image's */
  rlimit?: string | { soft: number; hard: number };
  /** a new process (default), a running one (into), one whose other fds close (into-exact) */
  mode?: TargetMode;
}

export interface PlanResult {
  table: FdTables;
  /** what each root starts with */
  target: PlanTarget;
  /** the first process's plan: for one process, the whole of it */
  plan: Plan;
  /**
   * every process's plan and the order across them (src/plan/tree.ts); verified by the simulator:
   * it ends with exactly the image's table in every process
   */
  tree: TreePlan;
}

/** Plan the syscalls that restore image's fd table, checked in the simulator (docs/planner.md). */
export function plan(image: string, opts: PlanOptions = {}): PlanResult {
  const mode = opts.mode ?? 'fresh';
  if (!MODES.includes(mode)) badInput(`--mode: ${JSON.stringify(mode)} is not one of ${MODES.join(', ')}`);
  const { tables: table } = loadInput(image);
  const fds = opts.targetFds ?? '0-2';
  const target: PlanTarget = {
    fds: typeof fds === 'string' ? parseFdList(fds) : [...fds],
    rlimit: opts.rlimit === undefined ? { ...table.processes[0]!.rlimit } : typeof opts.rlimit === 'string' ? parseRlimit(opts.rlimit) : { ...opts.rlimit },
    mode,
  };
  const tree = planTree(table, target);
  const check = verifyTree(table, target, tree);
  if (!check.ok) {
    throw new CrError(`the plan failed the simulator's check${check.op === undefined ? '' : ` at op ${check.op + 1}`}: ${check.reason}`, 1);
  }
  return { table, target, plan: tree.processes[0]!.plan, tree };
}
