// One fuzz case end to end: validate the table, plan it, verify the plan on the
// simulator, and judge a refusal against what the planner promises.
import { tableJson } from '../model/json.js';
import { CrError } from '../errors.js';
import { parseTables, parseTarget } from '../image/validate.js';
import { oneProcess, viewOf } from '../model/fdtable.js';
import { PlanImpossible, planRestore } from '../plan/planner.js';
import { verify } from '../sim/verify.js';
import { planGuaranteed, type FuzzCase } from './generate.js';
import { planTree } from '../plan/tree.js';
import { verifyTree } from '../sim/verify.js';
import { treeOf } from './tree.js';

export type CaseVerdict =
  | { kind: 'verified'; ops: number; lowerBound: number; tree?: TreeVerdict }
  | { kind: 'impossible'; reason: string; tree?: TreeVerdict }
  | { kind: 'failure'; reason: string };

/** What became of the case's tree (fuzz/tree.ts), when it has one. */
export type TreeVerdict = 'verified' | 'impossible';

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
    return withTree(c, { kind: 'impossible', reason: message });
  }
  const result = verify(table, c.target, plan);
  if (!result.ok) return { kind: 'failure', reason: `plan fails verification: ${result.reason}` };
  return withTree(c, { kind: 'verified', ops: plan.length - 1, lowerBound: plan.lowerBound });
}

/**
 * The case split over a tree: planned by planTree (refusing is allowed: carried fds need numbers
 * above every other) and, when planned, verified whole by the simulator.
 */
function withTree(c: FuzzCase, single: Exclude<CaseVerdict, { kind: 'failure' }>): CaseVerdict {
  if (c.tree === undefined) return single;
  let tables;
  try {
    tables = parseTables(JSON.parse(tableJson(treeOf(c.table, c.tree))));
  } catch (err) {
    if (err instanceof CrError) return { kind: 'failure', reason: `the tree is not valid input: ${err.message}` };
    throw err;
  }
  let tree;
  try {
    tree = planTree(tables, c.target);
  } catch (err) {
    if (err instanceof PlanImpossible) return { ...single, tree: 'impossible' };
    return { kind: 'failure', reason: `tree planner crashed: ${err instanceof Error ? err.message : String(err)}` };
  }
  const result = verifyTree(tables, c.target, tree);
  if (!result.ok) return { kind: 'failure', reason: `tree plan fails verification: ${result.reason}` };
  return { ...single, tree: 'verified' };
}
