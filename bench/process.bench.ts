// `npm run bench:process [RUNS]`: issue 15's rows, each as whole CLI runs (a fresh `node cr.mjs`
// per run, median of RUNS, default 5): a python3 process with the seed's 8 fds, a process holding
// the dense table (1,031 fds on 393 pipes, 580 KB queued), a python3 process holding 300 MiB, and
// `plan` of a 100,000-fd JSON table. Beside each: `node -e 0` measured in the same run, cr's own
// work (whole minus that), the target's downtime (dump --timings' `frozen N ms`), and for the
// 300 MiB rows the ratio to `cp` of the image file. CRIU 4.2's figures are the issue's, measured
// on this kind of machine; nothing here asserts a time.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kill, SIGKILL } from '../bridge/signal.js';
import { killAndReap, spawn } from '../bridge/spawn.js';
import { denseTable, pipeTable } from './tables.js';
import type { FdTable } from '../src/model/fdtable.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CR = join(ROOT, 'cr.mjs');
const FIXTURES = join(ROOT, 'test', 'fixtures');
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const RUNS = Number(process.argv[2] ?? 5);
if (!Number.isSafeInteger(RUNS) || RUNS < 1) {
  console.error(`usage: node build/bench/process.bench.js [RUNS]: RUNS ${JSON.stringify(process.argv[2])} is not a count`);
  process.exit(2);
}
const sleeper = new Int32Array(new SharedArrayBuffer(4));
const nap = (ms: number): void => void Atomics.wait(sleeper, 0, 0, ms);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/** Our children (started by bridge/spawn: reaped) and restored processes (cr's, orphaned by --detach: killed). */
const children = new Set<number>();
const orphans = new Set<number>();

function waitFor(path: string, what: string): void {
  for (let i = 0; !existsSync(path) || readFileSync(path).length === 0; i++) {
    if (i > 6000) throw new Error(`${what} never became ready`);
    nap(5);
  }
}

/** One whole command: its wall time and what it wrote on stderr. */
function timed(argv: string[], what: string): { ms: number; stderr: string } {
  const t = performance.now();
  const r = spawnSync(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', maxBuffer: 1 << 26 });
  const ms = performance.now() - t;
  if (r.status !== 0) throw new Error(`${what} failed (${r.status ?? r.signal}): ${r.stderr}`);
  return { ms, stderr: r.stderr };
}

const cr = (args: string[]) => timed([process.execPath, CR, ...args], `cr ${args[0]}`);

function frozenMs(stderr: string): number {
  const m = /frozen ([0-9.]+) ms/.exec(stderr);
  if (!m) throw new Error(`dump --timings printed no frozen time: ${stderr}`);
  return Number(m[1]);
}

/** Dump pid whole RUNS times: whole times and downtimes. */
function dumps(pid: number, image: string): { whole: number[]; frozen: number[] } {
  const whole: number[] = [];
  const frozen: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = cr(['dump', '--pid', String(pid), '-o', image, '--force', '--timings', '--quiet']);
    whole.push(r.ms);
    frozen.push(frozenMs(r.stderr));
  }
  return { whole, frozen };
}

/** SIGKILL a process that may have ended already. */
function killGone(pid: number): void {
  try {
    kill(pid, SIGKILL);
  } catch {
    // gone already
  }
}

/** Kill a restored process (cr --detach left it to init) and wait until its pid is free again. */
function killOrphan(pid: number): void {
  killGone(pid);
  for (let i = 0; i < 200 && existsSync(`/proc/${pid}`); i++) nap(5);
  orphans.delete(pid);
}

/** Restart image RUNS times, each restarted process killed before the next. */
function restarts(image: string, dir: string): number[] {
  const pidfile = join(dir, 'restored.pid');
  const whole: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    rmSync(pidfile, { force: true });
    const r = cr(['restore', image, '--detach', '--pidfile', pidfile, '--quiet']);
    const pid = Number(readFileSync(pidfile, 'utf8'));
    orphans.add(pid);
    whole.push(r.ms);
    killOrphan(pid);
  }
  return whole;
}

const writeTable = (path: string, t: FdTable): void =>
  writeFileSync(path, JSON.stringify({ descs: t.descs, pipes: t.pipes, processes: [{ pid: 100, fds: t.fds, rlimit: t.rlimit }] }));

interface Row {
  work: string;
  whole: number[];
  frozen?: number[];
  criu: string;
  cp?: number[];
}

const rows: Row[] = [];
const dir = mkdtempSync(join(tmpdir(), 'cr-bench-process-'));
const started = new Date().toISOString();
const load = loadavg()[0]!.toFixed(1);
try {
  const nodeStart: number[] = [];
  for (let i = 0; i < RUNS; i++) nodeStart.push(timed([process.execPath, '-e', '0'], 'node -e 0').ms);

  // The seed's layout: python3 with 8 fds.
  {
    const at = join(dir, 'seed');
    mkdirSync(at);
    const pid = spawn([PYTHON, '-S', join(FIXTURES, 'fdlayout.py'), 'seed', at], { fds: [] });
    children.add(pid);
    waitFor(join(at, 'ready'), 'fdlayout.py seed');
    const image = join(at, 'image');
    const d = dumps(pid, image);
    killAndReap(pid);
    children.delete(pid);
    rows.push({ work: 'whole dump, python, 8 fds (seed)', whole: d.whole, frozen: d.frozen, criu: '16' });
    rows.push({ work: 'whole restart, same', whole: restarts(image, at), criu: '12' });
  }

  // The dense table, held by a sleep that `restore -- CMD` gave it.
  {
    const table = join(dir, 'dense.json');
    writeTable(table, denseTable());
    const pidfile = join(dir, 'dense.pid');
    cr(['restore', table, '--detach', '--pidfile', pidfile, '--', 'sleep', '100000']);
    const pid = Number(readFileSync(pidfile, 'utf8'));
    orphans.add(pid);
    const image = join(dir, 'dense.img');
    const d = dumps(pid, image);
    killOrphan(pid);
    rows.push({ work: 'whole dump, 1,031 fds / 393 pipes / 580 KB', whole: d.whole, frozen: d.frozen, criu: '45' });
    rows.push({ work: 'whole restart, same', whole: restarts(image, dir), criu: '36' });
  }

  // 300 MiB of random bytes in a python3 process (blocked opening a FIFO no one writes).
  {
    const at = join(dir, 'big');
    mkdirSync(at);
    const fifo = join(at, 'cmd');
    spawnSync('mkfifo', [fifo]);
    const pid = spawn([PYTHON, join(FIXTURES, 'process-bigmem.py'), '300', join(at, 'ready'), fifo, join(at, 'out')], { fds: [] });
    children.add(pid);
    waitFor(join(at, 'ready'), 'process-bigmem.py');
    const image = join(at, 'image');
    const d = dumps(pid, image);
    killAndReap(pid);
    children.delete(pid);
    const cp: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      cp.push(timed(['cp', image, `${image}.cp`], 'cp').ms);
      rmSync(`${image}.cp`);
    }
    rows.push({ work: 'dump of a 300 MiB process', whole: d.whole, frozen: d.frozen, criu: '160', cp });
    rows.push({ work: 'restart of it', whole: restarts(image, at), criu: '170', cp });
    rmSync(image);
  }

  // plan of a 100,000-fd table, JSON in (parse, validate, plan, verify, print).
  {
    const table = join(dir, 'plan100k.json');
    writeTable(table, pipeTable(100_000));
    const whole: number[] = [];
    for (let i = 0; i < RUNS; i++) whole.push(cr(['plan', table]).ms);
    rows.push({ work: 'plan of a 100,000-fd table (JSON in)', whole, criu: '-' });
  }

  const node = median(nodeStart);
  const ms = (x: number): string => x.toFixed(0);
  console.log(`cr, whole CLI runs, median of ${RUNS} (ms); ${started}, load average ${load} at the start; node -e 0: ${ms(node)} ms`);
  console.table(
    rows.map((r) => ({
      work: r.work,
      'cr whole': ms(median(r.whole)),
      'cr own work': ms(median(r.whole) - node),
      'downtime (frozen)': r.frozen ? median(r.frozen).toFixed(1) : '',
      'CRIU 4.2 whole': r.criu,
      'cp of image': r.cp ? ms(median(r.cp)) : '',
      'cr / cp': r.cp ? `${(median(r.whole) / median(r.cp)).toFixed(1)}x` : '',
    })),
  );
} finally {
  for (const pid of children) killAndReap(pid);
  for (const pid of orphans) killGone(pid);
  rmSync(dir, { recursive: true, force: true });
}
