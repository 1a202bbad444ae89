// The bad-image run: every mutant through cr's reading and planning code in this process, and a
// sample of them through the real CLI (show, plan, restore -- CMD, restore --into PID), with
// counts per family. Known gaps (reported, not yet fixed by their owners) are counted apart.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { prlimit, RLIMIT_NOFILE } from '../../bridge/rlimit.js';
import { kill, SIGKILL } from '../../bridge/signal.js';
import { Rng } from '../fuzz/random.js';
import { listFds } from '../proc/fds.js';
import { columnArgs, FD_IMAGE_COLUMNS, processesWith, refusalProblem, runCr, type Column } from './cli.js';
import { judge, type NamedTarget } from './judge.js';
import type { Mutant, MutantOptions, Seed } from './mutant.js';
import { mutants } from './mutants.js';
import { LiveTarget } from './live-target.js';

export interface FuzzImageOptions extends MutantOptions {
  seeds: Seed[];
  /** how many refusable mutants also go through the real CLI, spread over the families */
  cliSample: number;
  columns: readonly Column[];
  /** also run the known gaps (counted apart; their misses are reported, not failures) */
  knownGaps: boolean;
  /** bound on one CLI run */
  timeoutMs: number;
  /** CLI runs at once (restore --into runs one at a time, on one target) */
  concurrency: number;
  /** marks in the command line of processes a restart of a seed would start: none may be left */
  marks?: string[];
  onProgress?: (line: string) => void;
}

export interface FamilyCount {
  tried: number;
  rejected: number;
  /** decoded and planned: allowed only for 'any' mutants */
  accepted: number;
  failed: number;
}

export interface Failure {
  mutant: string;
  where: string;
  why: string;
}

export interface FuzzImageReport {
  families: Record<string, FamilyCount>;
  tried: number;
  /** mutants that every reader must refuse, and how many were */
  mustReject: number;
  rejected: number;
  /** 'any' mutants that were valid images after all */
  acceptedValid: number;
  failures: Failure[];
  gaps: { tried: number; caught: number; missed: Array<{ mutant: string; why: string }> };
  cli: { mutants: number; runs: Record<Column, number>; refused: Record<Column, number>; failures: Failure[] };
}

const MAX_KEPT_FAILURES = 50;

/** Targets the in-process check plans for: what `plan`, `restore -- CMD` and `restore --into` use. */
function targets(into: LiveTarget | undefined): NamedTarget[] {
  const own = prlimit(process.pid, RLIMIT_NOFILE);
  const list: NamedTarget[] = [
    { name: 'plan', target: (t) => ({ fds: [0, 1, 2], rlimit: { ...t.rlimit }, mode: 'fresh' }) },
    { name: 'restore', target: () => ({ fds: [], rlimit: { soft: own.soft, hard: own.hard }, mode: 'fresh' }) },
  ];
  if (into) {
    const fds = listFds(into.pid);
    const limit = prlimit(into.pid, RLIMIT_NOFILE);
    list.push({ name: 'into', target: () => ({ fds, rlimit: { soft: limit.soft, hard: limit.hard }, mode: 'into' }) });
  }
  return list;
}

const zero = (): Record<Column, number> => ({ show: 0, plan: 0, restore: 0, into: 0, restart: 0 });

/** Up to `per` mutants of each family, chosen uniformly (reservoir sampling). */
class Sampler {
  private readonly kept = new Map<string, { seen: number; list: Mutant[] }>();
  constructor(private readonly per: number, private readonly rng: Rng) {}
  offer(m: Mutant): void {
    let k = this.kept.get(m.family);
    if (!k) this.kept.set(m.family, (k = { seen: 0, list: [] }));
    k.seen++;
    if (k.list.length < this.per) k.list.push(m);
    else {
      const j = this.rng.below(k.seen);
      if (j < this.per) k.list[j] = m;
    }
  }
  /** Round-robin over the families, up to n mutants. */
  take(n: number): Mutant[] {
    const lists = [...this.kept.values()].map((k) => k.list);
    const out: Mutant[] = [];
    for (let i = 0; out.length < n && lists.some((l) => i < l.length); i++) {
      for (const l of lists) if (i < l.length && out.length < n) out.push(l[i]!);
    }
    return out;
  }
}

export async function fuzzImages(opts: FuzzImageOptions): Promise<FuzzImageReport> {
  const report: FuzzImageReport = {
    families: {},
    tried: 0,
    mustReject: 0,
    rejected: 0,
    acceptedValid: 0,
    failures: [],
    gaps: { tried: 0, caught: 0, missed: [] },
    cli: { mutants: 0, runs: zero(), refused: zero(), failures: [] },
  };
  const dir = mkdtempSync(join(tmpdir(), 'cr-imagefuzz-'));
  const live = opts.columns.includes('into') ? LiveTarget.start() : undefined;
  const problems: string[] = [];
  try {
    const sampler = new Sampler(Math.max(1, Math.ceil(opts.cliSample / 8)), new Rng(opts.seed ^ 0x5eed));
    const planTargets = targets(live);
    const scratch = join(dir, 'mutant');
    const fail = (list: Failure[], f: Failure): void => void (list.length < MAX_KEPT_FAILURES && list.push(f));
    for (const m of mutants(opts.seeds, opts)) {
      if (m.knownGap && !opts.knownGaps) continue;
      const count = (report.families[m.family] ??= { tried: 0, rejected: 0, accepted: 0, failed: 0 });
      let verdict = judge(m.bytes(), scratch, planTargets);
      // A mutant `show` may print (its columns leave show out) is refused when no plan is made for it.
      if (m.columns && !m.columns.includes('show') && verdict.kind === 'accepted' && verdict.planned.length === 0) {
        verdict = { kind: 'rejected', message: 'every plan refused' };
      }
      count.tried++;
      report.tried++;
      if (verdict.kind === 'rejected') count.rejected++;
      else if (verdict.kind === 'accepted') count.accepted++;
      if (m.knownGap) {
        report.gaps.tried++;
        if (verdict.kind === 'rejected') report.gaps.caught++;
        else if (report.gaps.missed.length < MAX_KEPT_FAILURES) report.gaps.missed.push({ mutant: `${m.family}: ${m.name}`, why: verdict.kind === 'crashed' ? verdict.why : 'accepted' });
      } else if (verdict.kind === 'crashed') {
        count.failed++;
        fail(report.failures, { mutant: `${m.family}: ${m.name}`, where: 'in process', why: verdict.why });
      } else if (m.expect === 'reject') {
        report.mustReject++;
        if (verdict.kind === 'rejected') report.rejected++;
        else {
          count.failed++;
          fail(report.failures, { mutant: `${m.family}: ${m.name}`, where: 'in process', why: `accepted (planned for ${verdict.planned.join(', ') || 'nothing'})` });
        }
      } else if (verdict.kind === 'accepted') {
        report.acceptedValid++;
      }
      if (m.expect === 'reject' && !m.big && (!m.knownGap || opts.knownGaps)) sampler.offer(m);
      if (report.tried % 2000 === 0) opts.onProgress?.(`  ${report.tried} mutants, ${report.failures.length} failures`);
    }

    const chosen = sampler.take(opts.cliSample);
    report.cli.mutants = chosen.length;
    const nonce = `cr-imagefuzz-${randomBytes(6).toString('hex')}`;
    const files = chosen.map((m, i) => {
      const file = join(dir, `m${i}.img`);
      writeFileSync(file, m.bytes(), { mode: 0o600 });
      return file;
    });
    const one = async (i: number, column: Column): Promise<void> => {
      const m = chosen[i]!;
      const run = await runCr(columnArgs(column, files[i]!, { intoPid: live?.pid, nonce }), opts.timeoutMs);
      report.cli.runs[column]++;
      let why = refusalProblem(column, run);
      if (!why && column === 'into') why = live!.check();
      if (why) {
        if (m.knownGap) report.gaps.missed.push({ mutant: `${m.family}: ${m.name}`, why: `${column}: ${why}` });
        else fail(report.cli.failures, { mutant: `${m.family}: ${m.name}`, where: column, why });
      } else report.cli.refused[column]++;
    };
    const parallel = opts.columns.filter((c) => c !== 'into');
    const wanted = (i: number, c: Column): boolean => (chosen[i]!.columns ?? FD_IMAGE_COLUMNS).includes(c);
    const jobs = chosen.flatMap((_, i) => parallel.filter((c) => wanted(i, c)).map((c) => [i, c] as const));
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < jobs.length) {
        const [i, c] = jobs[next++]!;
        await one(i, c);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, opts.concurrency) }, worker));
    if (live) for (let i = 0; i < chosen.length; i++) if (wanted(i, 'into')) await one(i, 'into');
    opts.onProgress?.(`  CLI: ${chosen.length} mutants, ${Object.values(report.cli.runs).reduce((a, b) => a + b, 0)} runs`);
    if (opts.columns.includes('restore')) {
      const left = processesWith(nonce);
      if (left.length > 0) problems.push(`restore -- CMD left processes behind: ${left.join(', ')}`);
    }
    for (const mark of opts.marks ?? []) {
      const left = processesWith(mark);
      for (const pid of left) kill(pid, SIGKILL);
      if (left.length > 0) problems.push(`a restart left processes behind: ${left.join(', ')} (killed)`);
    }
  } finally {
    if (live) {
      const held = live.stop();
      if (held) problems.push(held);
    }
    rmSync(dir, { recursive: true, force: true });
  }
  for (const why of problems) report.cli.failures.push({ mutant: '(the whole run)', where: 'after', why });
  return report;
}

/** The report as lines of text, for the command and the docs. */
export function summarize(r: FuzzImageReport): string[] {
  const lines = [`${r.tried} mutants: ${r.mustReject} must be refused, ${r.rejected} were; ${r.acceptedValid} of the rest were valid images after all; ${r.failures.length} failures`];
  const width = Math.max(...Object.keys(r.families).map((f) => f.length));
  for (const [family, c] of Object.entries(r.families)) {
    lines.push(`  ${family.padEnd(width)}  tried ${String(c.tried).padStart(6)}  refused ${String(c.rejected).padStart(6)}  valid ${String(c.accepted).padStart(5)}  failed ${c.failed}`);
  }
  const cols = (Object.keys(r.cli.runs) as Column[]).filter((c) => r.cli.runs[c] > 0);
  lines.push(`CLI: ${r.cli.mutants} mutants; ${cols.map((c) => `${c} ${r.cli.refused[c]}/${r.cli.runs[c]} refused properly`).join(', ') || 'no runs'}; ${r.cli.failures.length} failures`);
  if (r.gaps.tried > 0) lines.push(`known gaps: ${r.gaps.tried} tried, ${r.gaps.caught} caught, ${r.gaps.tried - r.gaps.caught} missed`);
  for (const f of [...r.failures, ...r.cli.failures]) lines.push(`FAIL [${f.where}] ${f.mutant}: ${f.why}`);
  for (const g of r.gaps.missed) lines.push(`GAP ${g.mutant}: ${g.why}`);
  return lines;
}
