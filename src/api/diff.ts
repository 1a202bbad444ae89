// diff (src/api.ts): two images compared.
import { compareAll } from '../diff/compare.js';
import { compareGuards } from '../diff/guards.js';
import { compareHeads } from '../diff/head.js';
import { compareTrees } from '../diff/tree.js';
import { headJson } from '../image/head-json.js';
import { badInput } from '../errors.js';
import { STDIN_IMAGE } from '../image/file.js';
import { loadInput } from '../image/input.js';
import { guardRegions } from '../image/process-head.js';
import { shown, type ShowResult } from './show.js';

export interface DiffResult {
  /** no difference */
  same: boolean;
  /** one line each */
  differences: string[];
  a: ShowResult;
  b: ShowResult;
  /** guard regions compared (both whole-process images): how many A has */
  guardRegions?: number;
  /** the process heads compared (both whole-process images): A's mappings and non-default signal actions */
  head?: { mappings: number; signalActions: number };
}

/**
 * Compare two images: for trees their shape first (src/diff/tree.ts), then the fd tables and, for
 * two whole-process images, each process's head and guard regions. At most one may be `-`.
 */
export function diff(a: string, b: string): DiffResult {
  if (a === STDIN_IMAGE && b === STDIN_IMAGE) badInput('A and B cannot both be - : stdin holds one image');
  const inA = loadInput(a);
  const inB = loadInput(b);
  const sa = shown(inA);
  const sb = shown(inB);
  // Two trees: the shape first; when it differs, the per-process comparisons would only repeat it.
  // (A table without a tree has only its processes' parents, which compareAll compares.)
  const trees = inA.tree && inB.tree && (inA.tree.length > 1 || inB.tree.length > 1) ? compareTrees(inA.tree, inB.tree) : [];
  if (trees.length > 0) return { same: false, differences: trees, a: sa, b: sb };
  const differences = compareAll(inA.tables, inB.tables);
  // Memory is compared only between two whole-process images: an fd table has none to differ.
  const both = inA.process && inB.process ? { a: inA.process.head.mappings, b: inB.process.head.mappings } : null;
  if (both && inA.process!.members.length > 1) {
    // Each live member's head and guard regions, by position, named by its pid.
    inA.process!.members.forEach((m, i) => {
      const other = inB.process!.members[i]!;
      const at = m.pid === other.pid ? `process ${m.pid}` : `process ${m.pid} (${other.pid} in B)`;
      for (const line of [...compareHeads(headJson(m.head), headJson(other.head)), ...compareGuards(m.head.mappings, other.head.mappings)]) differences.push(`${at}: ${line}`);
    });
  } else if (both) {
    differences.push(...compareHeads(sa.head!, sb.head!), ...compareGuards(both.a, both.b));
  }
  return {
    same: differences.length === 0, differences, a: sa, b: sb,
    ...(both ? { guardRegions: guardRegions(both.a).length, head: { mappings: sa.head!.mappings.length, signalActions: sa.head!.signalActions.length } } : {}),
  };
}
