// cr at the limits of this machine: a process with 19,000 fds open (hard RLIMIT_NOFILE 20,000),
// one with 200 pipes each full at 1 MiB (pipe-max-size), one with an fd at 19,999. For each, the
// whole `node cr.mjs dump`, `plan`, `restore -- CMD` and `restore --into PID` under
// /usr/bin/time: wall time and peak RSS, median of RUNS, and how long a dump holds the target
// stopped (its --timings, freeze to thaw). The target then reads its pipes back (a dump consumed
// nothing), and a restored process is dumped and compared with the image (cr diff).
// Run: npm run build && node build/bench/limits.bench.js [RUNS]
import { onlyProcess } from '../src/model/fdtable.js';
import { spawnSync } from 'node:child_process';
import { kill, SIGKILL } from '../bridge/signal.js';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readImage } from '../src/image/format.js';
import { fdSnapshot, runState } from '../src/imagefuzz/live-target.js';
import { ensureReaped, waitInSyscall } from '../test/helpers/processes.js';
import { readBack, startHolder, type HolderSpec } from '../test/fixtures/hardening-holder.js';

const CR = fileURLToPath(new URL('../../cr.mjs', import.meta.url));
const RUNS = Number(process.argv[2] ?? 5);
const MiB = 1 << 20;
const CLOCK_NANOSLEEP = 230; // x86_64

export const LIMIT_SCENARIOS: Array<{ name: string; spec: HolderSpec; fds: number }> = [
  // stdout, one pipe, and dups up to 19,000 fds in all
  { name: '19,000 fds', spec: { pipes: 1, capacity: 65536, bytes: 100, dups: 18_997, high: 0 }, fds: 19_000 },
  { name: '200 pipes full at 1 MiB', spec: { pipes: 200, capacity: MiB, bytes: MiB, dups: 0, high: 0 }, fds: 401 },
  { name: 'an fd at 19,999', spec: { pipes: 1, capacity: 65536, bytes: 100, dups: 0, high: 19_999 }, fds: 4 },
];

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/** One CLI run under /usr/bin/time: wall seconds and peak RSS in KiB. */
export function timed(args: string[]): { code: number | null; wallS: number; maxRssKb: number; stdout: string; stderr: string } {
  const r = spawnSync('/usr/bin/time', ['-f', 'cr-time %e %M', process.execPath, CR, ...args], { encoding: 'utf8', maxBuffer: 64 * MiB });
  const m = /cr-time ([\d.]+) (\d+)\s*$/.exec(r.stderr);
  if (!m) throw new Error(`no /usr/bin/time figures for cr ${args.join(' ')}: ${r.stderr.slice(-300)}`);
  return { code: r.status, wallS: Number(m[1]), maxRssKb: Number(m[2]), stdout: r.stdout, stderr: r.stderr.slice(0, m.index) };
}

/** From `dump --timings`: the milliseconds from the first seize to the last detach. */
function heldMs(stderr: string): number {
  const line = /^timings: (.*), total/m.exec(stderr)?.[1];
  if (!line) throw new Error(`no timings line in ${JSON.stringify(stderr)}`);
  const phases = new Map(line.split(', ').map((p) => p.split(' ') as [string, string]));
  return ['freeze', 'proc', 'kcmp', 'pipes', 'thaw'].reduce((n, k) => n + Number(phases.get(k) ?? 0), 0);
}

/**
 * RUNS restores of the image into a new process (`-- sleep`, detached, then killed) and into a
 * live holder each; the first new process is dumped and diffed against the image.
 */
function restoreRuns(name: string, image: string, dir: string): Record<'fresh' | 'into', { wall: number[]; rss: number[] }> {
  const out = { fresh: { wall: [] as number[], rss: [] as number[] }, into: { wall: [] as number[], rss: [] as number[] } };
  for (let i = 0; i < RUNS; i++) {
    const f = timed(['restore', image, '--detach', '--', '/bin/sleep', '1000']);
    if (f.code !== 0) throw new Error(`${name}: restore -- CMD failed: ${f.stderr}`);
    const pid = Number(f.stdout.trim());
    try {
      if (i === 0) {
        // sleep opens locale files of its own on the way to its sleep: dump it once it sleeps.
        waitInSyscall(pid, CLOCK_NANOSLEEP);
        const again = join(dir, 'restored');
        const d = timed(['dump', '--fds-only', '--pid', String(pid), '-o', again, '--force']);
        if (d.code !== 0) throw new Error(`${name}: dump of the restored process failed: ${d.stderr}`);
        const diff = timed(['diff', image, again]);
        if (diff.code !== 0) throw new Error(`${name}: the restored process differs from the image:\n${diff.stdout}`);
      }
    } finally {
      kill(pid, SIGKILL); // not our child: cr started it and has exited
    }
    out.fresh.wall.push(f.wallS);
    out.fresh.rss.push(f.maxRssKb);
    const h = startHolder({ pipes: 1, capacity: 65536, bytes: 10, dups: 0, high: 0 }, dir);
    try {
      const r = timed(['restore', image, '--into', String(h.pid)]);
      if (r.code !== 0) throw new Error(`${name}: restore --into failed: ${r.stderr}`);
      out.into.wall.push(r.wallS);
      out.into.rss.push(r.maxRssKb);
    } finally {
      ensureReaped(h.pid);
    }
  }
  return out;
}

function main(): void {
  const dir = mkdtempSync(join(tmpdir(), 'cr-limits-bench-'));
  console.log(`limits: median of ${RUNS} runs of each whole command (node start-up included), peak RSS from /usr/bin/time`);
  try {
    for (const s of LIMIT_SCENARIOS) {
      const h = startHolder(s.spec, dir);
      try {
        const before = fdSnapshot(h.pid);
        const image = join(dir, 'image');
        const dump = { wall: [] as number[], rss: [] as number[], held: [] as number[] };
        const plan = { wall: [] as number[], rss: [] as number[] };
        for (let i = 0; i < RUNS; i++) {
          const d = timed(['dump', '--fds-only', '--pid', String(h.pid), '-o', image, '--force', '--timings']);
          if (d.code !== 0) throw new Error(`${s.name}: dump failed: ${d.stderr}`);
          dump.wall.push(d.wallS);
          dump.rss.push(d.maxRssKb);
          dump.held.push(heldMs(d.stderr));
          const p = timed(['plan', image, '--json']);
          if (p.code !== 0) throw new Error(`${s.name}: plan failed: ${p.stderr}`);
          plan.wall.push(p.wallS);
          plan.rss.push(p.maxRssKb);
        }
        const table = onlyProcess(readImage(image).table);
        if (table.fds.length !== s.fds) throw new Error(`${s.name}: the image has ${table.fds.length} fds, not ${s.fds}`);
        const restore = restoreRuns(s.name, image, dir);
        const problems = [runState(h.pid), fdSnapshot(h.pid) === before ? '' : 'fd table changed', readBack(h)].filter(Boolean);
        if (problems.length) throw new Error(`${s.name}: ${problems.join('; ')}`);
        const mb = (kb: number): string => `${(kb / 1024).toFixed(0)} MiB`;
        console.log(
          `${s.name.padEnd(24)} image ${(statSync(image).size / MiB).toFixed(1)} MiB; ` +
            `dump ${median(dump.wall).toFixed(2)} s (target held ${median(dump.held).toFixed(0)} ms), peak ${mb(median(dump.rss))}; ` +
            `plan ${median(plan.wall).toFixed(2)} s, peak ${mb(median(plan.rss))}; ` +
            `restore -- CMD ${median(restore.fresh.wall).toFixed(2)} s, peak ${mb(median(restore.fresh.rss))}; ` +
            `restore --into ${median(restore.into.wall).toFixed(2)} s, peak ${mb(median(restore.into.rss))}; target intact, restored dump = image`,
        );
      } finally {
        ensureReaped(h.pid);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main();
