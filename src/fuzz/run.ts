// The fuzz loop: case i of a run with seed S is generateCase(S + i), so any failing
// case can be rerun alone with `--seed S+i --count 1`. Stops at the first failure
// and shrinks it.
import { checkCase } from './check.js';
import { generateCase, type FuzzCase } from './generate.js';
import { shrink } from './shrink.js';

export interface FuzzOptions {
  seed: number;
  count: number;
  /** cap on the fds of a case (the size mix goes up to 20,000) */
  maxFds?: number;
  /** called every `progressEvery` cases */
  onProgress?: (done: number, report: FuzzReport) => void;
  progressEvery?: number;
}

export interface FuzzFailure {
  seed: number;
  reason: string;
  shrunk: FuzzCase;
  shrunkReason: string;
}

export interface FuzzReport {
  cases: number;
  verified: number;
  impossible: number;
  failures: number;
  /** syscalls (ops but the commit marker) over all verified plans */
  totalOps: number;
  totalLowerBound: number;
  /** cases also planned as a tree of processes (fuzz/tree.ts): verified, refused */
  trees: number;
  treesImpossible: number;
  failure?: FuzzFailure;
}

export function fuzz(options: FuzzOptions): FuzzReport {
  const report: FuzzReport = { cases: 0, verified: 0, impossible: 0, failures: 0, totalOps: 0, totalLowerBound: 0, trees: 0, treesImpossible: 0 };
  for (let i = 0; i < options.count; i++) {
    const seed = (options.seed + i) >>> 0;
    const c = generateCase(seed, options.maxFds);
    const outcome = checkCase(c);
    report.cases++;
    if (outcome.kind !== 'failure' && outcome.tree !== undefined) {
      report.trees++;
      if (outcome.tree === 'impossible') report.treesImpossible++;
    }
    if (outcome.kind === 'verified') {
      report.verified++;
      report.totalOps += outcome.ops;
      report.totalLowerBound += outcome.lowerBound;
    } else if (outcome.kind === 'impossible') {
      report.impossible++;
    } else {
      report.failures++;
      const stillFails = (x: FuzzCase): boolean => {
        const o = checkCase(x);
        return o.kind === 'failure' && !o.reason.startsWith('the case is not valid input');
      };
      const shrunk = shrink(c, stillFails);
      const again = checkCase(shrunk);
      report.failure = { seed, reason: outcome.reason, shrunk, shrunkReason: again.kind === 'failure' ? again.reason : outcome.reason };
      return report;
    }
    if (options.onProgress && options.progressEvery && report.cases % options.progressEvery === 0) options.onProgress(report.cases, report);
  }
  return report;
}
