// `npm run bench`: planning time for 10 to 1,000,000 fds, cr's wasm planner against
// the seed's quadratic pairing (up to 100,000 fds: at 10^6 it would take most of an hour). Prints
// a table of median times and their ratio.

import { Bench } from 'tinybench';
import { planRestore } from '../src/plan/planner.js';
import type { PlanTarget } from '../src/model/restore-target.js';
import { seedPlan } from './seed-baseline.js';
import { pipeTable } from './tables.js';

const sizes = [10, 1_000, 10_000, 100_000, 1_000_000];
/** above this many fds the seed-style planner is not run */
const SEED_MOST = 100_000;
const rows: Array<Record<string, string>> = [];
for (const n of sizes) {
  const table = pipeTable(n);
  const target: PlanTarget = { fds: [0, 1, 2], rlimit: table.rlimit, mode: 'fresh' };
  const heavy = n >= 10_000;
  const bench = new Bench({ time: heavy ? 0 : 500, iterations: heavy ? 5 : 20, warmup: !heavy });
  bench.add('cr', () => void planRestore(table, target));
  const seeded = n <= SEED_MOST;
  if (seeded) bench.add('seed', () => void seedPlan(table));
  await bench.run();
  const median = (name: string) => {
    const task = bench.tasks.find((t) => t.name === name)!;
    const result = task.result as unknown as { latency?: { p50?: number }; p50?: number };
    return result.latency?.p50 ?? result.p50 ?? NaN;
  };
  const cr = median('cr');
  const seed = seeded ? median('seed') : NaN;
  const plan = planRestore(table, target);
  rows.push({
    fds: n.toLocaleString('en-US'),
    'cr plan (ms)': cr.toFixed(3),
    'seed-style (ms)': seeded ? seed.toFixed(3) : '-',
    'seed / cr': seeded ? (seed / cr).toFixed(1) + 'x' : '-',
    'ops / lower bound': `${plan.length} / ${plan.lowerBound}`,
  });
}
console.table(rows);
