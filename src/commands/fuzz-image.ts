// `cr fuzz-image [options] [IMAGE...]`: make bad images from good ones and check that cr refuses
// each with exit code 2 and one line; a sample also goes through the real CLI. Exit 1 on any
// failure. With no IMAGE, the real images in test/fixtures/hardening-*.img are the seeds.
import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { badInput } from '../errors.js';
import { readImage } from '../image/format.js';
import { COLUMNS, type Column } from '../imagefuzz/cli.js';
import type { Seed } from '../imagefuzz/mutants.js';
import { fuzzImages, summarize } from '../imagefuzz/run.js';

const USAGE =
  'usage: cr fuzz-image [--seed N] [--flips N] [--splices N] [--refits N] [--truncations N] [--cli N] ' +
  '[--columns show,plan,restore,into] [--huge] [--known-gaps] [--timeout-ms N] [--concurrency N] [IMAGE...]';

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
  const report = await fuzzImages({
    seeds: seeds(parsed.positionals),
    seed: count(v.seed, 'seed', 1, 2 ** 32 - 1),
    flips: count(v.flips, 'flips', 600),
    splices: count(v.splices, 'splices', 300),
    refits: count(v.refits, 'refits', 150),
    truncations: count(v.truncations, 'truncations', 100),
    cliSample: count(v.cli, 'cli', 300),
    columns: columns(v.columns),
    huge: v.huge,
    knownGaps: v['known-gaps'],
    timeoutMs: count(v['timeout-ms'], 'timeout-ms', 30_000),
    concurrency: count(v.concurrency, 'concurrency', 3, 64),
    onProgress: (line) => console.error(line),
  });
  for (const line of summarize(report)) console.log(line);
  console.log(`time ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return report.failures.length === 0 && report.cli.failures.length === 0 ? 0 : 1;
}
