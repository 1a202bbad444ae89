// `cr fuzz-image [options] [IMAGE...]`: make bad images from good ones and check that cr refuses
// each with exit code 2 and one line; a sample also goes through the real CLI. Exit 1 on any
// failure. With no IMAGE, the real images in test/fixtures/hardening-*.img are the seeds;
// `--process` adds a whole-process image made now (a tiny program built with cc, dumped whole).
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineCommand, parseCommand, type Values } from '../command-line.js';
import { badInput } from '../errors.js';
import { decodeImage } from '../image/format.js';
import { readImageFile } from '../image/file.js';
import { COLUMNS, type Column } from '../imagefuzz/cli.js';
import type { Seed } from '../imagefuzz/mutant.js';
import { makeProcessSeed } from '../imagefuzz/process-seed.js';
import { fuzzImages, summarize } from '../imagefuzz/run.js';
import { now } from '../../bridge/clock.js';

export const command = defineCommand({
  name: 'fuzz-image',
  summary: 'Check that bad images are refused cleanly (exit 2, one line); exit 1 if one is not.',
  usage: [
    'fuzz-image [--seed N] [--flips N] [--splices N] [--refits N] [--truncations N] [--cli N] [--columns LIST] ' +
      '[--huge] [--process] [--known-gaps] [--timeout-ms N] [--concurrency N] [IMAGE...]',
  ],
  operands: [{ name: 'IMAGE...', help: 'good images to start from (default: test/fixtures/hardening-*.img)', optional: true, many: true }],
  flags: {
    seed: { value: 'N', help: 'the seed of the random mutations (default 1)' },
    flips: { value: 'N', help: 'random bit flips per image, checksum left as is (default 600)' },
    splices: { value: 'N', help: 'random byte splices (overwrite, insert, delete) per image (default 300)' },
    refits: { value: 'N', help: 'random flips inside the payload, checksum recomputed, per image (default 150)' },
    truncations: { value: 'N', help: 'random truncations per image (the smallest gets every one) (default 100)' },
    cli: { value: 'N', help: 'how many bad images also go through the real CLI (default 300)' },
    columns: { value: 'LIST', help: 'which commands the CLI sample runs: some of show,plan,restore,into,restart (default all)' },
    huge: { help: 'add the mutants of tens of megabytes (slow to build and read)' },
    process: { help: 'add a whole-process image made now (a tiny program built with cc)' },
    'known-gaps': { help: 'also run the known gaps (counted apart: their misses are reported, not failures)' },
    'timeout-ms': { value: 'N', help: 'how long one CLI run may take (default 30000)' },
    concurrency: { value: 'N', help: 'CLI runs at once (default 3, at most 64)' },
  },
  examples: ['fuzz-image', 'fuzz-image --huge --process --seed 7'],
});

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
    const { bytes } = readImageFile(file); // read once: what is checked is what is mutated
    decodeImage(bytes, file); // a seed must itself be a good image
    return { name: basename(file), bytes };
  });
}

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommand(command, args);
  if (parsed === undefined) return 0;
  const v = parsed.values;
  const started = now();
  const list = seeds(parsed.operands);
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

async function fuzzAndReport(v: Values<typeof command.flags>, list: Seed[], marks: string[], started: number): Promise<number> {
  const report = await fuzzImages({
    seeds: list,
    marks,
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
  console.log(`time ${((now() - started) / 1000).toFixed(1)} s`);
  return report.failures.length === 0 && report.cli.failures.length === 0 ? 0 : 1;
}
