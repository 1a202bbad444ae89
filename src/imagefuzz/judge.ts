// One mutant through cr's own reading and planning code, in this process: what `show`, `plan`
// and `restore` do before they touch any process. A refusal must be a one-line CrError with
// exit code 2; anything else thrown is a crash.
import { rmSync, writeFileSync } from 'node:fs';
import { CrError, EXIT_BAD_INPUT } from '../errors.js';
import { loadInput } from '../image/input.js';
import { viewOf, type FdTable, type FdTables } from '../model/fdtable.js';
import type { PlanTarget } from '../model/restore-target.js';
import { planTree } from '../plan/tree.js';
import { verifyTree } from '../sim/verify.js';

/** A restore target to plan for: `plan`'s default, a fresh process, a live one. */
export interface NamedTarget {
  name: string;
  /** the target, given the image's table (`plan` takes the table's own rlimit) */
  target(table: FdTable): PlanTarget;
}

export type Verdict =
  | { kind: 'rejected'; message: string }
  | { kind: 'accepted'; planned: string[] }
  | { kind: 'crashed'; why: string };

/** Is err what cr prints for bad input: a CrError, exit code 2, one line? Else why not. */
export function badInputProblem(err: unknown): string | undefined {
  if (!(err instanceof CrError)) return `threw ${err instanceof Error ? `${err.name}: ${err.message.split('\n')[0]}` : String(err)}`;
  if (err.code !== EXIT_BAD_INPUT) return `CrError with exit code ${err.code}: ${err.message}`;
  if (err.message.includes('\n')) return `a message of several lines: ${JSON.stringify(err.message.slice(0, 200))}`;
  if (err.message.trim() === '') return 'an empty message';
  return undefined;
}

/**
 * Load bytes as `show`/`plan`/`restore` do (from a file at `path`, JSON or image), then plan for
 * each target and check the plan with the simulator.
 */
export function judge(bytes: Buffer, path: string, targets: NamedTarget[]): Verdict {
  writeFileSync(path, bytes, { mode: 0o600 });
  let tables: FdTables;
  try {
    tables = loadInput(path).tables;
  } catch (err) {
    const problem = badInputProblem(err);
    return problem ? { kind: 'crashed', why: `loading: ${problem}` } : { kind: 'rejected', message: (err as Error).message };
  } finally {
    rmSync(path, { force: true });
  }
  const planned: string[] = [];
  for (const t of targets) {
    // A target is made for the first process (the root); a tree is planned as `plan` plans it.
    const target = t.target(viewOf(tables, 0));
    try {
      const check = verifyTree(tables, target, planTree(tables, target));
      if (!check.ok) return { kind: 'crashed', why: `${t.name}: the plan failed the simulator: ${check.reason}` };
      planned.push(t.name);
    } catch (err) {
      const problem = badInputProblem(err);
      if (problem) return { kind: 'crashed', why: `${t.name}: planning ${problem}` };
    }
  }
  return { kind: 'accepted', planned };
}
