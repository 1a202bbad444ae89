// A cr killed (SIGKILL) at a random moment of its work on a process, and what became of the
// process: for test/faults.test.ts (a few trials) and bench/abandon.bench.ts (hundreds), so both
// count the same way. The target checks itself (the field's way): a C program that keeps a
// running tally in stack variables, blocks SIGUSR2 and SIGWINCH, and counts SIGCONTs it is
// handed; on SIGUSR1 it prints PASS or FAIL (the mask it has, the tally, no stray SIGCONT) to
// its stdout, a file. A process that ran any of cr's code or registers dies or fails that check.
import { spawn as spawnChild } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SyscallError } from '../../bridge/errno.js';
import { kill, SIGKILL, SIGUSR1 } from '../../bridge/signal.js';
import { spawn } from '../../bridge/spawn.js';
import type { Rng } from '../../src/fuzz/random.js';
import type { FdTable } from '../../src/model/fdtable.js';
import { buildC, ensureReaped } from './processes.js';

const CR = fileURLToPath(new URL('../../../cr.mjs', import.meta.url));

export const SELF_CHECK_C = `#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static volatile sig_atomic_t asked = 0, conts = 0;
static void on_usr1(int s) { (void)s; asked = 1; }
static void on_cont(int s) { (void)s; conts++; }
int main(void) {
  sigset_t mine; sigemptyset(&mine); sigaddset(&mine, SIGUSR2); sigaddset(&mine, SIGWINCH);
  sigprocmask(SIG_BLOCK, &mine, NULL);
  struct sigaction sa; memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_usr1; sigaction(SIGUSR1, &sa, NULL);
  sa.sa_handler = on_cont; sa.sa_flags = SA_RESTART; sigaction(SIGCONT, &sa, NULL);
  volatile unsigned long a = 0x1111, b = 0x2222, ticks = 0;
  printf("READY\\n"); fflush(stdout);
  for (;;) {
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
    ticks++; a += 1; b += 2;
    int ok = a == 0x1111 + ticks && b == 0x2222 + 2 * ticks;
    if (!ok) { printf("FAIL tally\\n"); fflush(stdout); return 1; }
    if (asked) {
      asked = 0;
      sigset_t now; sigprocmask(SIG_BLOCK, NULL, &now);
      int n = 0;
      for (int s = 1; s < 65; s++) n += sigismember(&now, s) == 1;
      ok = n == 2 && sigismember(&now, SIGUSR2) && sigismember(&now, SIGWINCH);
      printf("%s mask %d conts %d\\n", ok && conts == 0 ? "PASS" : "FAIL", n, (int)conts);
      fflush(stdout);
    }
  }
}`;

/** The --into image: 16 pipes with bytes at fds 100-131, 1,500 dups at 1000-2499: a replay long enough to be hit. */
export const INTO_TABLE: FdTable = (() => {
  const t: FdTable = { fds: [], descs: [], pipes: [], rlimit: { soft: 20_000, hard: 20_000 } };
  for (let i = 0; i < 16; i++) {
    t.pipes.push({ id: i, capacity: 65536, data: Buffer.alloc(32_768, 65 + i) });
    t.descs.push({ id: 2 * i, kind: 'pipe', flags: 0, pipe: i }, { id: 2 * i + 1, kind: 'pipe', flags: 1, pipe: i });
    t.fds.push({ fd: 100 + 2 * i, desc: 2 * i, cloexec: false }, { fd: 101 + 2 * i, desc: 2 * i + 1, cloexec: false });
  }
  for (let fd = 1000; fd < 2500; fd++) t.fds.push({ fd, desc: 0, cloexec: false });
  return t;
})();

export interface CrEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `node cr.mjs ...args` as a child (node's own: cr is never traced by it); `end` settles when it has exited. */
export function startCr(args: string[], env: NodeJS.ProcessEnv): { pid: number; end: Promise<CrEnd>; done: () => boolean } {
  const child = spawnChild(process.execPath, [CR, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stdout = '';
  let stderr = '';
  let finished = false;
  child.stdout.on('data', (c: Buffer) => void (stdout += c.toString('utf8')));
  child.stderr.on('data', (c: Buffer) => void (stderr += c.toString('utf8')));
  const end = new Promise<CrEnd>((resolve, reject) => {
    const bound = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(bound);
      finished = true;
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { pid: child.pid!, end, done: () => finished };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function status(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/status`, 'latin1');
  } catch {
    return null;
  }
}
const field = (text: string, name: string): string => new RegExp(`^${name}:\\s*(\\S+)`, 'm').exec(text)?.[1] ?? '?';
const tracerOf = (pid: number): number => Number(field(status(pid) ?? '', 'TracerPid'));
const fdCount = (pid: number): number => readdirSync(`/proc/${pid}/fd`).length;
const mapCount = (pid: number): number => readFileSync(`/proc/${pid}/maps`, 'latin1').split('\n').filter(Boolean).length;

function signalQuietly(pid: number, sig: number): void {
  try {
    kill(pid, sig);
  } catch (err) {
    if (!(err instanceof SyscallError && err.code === 'ESRCH')) throw err;
  }
}

/** A self-checking target, its stdout in `out`. */
export class Target {
  private constructor(
    readonly pid: number,
    readonly out: string,
  ) {}

  static async start(dir: string, name: string): Promise<Target> {
    const out = join(dir, `${name}.out`);
    const fd = openSync(out, 'w', 0o600);
    let pid: number;
    try {
      pid = spawn([buildC(SELF_CHECK_C)], { fds: [[fd, 1]] });
    } finally {
      closeSync(fd);
    }
    const t = new Target(pid, out);
    const deadline = Date.now() + 5000;
    while (!t.output().includes('READY')) {
      if (Date.now() > deadline) throw new Error(`target ${pid} never said READY`);
      await sleep(1);
    }
    return t;
  }

  output(): string {
    return existsSync(this.out) ? readFileSync(this.out, 'latin1') : '';
  }

  /** Ask it to check itself: 'PASS ...', 'FAIL ...', or why there is no answer. */
  async check(): Promise<string> {
    const before = this.output().split('\n').filter((l) => /^(PASS|FAIL)/.test(l)).length;
    signalQuietly(this.pid, SIGUSR1);
    const deadline = Date.now() + 3000;
    for (;;) {
      const lines = this.output().split('\n').filter((l) => /^(PASS|FAIL)/.test(l));
      if (lines.length > before) return lines[lines.length - 1]!;
      if (/FAIL/.test(this.output())) return this.output().trim().split('\n').pop()!;
      if (!isAlive(this.pid)) return 'dead';
      if (Date.now() > deadline) return `no answer (state ${field(status(this.pid) ?? '', 'State')})`;
      await sleep(2);
    }
  }

  end(): void {
    ensureReaped(this.pid);
    rmSync(this.out, { force: true });
  }
}

function isAlive(pid: number): boolean {
  const s = status(pid);
  if (s === null) return false;
  const state = field(s, 'State');
  return state !== 'Z' && state !== 'X';
}

/**
 * The state a process settles in once its tracer is gone: 'T' (stopped), else the state it runs
 * in, seen twice in its own sleep (nanosleep, where the self-checking target waits), or after 2 s.
 */
async function settledState(pid: number): Promise<string> {
  const deadline = Date.now() + 2000;
  let asleep = 0;
  while (Date.now() < deadline) {
    const s = status(pid);
    if (s === null) return 'gone';
    const state = field(s, 'State');
    if (state === 'T' || state === 'Z' || state === 'X') return state;
    let own = false;
    try {
      own = tracerOf(pid) === 0 && ['35', '230'].includes(readFileSync(`/proc/${pid}/syscall`, 'latin1').split(' ')[0]!);
    } catch {
      // gone
    }
    asleep = own ? asleep + 1 : 0;
    if (asleep >= 2) return state;
    await sleep(5);
  }
  return field(status(pid) ?? '', 'State');
}

/** What a killed cr left: the outcomes bench/abandon.bench.ts counts. */
export type Outcome =
  /** the target died */
  | 'killed'
  /** left running, but with a changed mask, cr's mappings, or a failed self-check */
  | 'changed'
  /** left stopped (or half-made, for a restart) and `cr recover` did not put it back */
  | 'unrecovered'
  /** left stopped, and `cr recover` put it back: running, checked PASS */
  | 'recovered'
  /** cr had not touched it yet (or was done with it): running, PASS */
  | 'untouched'
  /** cr finished first */
  | 'complete';

export interface TrialResult {
  outcome: Outcome;
  /** recover's line, what the self-check said, how cr ended */
  detail: string;
}

export type Kind = 'dump' | 'into' | 'restart';

/** When to kill: measured on one run of the command that is not killed. */
export interface Timing {
  totalMs: number;
  /** how long after the start cr was first seen tracing the target, and for how long */
  tracedFromMs: number;
  tracedMs: number;
}

/** A trial's command line. */
function argsFor(kind: Kind, ctx: TrialContext, pid: number, i: number): string[] {
  switch (kind) {
    case 'dump':
      return ['dump', '--pid', String(pid), '-o', join(ctx.dir, `dump-${pid}-${i}.img`), '--force'];
    case 'into':
      return ['restore', ctx.intoImage, '--into', String(pid)];
    case 'restart':
      // --detach: cr exits once the process runs (else it would wait for it, as a supervisor).
      return ['restore', ctx.processImage!, '--detach'];
    default: {
      const never: never = kind;
      throw new Error(`unknown kind ${String(never)}`);
    }
  }
}

export interface TrialContext {
  dir: string;
  /** env for every cr run: XDG_RUNTIME_DIR private to this run, so its journals are its own */
  env: NodeJS.ProcessEnv;
  intoImage: string;
  /** a whole-process image of a self-checking target, for restart trials */
  processImage?: string;
  /** the size of its stdout file when it was dumped: the offset its restarted copies write at */
  processImageOutBytes?: number;
}

/** Run `kind` once, unkilled, watching when cr traces the target: the moments to aim at. */
export async function calibrate(kind: Kind, ctx: TrialContext): Promise<Timing> {
  const target = kind === 'restart' ? null : await Target.start(ctx.dir, `calibrate-${kind}`);
  try {
    const t0 = performance.now();
    const cr = startCr(argsFor(kind, ctx, target?.pid ?? 0, -1), ctx.env);
    let first = 0;
    let last = 0;
    while (!cr.done()) {
      if (target && tracerOf(target.pid) !== 0) {
        last = performance.now();
        if (!first) first = last;
      }
      await tick();
    }
    const end = await cr.end;
    if (end.code !== 0) throw new Error(`calibration ${kind}: cr ended ${end.code ?? end.signal}: ${end.stderr}`);
    const totalMs = performance.now() - t0;
    if (kind === 'restart') killRestarted(end.stdout + end.stderr);
    return first ? { totalMs, tracedFromMs: first - t0, tracedMs: last - first } : { totalMs, tracedFromMs: 0, tracedMs: totalMs };
  } finally {
    target?.end();
  }
}

/** The pid a restart printed, killed (and the check it passes first is not wanted here). */
function killRestarted(said: string): void {
  const pid = Number(/restarted as pid (\d+)/.exec(said)?.[1] ?? 0);
  if (pid > 0) signalQuietly(pid, SIGKILL);
}

async function recoverTarget(t: Target, ctx: TrialContext): Promise<TrialResult> {
  const r = startCr(['recover', String(t.pid)], ctx.env);
  const end = await r.end;
  const said = (end.stdout + end.stderr).trim();
  if (end.code !== 0) return { outcome: 'unrecovered', detail: `recover exit ${end.code}: ${said}` };
  const s = status(t.pid) ?? '';
  const state = field(s, 'State');
  if (state === 'T' || state === 't' || tracerOf(t.pid) !== 0) return { outcome: 'unrecovered', detail: `after recover: state ${state}: ${said}` };
  const check = await t.check();
  return { outcome: check.startsWith('PASS') ? 'recovered' : 'unrecovered', detail: `${said}; ${check}` };
}

/**
 * One trial: the command started, killed at a random moment (`aimAt`, else one at random: 0
 * anywhere in the command, 1 just after cr's area appears in the target, 2 or 3 while cr traces
 * it), and the target judged (recovered first if stopped).
 */
export async function trial(kind: Kind, ctx: TrialContext, timing: Timing, rng: Rng, i: number, aimAt?: number): Promise<TrialResult> {
  if (kind === 'restart') return restartTrial(ctx, timing, rng, i);
  const t = await Target.start(ctx.dir, `${kind}-${i}`);
  try {
    const maps = mapCount(t.pid);
    const fds = fdCount(t.pid);
    const mask = field(status(t.pid)!, 'SigBlk');
    const cr = startCr(argsFor(kind, ctx, t.pid, i), ctx.env);
    const t0 = performance.now();
    const aim = aimAt ?? rng.below(4);
    if (aim === 0) {
      while (!cr.done() && performance.now() < t0 + rng.below(Math.ceil(timing.totalMs * 1.1))) await tick();
    } else if (aim === 1) {
      // While cr's code is mapped in the target (its injector's area): the window that matters.
      while (!cr.done() && mapCount(t.pid) <= maps) await tick();
      const until = performance.now() + rng.below(kind === 'dump' ? 3 : 40);
      while (!cr.done() && performance.now() < until) await tick();
    } else {
      while (!cr.done() && tracerOf(t.pid) === 0) await tick();
      const until = performance.now() + rng.below(Math.ceil(timing.tracedMs) + 1);
      while (!cr.done() && performance.now() < until) await tick();
    }
    if (!cr.done()) signalQuietly(cr.pid, SIGKILL);
    const end = await cr.end;
    const how = end.code === 0 ? 'cr finished' : `cr ${end.signal ?? `exit ${end.code}: ${end.stderr.trim()}`}`;
    // The kernel detaches a dead tracer's tracees at once; a stop it re-arms is taken at the
    // tracee's next return to user space, which on a loaded machine can take a while.
    const state = await settledState(t.pid);
    if (!isAlive(t.pid)) return { outcome: 'killed', detail: `${how}; ${t.output().trim()}` };
    if (state === 'T' || state === 't') {
      const r = await recoverTarget(t, ctx);
      if (r.outcome === 'recovered' && (mapCount(t.pid) !== maps || field(status(t.pid)!, 'SigBlk') !== mask)) {
        return { outcome: 'unrecovered', detail: `${how}; maps ${maps} -> ${mapCount(t.pid)}, mask ${mask} -> ${field(status(t.pid)!, 'SigBlk')}; ${r.detail}` };
      }
      return { outcome: r.outcome, detail: `${how}; ${r.detail}` };
    }
    const check = await t.check();
    const changed = !check.startsWith('PASS') || mapCount(t.pid) !== maps || field(status(t.pid)!, 'SigBlk') !== mask || tracerOf(t.pid) !== 0;
    if (changed) return { outcome: 'changed', detail: `${how}; ${check}; maps ${maps} -> ${mapCount(t.pid)}, mask ${mask} -> ${field(status(t.pid)!, 'SigBlk')}` };
    // cr killed between its journal and its stop: the process ran on untouched, and recover
    // removes the journal instead of putting back registers the process has left behind.
    const journal = join(ctx.env.XDG_RUNTIME_DIR ?? '', 'cr', `${t.pid}.json`);
    if (existsSync(journal)) {
      const r = await startCr(['recover', String(t.pid)], ctx.env).end;
      const said = (r.stdout + r.stderr).trim();
      if (!said.startsWith(`nothing to recover: pid ${t.pid} is running`) || existsSync(journal)) return { outcome: 'changed', detail: `${how}; a journal was left, and recover: ${said}` };
      const after = await t.check();
      if (!after.startsWith('PASS')) return { outcome: 'changed', detail: `${how}; after recover: ${after}` };
    }
    if (end.code === 0) return { outcome: 'complete', detail: how };
    // Killed with the target running as before: for --into, its fds as before or all there.
    const now = fdCount(t.pid);
    if (kind === 'into' && now !== fds && now !== fds + INTO_TABLE.fds.length) return { outcome: 'changed', detail: `${how}; ${fds} fds -> ${now}` };
    return { outcome: now === fds ? 'untouched' : 'complete', detail: how };
  } finally {
    t.end();
  }
}

/** Processes whose command line carries `mark` (a restart's process carries its image's). */
function withMark(mark: string, envMark: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${name}/cmdline`, 'latin1');
      if (cmd.includes('cr.mjs')) continue;
      if (cmd.includes(mark) || readFileSync(`/proc/${name}/environ`, 'latin1').includes(envMark)) out.push(Number(name));
    } catch {
      // gone, or not ours to read
    }
  }
  return out;
}

/**
 * A restart killed at a random moment: afterwards there is either no process of it (the husk
 * died with cr) or a whole one, running, that checks PASS.
 */
async function restartTrial(ctx: TrialContext, timing: Timing, rng: Rng, i: number): Promise<TrialResult> {
  const envMark = `CR_ABANDON_${process.pid}_${i}`;
  const program = buildC(SELF_CHECK_C);
  const cr = startCr(argsFor('restart', ctx, 0, i), { ...ctx.env, [envMark]: '1' });
  const until = performance.now() + rng.below(Math.ceil(timing.totalMs * 1.1));
  while (!cr.done() && performance.now() < until) await tick();
  if (!cr.done()) signalQuietly(cr.pid, SIGKILL);
  const end = await cr.end;
  const how = end.code === 0 ? 'cr finished' : `cr ${end.signal ?? `exit ${end.code}: ${end.stderr.trim()}`}`;
  await sleep(20);
  const printed = Number(/restarted as pid (\d+)/.exec(end.stdout + end.stderr)?.[1] ?? 0);
  const left = [...new Set([...withMark(program, envMark), ...(printed ? [printed] : [])])].filter(isAlive);
  if (left.length === 0) return { outcome: end.code === 0 ? 'killed' : 'untouched', detail: `${how}; no process left` };
  try {
    if (left.length > 1) return { outcome: 'unrecovered', detail: `${how}; ${left.length} processes left: ${left.join(', ')}` };
    const pid = left[0]!;
    const s = status(pid)!;
    const state = field(s, 'State');
    if (state === 'T' || state === 't' || tracerOf(pid) !== 0) return { outcome: 'unrecovered', detail: `${how}; pid ${pid} left in state ${state}, traced by ${tracerOf(pid)}` };
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
    if (!cmd.includes(program)) return { outcome: 'unrecovered', detail: `${how}; a half-made process ${pid} (${cmd.replace(/\0/g, ' ')}) left running` };
    // The restarted process writes to the image's stdout file: ask it to check itself there.
    // Every restarted copy writes at the offset its image recorded: cut the file back there
    // first, so the answer is what follows it.
    const out = ctx.processImage!.replace(/\.img$/, '.out');
    const at = ctx.processImageOutBytes!;
    truncateSync(out, at);
    signalQuietly(pid, SIGUSR1);
    const deadline = Date.now() + 3000;
    let line = '';
    while (Date.now() < deadline) {
      const text = readFileSync(out, 'latin1').slice(at);
      if (text.includes('\n')) {
        line = text.split('\n')[0]!;
        break;
      }
      await sleep(2);
    }
    return { outcome: line.startsWith('PASS') ? 'complete' : 'changed', detail: `${how}; pid ${pid}: ${line || 'no answer'}` };
  } finally {
    for (const pid of left) signalQuietly(pid, SIGKILL);
  }
}

/** A whole-process image of a self-checking target (killed once dumped), its stdout beside it. */
export async function processImage(ctx: TrialContext): Promise<string> {
  const t = await Target.start(ctx.dir, 'restart-source');
  try {
    const image = join(ctx.dir, 'restart-source.img');
    const cr = startCr(['dump', '--pid', String(t.pid), '-o', image], ctx.env);
    const end = await cr.end;
    if (end.code !== 0) throw new Error(`dump for restart trials: ${end.stderr}`);
    ctx.processImageOutBytes = statSync(t.out).size;
    return image;
  } finally {
    ensureReaped(t.pid); // its output file stays: the restarted processes write to it
  }
}
