// SIGKILL of cr at random moments of a whole dump, a restore --into and a restart, N times each,
// and what became of the process each time (test/helpers/abandon.ts has the trial and the
// self-checking target): killed, left running changed, left stopped and put back by
// `cr recover`, untouched, complete. docs/reliability.md has the figures.
// Run: npm run build && node build/bench/abandon.bench.js [N=300] [dump,into,restart]
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../src/fuzz/random.js';
import { calibrate, INTO_TABLE, processImage, trial, type Kind, type Outcome, type TrialContext } from '../test/helpers/abandon.js';
import { tableJson } from '../src/model/json.js';

const n = Number(process.argv[2] ?? 300);
const kinds = (process.argv[3] ?? 'dump,into,restart').split(',') as Kind[];
const dir = mkdtempSync(join(tmpdir(), 'cr-abandon-'));
const run = join(dir, 'run');
const ctx: TrialContext = { dir, env: { ...process.env, XDG_RUNTIME_DIR: run }, intoImage: join(dir, 'into.json') };
const OUTCOMES: Outcome[] = ['killed', 'changed', 'unrecovered', 'recovered', 'untouched', 'complete'];
try {
  mkdirSync(run, { mode: 0o700 });
  writeFileSync(ctx.intoImage, tableJson(INTO_TABLE));
  if (kinds.includes('restart')) ctx.processImage = await processImage(ctx);
  console.log(`| kind | trials | ${OUTCOMES.join(' | ')} | command ms | traced ms |`);
  console.log(`| --- | ---: | ${OUTCOMES.map(() => '---:').join(' | ')} | ---: | ---: |`);
  const notes: string[] = [];
  for (const kind of kinds) {
    const timing = await calibrate(kind, ctx);
    const rng = new Rng(1000 + kinds.indexOf(kind));
    const tally = new Map<Outcome, number>(OUTCOMES.map((o) => [o, 0]));
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      const r = await trial(kind, ctx, timing, rng, i);
      tally.set(r.outcome, tally.get(r.outcome)! + 1);
      if (r.outcome === 'killed' || r.outcome === 'changed' || r.outcome === 'unrecovered') notes.push(`${kind} ${i}: ${r.outcome}: ${r.detail}`);
      else if (process.env.CR_ABANDON_VERBOSE) notes.push(`${kind} ${i}: ${r.outcome}: ${r.detail}`);
    }
    const row = OUTCOMES.map((o) => tally.get(o));
    console.log(`| ${kind} | ${n} | ${row.join(' | ')} | ${timing.totalMs.toFixed(0)} | ${timing.tracedMs.toFixed(0)} |`);
    console.error(`  (${kind}: ${((performance.now() - t0) / 1000).toFixed(0)} s)`);
  }
  for (const note of notes.slice(0, 40)) console.log(note);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
