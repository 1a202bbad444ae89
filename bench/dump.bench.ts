// Time `dump` on the test fixtures: each phase (freeze, /proc reads, kcmp grouping, pipe copies,
// thaw, image write) as the median of several in-process runs on one live fixture, plus the
// whole `node cr.mjs dump` command (node start-up included) as a median of a few runs. Then the
// dense table (bench/tables.ts pipeTable(1031): 1,031 fds on 393 pipes, bytes in a third) given
// to `sleep` by restore -- CMD: the fd-table dump's phases (proc + kcmp is the gather) and the
// whole-process dump's, with its downtime (frozen).
// Run: npm run build && node build/bench/dump.bench.js [RUNS] [dense]   (dense: that table only)
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { killAndReap, spawn } from '../bridge/spawn.js';
import { checkpointProcess } from '../src/checkpoint/checkpoint.js';
import { dumpFdTable } from '../src/dump/fd-dump.js';
import { writeImage } from '../src/image/format.js';
import { restoreFresh } from '../src/restore/fresh.js';
import { ensureReaped } from '../test/helpers/processes.js';
import { pipeTable } from './tables.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURE = join(ROOT, 'test', 'fixtures', 'fdlayout.py');
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const RUNS = Number(process.argv[2] ?? 21);
const CLI_RUNS = 7;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[s.length >> 1]!;
};
const sleeper = new Int32Array(new SharedArrayBuffer(4));

function bench(scenario: string): void {
  const dir = mkdtempSync(join(tmpdir(), `cr-bench-${scenario}-`));
  const pid = spawn([PYTHON, '-S', FIXTURE, scenario, dir], { fds: [] });
  try {
    while (!existsSync(join(dir, 'ready'))) Atomics.wait(sleeper, 0, 0, 5);
    const image = join(dir, 'image');
    const phases = new Map<string, number[]>();
    let summary = '';
    for (let i = 0; i < RUNS; i++) {
      const run = dumpFdTable(pid, { skipUnsupported: false, leaveStopped: false });
      const t = performance.now();
      writeImage(image, run.image, { force: true });
      run.phases.push(['write', performance.now() - t]);
      run.phases.push(['total', run.phases.reduce((n, [, ms]) => n + ms, 0)]);
      for (const [name, ms] of run.phases) phases.set(name, [...(phases.get(name) ?? []), ms]);
      const { pipes } = run.image.table;
      const fds = run.image.table.processes[0]!.fds;
      summary = `${fds.length} fds, ${pipes.length} pipes, ${pipes.reduce((n, p) => n + p.data.length, 0)} bytes`;
    }
    const cli: number[] = [];
    for (let i = 0; i < CLI_RUNS; i++) {
      const t = performance.now();
      const r = spawnSync(process.execPath, [join(ROOT, 'cr.mjs'), 'dump', '--pid', String(pid), '-o', image, '--force']);
      if (r.status !== 0) throw new Error(`cr dump failed: ${r.stderr}`);
      cli.push(performance.now() - t);
    }
    const cells = [...phases].map(([name, xs]) => `${name} ${median(xs).toFixed(2)}`);
    console.log(`${scenario.padEnd(10)} (${summary}): ${cells.join(', ')} ms; node cr.mjs dump ${median(cli).toFixed(0)} ms`);
  } finally {
    ensureReaped(pid);
    rmSync(dir, { recursive: true, force: true });
  }
}

const cells = (phases: Map<string, number[]>): string => [...phases].map(([name, xs]) => `${name} ${median(xs).toFixed(2)}`).join(', ');
const record = (phases: Map<string, number[]>, run: Array<[string, number]>): void => {
  for (const [name, ms] of run) phases.set(name, [...(phases.get(name) ?? []), ms]);
};

function dense(): void {
  const dir = mkdtempSync(join(tmpdir(), 'cr-bench-dense-'));
  const { pid } = restoreFresh(pipeTable(1031), ['sleep', '600'], null);
  try {
    const image = join(dir, 'image');
    const fdsOnly = new Map<string, number[]>();
    const whole = new Map<string, number[]>();
    for (let i = 0; i < RUNS; i++) {
      const run = dumpFdTable(pid, { skipUnsupported: false, leaveStopped: false });
      record(fdsOnly, [...run.phases, ['gather', run.phases.filter(([n]) => n === 'proc' || n === 'kcmp').reduce((n, [, ms]) => n + ms, 0)]]);
      const r = checkpointProcess(pid, image, { force: true });
      record(whole, [...r.phases, ['frozen', r.frozenMs]]);
    }
    console.log(`dense      (1031 fds, 393 pipes) fd table: ${cells(fdsOnly)} ms`);
    console.log(`dense      whole process: ${cells(whole)} ms`);
  } finally {
    killAndReap(pid);
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`dump, median of ${RUNS} in-process runs per phase (ms), and of ${CLI_RUNS} whole CLI runs:`);
if (process.argv[3] !== 'dense') for (const scenario of ['seed', 'full', 'big', 'fifo', 'packets', 'pow2', 'limit64']) bench(scenario);
dense();
