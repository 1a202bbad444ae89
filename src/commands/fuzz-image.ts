// `cr fuzz-image [options] [IMAGE...]`: make bad images from good ones and check that cr refuses
// each with exit code 2 and one line; a sample also goes through the real CLI. Exit 1 on any
// failure. With no IMAGE, the real images in test/fixtures/hardening-*.img are the seeds;
// `--process` adds a whole-process image made now (a tiny program built with cc, dumped whole).
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { badInput } from '../errors.js';
import { readImage } from '../image/format.js';
import { COLUMNS, type Column } from '../imagefuzz/cli.js';
import type { Seed } from '../imagefuzz/mutants.js';
import { makeProcessSeed } from '../imagefuzz/process-seed.js';
import { fuzzImages, summarize } from '../imagefuzz/run.js';

const USAGE =
  'usage: cr fuzz-image [--seed N] [--flips N] [--splices N] [--refits N] [--truncations N] [--cli N] ' +
  '[--columns show,plan,restore,into,restart] [--huge] [--process] [--known-gaps] [--timeout-ms N] [--concurrency N] [IMAGE...]';

const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));

function count(text: string | undefined, name: string, fallback: number, max = 1e7): number {
  if (text === undefined) return fallback;
  if (!/^\d{1,10}$/.test(text) || Number(text) > max) badInput(`--${name}: ${JSON.stringify(text)} is not a number up to ${max}`);
  return Number(text);
}

function columns(text: string | undefined): Column[] {
  if (text === undefined) return [...COLUMNS];
  const list = text.split(',').map((c) => c.trim());
  for (const c of list) if (!(COLUMNS as readonly string[]).includes(c)) badInput(`--columns: ${JSON.stringify(c)} is not one of ${COLUMNS.join(', ')}`);
  return list as Column[];
}

function seeds(paths: string[]): Seed[] {
  const files = paths.length > 0 ? paths : readdirSync(FIXTURES).filter((f) => /^hardening-.*\.img$/.test(f)).sort().map((f) => join(FIXTURES, f));
  if (files.length === 0) badInput(`no seed images (give IMAGE arguments, or run node test/fixtures/hardening-images.mjs)`);
  return files.map((file) => {
    readImage(file); // a seed must itself be a good image
    return { name: basename(file), bytes: readFileSync(file) };
  });
}

export async function run(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        seed: { type: 'string' },
        flips: { type: 'string' },
        splices: { type: 'string' },
        refits: { type: 'string' },
        truncations: { type: 'string' },
        cli: { type: 'string' },
        columns: { type: 'string' },
        huge: { type: 'boolean', default: false },
        process: { type: 'boolean', default: false },
        'known-gaps': { type: 'boolean', default: false },
        'timeout-ms': { type: 'string' },
        concurrency: { type: 'string' },
      },
    });
  } catch (err) {
    badInput(`${(err as Error).message.split('\n')[0]} (${USAGE})`);
  }
  const v = parsed.values;
  const started = performance.now();
  const list = seeds(parsed.positionals);
  const marks: string[] = [];
  // The whole-process seed's executable must stay in place for restarts: removed at the end.
  const procDir = v.process ? mkdtempSync(join(tmpdir(), 'cr-imagefuzz-proc-')) : undefined;
  try {
    if (procDir) {
      const made = makeProcessSeed(procDir);
      list.push(made.seed);
      marks.push(made.mark);
    }
    return await fuzzAndReport(v, list, marks, started);
  } finally {
    if (procDir) rmSync(procDir, { recursive: true, force: true });
  }
}

type Values = { [k: string]: string | boolean | undefined };

async function fuzzAndReport(v: Values, list: Seed[], marks: string[], started: number): Promise<number> {
  const str = (k: string): string | undefined => v[k] as string | undefined;
  const report = await fuzzImages({
    seeds: list,
    marks,
    seed: count(str('seed'), 'seed', 1, 2 ** 32 - 1),
    flips: count(str('flips'), 'flips', 600),
    splices: count(str('splices'), 'splices', 300),
    refits: count(str('refits'), 'refits', 150),
    truncations: count(str('truncations'), 'truncations', 100),
    cliSample: count(str('cli'), 'cli', 300),
    columns: columns(str('columns')),
    huge: v.huge === true,
    knownGaps: v['known-gaps'] === true,
    timeoutMs: count(str('timeout-ms'), 'timeout-ms', 30_000),
    concurrency: count(str('concurrency'), 'concurrency', 3, 64),
    onProgress: (line) => console.error(line),
  });
  for (const line of summarize(report)) console.log(line);
  console.log(`time ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return report.failures.length === 0 && report.cli.failures.length === 0 ? 0 : 1;
}
