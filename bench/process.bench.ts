// `npm run bench:process [RUNS]`: issue 15's rows, each as whole CLI runs (a fresh `node cr.mjs`
// per run, median of RUNS, default 5): the start-up (`--help`, and `dump --bogus` and `restore
// --bogus`: each command's modules loaded, its parser refusing), a python3 process with the seed's
// 8 fds, a process holding the dense table (1,031 fds on 393 pipes, 580 KB queued), a python3
// process holding 300 MiB, and `plan` of a 100,000-fd JSON table. Beside each: `node -e 0` measured
// in the same run, cr's own work (whole minus that), the CPU time of each (user + system: steadier
// than wall time on a machine other work shares), the target's downtime (dump --timings' `frozen N
// ms`), and for the 300 MiB rows the ratio to `cp` of the image file. CRIU 4.2's figures are the
// issue's, measured on this kind of machine; nothing here asserts a time.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kill, SIGKILL } from '../bridge/signal.js';
import { killAndReap, spawn } from '../bridge/spawn.js';
import { denseTable, pipeTable } from './tables.js';
import type { FdTable } from '../src/model/fdtable.js';
import { tableJson } from '../src/model/json.js';

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

/**
 * CPU time (user + system, ms) of this process's children that were waited for: /proc/self/stat's
 * cutime and cstime, in clock ticks (100 a second here, so 10 ms steps). On a machine other work
 * shares, a command's CPU time moves far less than its wall time.
 */
function childrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): cutime and cstime are fields 16 and 17.
  return (Number(fields[13]) + Number(fields[14])) * 10;
}

/** One whole command, which must exit with `status`: its wall time, its CPU time and what it wrote on stderr. */
function timed(argv: string[], what: string, status = 0): { ms: number; cpu: number; stderr: string } {
  const c = childrenCpuMs();
  const t = performance.now();
  const r = spawnSync(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', maxBuffer: 1 << 26 });
  const ms = performance.now() - t;
  if (r.status !== status) throw new Error(`${what} failed (${r.status ?? r.signal}): ${r.stderr}`);
  return { ms, cpu: childrenCpuMs() - c, stderr: r.stderr };
}

const cr = (args: string[], status = 0) => timed([process.execPath, CR, ...args], `cr ${args[0]}`, status);

function frozenMs(stderr: string): number {
  const m = /frozen ([0-9.]+) ms/.exec(stderr);
  if (!m) throw new Error(`dump --timings printed no frozen time: ${stderr}`);
  return Number(m[1]);
}

/**
 * Dump pid whole RUNS times: whole times and downtimes. Each dump writes a new file, the last
 * one's image removed before it (not timed), as each `cp` of the 300 MiB row writes a new file
 * and its copy is removed untimed: replacing a file (`--force` over it) also pays the old one's
 * unlink, which waits for whatever of it the kernel is writing back (a 300 MiB image dumped just
 * before: 265 against 432 ms whole, medians of 9 alternated, docs/performance.md).
 */
function dumps(pid: number, image: string): { whole: number[]; cpu: number[]; frozen: number[] } {
  const whole: number[] = [];
  const cpu: number[] = [];
  const frozen: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    rmSync(image, { force: true });
    const r = cr(['dump', '--pid', String(pid), '-o', image, '--timings', '--quiet']);
    whole.push(r.ms);
    cpu.push(r.cpu);
    frozen.push(frozenMs(r.stderr));
  }
  return { whole, cpu, frozen };
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
function restarts(image: string, dir: string): { whole: number[]; cpu: number[] } {
  const pidfile = join(dir, 'restored.pid');
  const whole: number[] = [];
  const cpu: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    rmSync(pidfile, { force: true });
    const r = cr(['restore', image, '--detach', '--pidfile', pidfile, '--quiet']);
    const pid = Number(readFileSync(pidfile, 'utf8'));
    orphans.add(pid);
    whole.push(r.ms);
    cpu.push(r.cpu);
    killOrphan(pid);
  }
  return { whole, cpu };
}

const writeTable = (path: string, t: FdTable): void =>
  writeFileSync(path, tableJson({ descs: t.descs, pipes: t.pipes, processes: [{ pid: 100, fds: t.fds, rlimit: t.rlimit }] }));

interface Row {
  work: string;
  whole: number[];
  cpu: number[];
  frozen?: number[];
  criu: string;
  cp?: number[];
  /** show the whole time as a multiple of `node -e 0`'s (the start-up target of --help) */
  perNode?: boolean;
}

const rows: Row[] = [];
const dir = mkdtempSync(join(tmpdir(), 'cr-bench-process-'));
const started = new Date().toISOString();
const load = loadavg()[0]!.toFixed(1);
try {
  const nodeStart: number[] = [];
  const nodeCpu: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const r = timed([process.execPath, '-e', '0'], 'node -e 0');
    nodeStart.push(r.ms);
    nodeCpu.push(r.cpu);
  }

  // Start-up: help, and each command's fixed cost (its modules loaded, its parser refusing an
  // unknown flag with exit 2), the targets 1.2x `node -e 0` and 25 ms above it.
  for (const [work, args, status] of [
    ['start-up: --help', ['--help'], 0],
    ["dump's fixed cost (dump --bogus)", ['dump', '--bogus'], 2],
    ["restore's fixed cost (restore --bogus)", ['restore', '--bogus'], 2],
  ] as const) {
    const whole: number[] = [];
    const cpu: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const r = cr([...args], status);
      whole.push(r.ms);
      cpu.push(r.cpu);
    }
    rows.push({ work, whole, cpu, criu: '-', perNode: args[0] === '--help' });
  }

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
    rows.push({ work: 'whole dump, python, 8 fds (seed)', ...d, criu: '16' });
    rows.push({ work: 'whole restart, same', ...restarts(image, at), criu: '12' });
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
    rows.push({ work: 'whole dump, 1,031 fds / 393 pipes / 580 KB', ...d, criu: '45' });
    rows.push({ work: 'whole restart, same', ...restarts(image, dir), criu: '36' });
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
    rows.push({ work: 'dump of a 300 MiB process', ...d, criu: '160', cp });
    rows.push({ work: 'restart of it', ...restarts(image, at), criu: '170', cp });
    rmSync(image);
  }

  // plan of a 100,000-fd table, JSON in (parse, validate, plan, verify, print).
  {
    const table = join(dir, 'plan100k.json');
    writeTable(table, pipeTable(100_000));
    const whole: number[] = [];
    const cpu: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const r = cr(['plan', table]);
      whole.push(r.ms);
      cpu.push(r.cpu);
    }
    rows.push({ work: 'plan of a 100,000-fd table (JSON in)', whole, cpu, criu: '-' });
  }

  const node = median(nodeStart);
  const nodeCpuMs = median(nodeCpu);
  const ms = (x: number): string => x.toFixed(0);
  console.log(`cr, whole CLI runs, median of ${RUNS} (ms); ${started}, load average ${load} at the start; node -e 0: ${ms(node)} ms, CPU ${ms(nodeCpuMs)} ms`);
  console.table(
    rows.map((r) => ({
      work: r.work,
      'cr whole': ms(median(r.whole)),
      'cr own work': ms(median(r.whole) - node),
      'cr CPU': ms(median(r.cpu)),
      'own CPU': ms(median(r.cpu) - nodeCpuMs),
      'downtime (frozen)': r.frozen ? median(r.frozen).toFixed(1) : '',
      'CRIU 4.2 whole': r.criu,
      'cp of image': r.cp ? ms(median(r.cp)) : '',
      'cr / cp': r.cp ? `${(median(r.whole) / median(r.cp)).toFixed(1)}x` : '',
      'cr / node -e 0': r.perNode ? `${(median(r.whole) / node).toFixed(2)}x wall, ${(median(r.cpu) / nodeCpuMs).toFixed(2)}x CPU` : '',
    })),
  );
} finally {
  for (const pid of children) killAndReap(pid);
  for (const pid of orphans) killGone(pid);
  rmSync(dir, { recursive: true, force: true });
}
