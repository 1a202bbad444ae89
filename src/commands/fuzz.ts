// `cr fuzz [--seed N] [--count N] [--max-fds N]`: random tables through the planner and
// the simulator; exit 1 with the failing seed and a shrunken case on the first failure.
import { tableJson } from '../model/json.js';
import { oneProcess } from '../model/fdtable.js';
import { treeOf } from '../fuzz/tree.js';
import { defineCommand, parseCommand } from '../command-line.js';
import { badInput } from '../errors.js';
import { fuzz, type FuzzReport } from '../fuzz/run.js';
import { now } from '../../bridge/clock.js';

export const command = defineCommand({
  name: 'fuzz',
  summary: 'Check the planner on random fd tables against the simulator; exit 1 with a shrunken case.',
  usage: ['fuzz [--seed N] [--count N] [--max-fds N]'],
  operands: [],
  flags: {
    seed: { value: 'N', default: '1', help: 'the first case\'s seed (0..2^32-1)' },
    count: { value: 'N', default: '1000', help: 'how many cases (1..1e9)' },
    'max-fds': { value: 'N', help: 'at most this many fds per table (1..20000)' },
  },
  examples: ['fuzz --count 100000', 'fuzz --seed 4242 --count 1'],
});

function number(text: string, name: string, min: number, max: number): number {
  if (!/^\d{1,10}$/.test(text)) badInput(`--${name}: ${JSON.stringify(text)} is not a number`);
  const n = Number(text);
  if (n < min || n > max) badInput(`--${name}: ${n} is not in ${min}..${max}`);
  return n;
}

function summary(r: FuzzReport): string[] {
  const avgOps = r.verified ? r.totalOps / r.verified : 0;
  const avgBound = r.verified ? r.totalLowerBound / r.verified : 0;
  return [
    `cases ${r.cases}, plans verified ${r.verified}, impossible (allowed) ${r.impossible}, failures ${r.failures}`,
    `as trees of 2 to 4 processes ${r.trees}: verified ${r.trees - r.treesImpossible}, impossible (allowed) ${r.treesImpossible}`,
    `average plan length ${avgOps.toFixed(2)} syscalls, average lower bound ${avgBound.toFixed(2)}, ratio ${avgBound ? (avgOps / avgBound).toFixed(4) : '-'}`,
  ];
}

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommand(command, args);
  if (parsed === undefined) return 0;
  const { values } = parsed;
  const seed = number(values.seed, 'seed', 0, 2 ** 32 - 1);
  const count = number(values.count, 'count', 1, 1e9);
  const maxFds = values['max-fds'] === undefined ? undefined : number(values['max-fds'], 'max-fds', 1, 20000);
  const last = (seed + count - 1) >>> 0;
  console.log(`fuzz: ${count} cases, seeds ${seed}..${last}${maxFds ? `, at most ${maxFds} fds` : ''}`);
  const started = now();
  const report = fuzz({
    seed,
    count,
    maxFds,
    progressEvery: 10000,
    onProgress: (done, r) => console.error(`  ${done} cases, ${r.impossible} impossible, ${((now() - started) / 1000).toFixed(0)} s`),
  });
  for (const line of summary(report)) console.log(line);
  console.log(`time ${((now() - started) / 1000).toFixed(1)} s`);
  const f = report.failure;
  if (!f) return 0;
  console.log(`FAILURE at seed ${f.seed} (rerun: node cr.mjs fuzz --seed ${f.seed} --count 1${maxFds ? ` --max-fds ${maxFds}` : ''})`);
  console.log(`  ${f.reason}`);
  console.log(`shrunk to ${f.shrunk.table.fds.length} fds, ${f.shrunk.target.fds.length} target fds; it fails with:`);
  console.log(`  ${f.shrunkReason}`);
  // As `plan` reads it: the table of one process.
  console.log(`table: ${tableJson(oneProcess(f.shrunk.table, 1))}`);
  console.log(`target: ${JSON.stringify(f.shrunk.target)}`);
  if (f.shrunk.tree !== undefined) console.log(`as a tree: ${tableJson(treeOf(f.shrunk.table, f.shrunk.tree))}`);
  return 1;
}
