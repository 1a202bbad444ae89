// One fuzz case end to end: validate the table, plan it, verify the plan on the
// simulator, and judge a refusal against what the planner promises.
import { CrError } from '../errors.js';
import { parseTables, parseTarget } from '../image/validate.js';
import { oneProcess, viewOf } from '../model/fdtable.js';
import { PlanImpossible, planRestore } from '../plan/planner.js';
import { verify } from '../sim/verify.js';
import { planGuaranteed, type FuzzCase } from './generate.js';

export type CaseVerdict =
  | { kind: 'verified'; ops: number; lowerBound: number }
  | { kind: 'impossible'; reason: string }
  | { kind: 'failure'; reason: string };

export function checkCase(c: FuzzCase): CaseVerdict {
  let table;
  try {
    table = viewOf(parseTables(oneProcess(c.table, 1)), 0);
    parseTarget(c.target);
  } catch (err) {
    if (err instanceof CrError) return { kind: 'failure', reason: `the case is not valid input: ${err.message}` };
    throw err;
  }
  let plan;
  try {
    plan = planRestore(table, c.target);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (!(err instanceof PlanImpossible)) return { kind: 'failure', reason: `planner crashed: ${message}` };
    if (planGuaranteed(table, c.target)) return { kind: 'failure', reason: `planner refused a case it promises to plan: ${message}` };
    return { kind: 'impossible', reason: message };
  }
  const result = verify(table, c.target, plan);
  if (!result.ok) return { kind: 'failure', reason: `plan fails verification: ${result.reason}` };
  return { kind: 'verified', ops: plan.ops.length - 1, lowerBound: plan.lowerBound };
}
