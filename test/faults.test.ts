// Faults in the middle of a dump or a restore. cr is killed with SIGKILL at random moments (many
// of them while it holds the target frozen): after an fd-table dump the target must never be left
// stopped or traced, its fd table and queued pipe bytes unchanged, and an image is either absent
// or whole. A SIGKILL while cr runs code in a process (a whole dump, --into, a restart's husk)
// must never kill it or leave it running changed: it is left stopped for `cr recover`, which puts
// it back (test/helpers/abandon.ts; bench/abandon.bench.ts runs hundreds). SIGINT or SIGTERM
// during `restore --into` leaves the target untouched or completely restored, never in between;
// during `restore -- CMD` the new process ends. The target dying under cr, or never stopping,
// gives a one-line error within a time bound.
import { onlyProcess, oneProcess } from '../src/model/fdtable.js';
import { spawn as spawnChild, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SyscallError } from '../bridge/errno.js';
import { kill, SIGINT, SIGKILL, SIGTERM } from '../bridge/signal.js';
import { compareTables } from '../src/diff/compare.js';
import { dumpFdTable } from '../src/dump/fd-dump.js';
import { Rng } from '../src/fuzz/random.js';
import { readImage } from '../src/image/format.js';
import type { FdTable } from '../src/model/fdtable.js';
import { fdSnapshot, runState } from '../src/imagefuzz/live-target.js';
import { calibrate as calibrateKind, INTO_TABLE, processImage, trial, type Kind, type Outcome, type TrialContext } from './helpers/abandon.js';
import { buildC, ensureReaped, waitInSyscall, withProcess } from './helpers/processes.js';
import { holderBinary, readBack, sleepMs, startHolder, type Holder, type HolderSpec } from './fixtures/hardening-holder.js';
import { tableJson } from '../src/model/json.js';

const CR = fileURLToPath(new URL('../../cr.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'cr-faults-'));
/** Per target; bench/abandon.bench.ts and docs/reliability.md run hundreds. */
const TRIALS_PER_HOLDER = 15;
/** Kills that must land while cr holds each target (70 to 85% of trials do at load 2 to 16). */
const KILLS_WHILE_HELD = 6;
const RUN_BOUND_MS = 30_000;
/** SIGKILL trials of each of dump, --into and restart (bench/abandon.bench.ts runs hundreds). */
const ABANDON_TRIALS = 2;
const CALIBRATION_ATTEMPTS = 10;

interface CrEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** `node cr.mjs ...args` as a child; `end` settles when it has exited (killed after RUN_BOUND_MS). */
function startCr(args: string[], env: NodeJS.ProcessEnv = process.env): { pid: number; end: Promise<CrEnd>; done: () => boolean } {
  const child = spawnChild(process.execPath, [CR, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env });
  let stderr = '';
  let finished = false;
  child.stderr.on('data', (c: Buffer) => void (stderr += c.toString('utf8')));
  const end = new Promise<CrEnd>((resolve, reject) => {
    const bound = setTimeout(() => child.kill('SIGKILL'), RUN_BOUND_MS);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(bound);
      finished = true;
      resolve({ code, signal, stderr });
    });
  });
  return { pid: child.pid!, end, done: () => finished };
}

/** kill(), except that a process already gone (cr may exit just before) is no error. */
function signal(pid: number, sig: number): void {
  try {
    kill(pid, sig);
  } catch (err) {
    if (!(err instanceof SyscallError && err.code === 'ESRCH')) throw err;
  }
}

const tracerOf = (pid: number): number => Number(/^TracerPid:\s*(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? -1);
const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Yield to the event loop until `until` (performance.now()) or until done(). */
async function spinUntil(until: number, done: () => boolean): Promise<void> {
  while (performance.now() < until && !done()) await tick();
}

/** After cr is gone: '' once pid runs untraced (the kernel detaches a dead tracer's tracees), within 2 s. */
function settled(pid: number): string {
  const deadline = Date.now() + 2000;
  let state = runState(pid);
  while (state && Date.now() < deadline) {
    sleepMs(1);
    state = runState(pid);
  }
  return state;
}

interface Timing {
  totalMs: number;
  /** from spawn to the first moment the target is traced */
  traceStartMs: number;
  tracedMs: number;
}

/** The lines of fd snapshot b that are not in a, and those of a gone from b: what a failure shows. */
function changedLines(a: string, b: string): string {
  const was = new Set(a.split('\n'));
  const now = new Set(b.split('\n'));
  const gone = [...was].filter((l) => !now.has(l));
  const added = [...now].filter((l) => !was.has(l));
  return JSON.stringify({ gone: gone.slice(0, 5), added: added.slice(0, 5) });
}

/**
 * A whole dump's timing, from the first dump seen holding the target: the traced window is a few
 * milliseconds, and at load a poll of /proc between two turns of the event loop can miss it.
 */
async function calibrate(h: Holder): Promise<Timing> {
  for (let attempt = 1; ; attempt++) {
    const timing = await timeDump(h);
    if (timing !== null) return timing;
    assert.ok(attempt < CALIBRATION_ATTEMPTS, `none of ${CALIBRATION_ATTEMPTS} whole dumps was seen holding the target`);
  }
}

/** One whole dump, watched: how long it runs and how long it holds the target (null: never seen holding it). */
async function timeDump(h: Holder): Promise<Timing | null> {
  const image = join(dir, `calibrate-${h.pid}.img`);
  const t0 = performance.now();
  const cr = startCr(['dump', '--fds-only', '--pid', String(h.pid), '-o', image]);
  let first = 0;
  let last = 0;
  while (!cr.done()) {
    if (tracerOf(h.pid) !== 0) {
      last = performance.now();
      if (!first) first = last;
    }
    await tick();
  }
  const end = await cr.end;
  assert.is(end.code, 0, end.stderr);
  rmSync(image);
  if (first === 0) return null;
  return { totalMs: performance.now() - t0, traceStartMs: first - t0, tracedMs: last - first };
}

interface Tally {
  trials: number;
  killedWhileTraced: number;
  completed: number;
  images: number;
  problems: string[];
}

/**
 * Trials on one holder: each starts `cr dump` and SIGKILLs it either at a uniformly random moment
 * of a whole dump, or a random moment after the target was first seen traced.
 */
async function killTrials(spec: HolderSpec, seed: number, tally: Tally): Promise<void> {
  const h = startHolder(spec, dir);
  try {
    const before = fdSnapshot(h.pid);
    const timing = await calibrate(h);
    const rng = new Rng(seed);
    // Trials go on past TRIALS_PER_HOLDER (up to three times as many) until enough kills landed
    // while cr held the target: how many of a fixed number land there depends on the load.
    let heldKills = 0;
    for (let i = 0; i < TRIALS_PER_HOLDER || (heldKills < KILLS_WHILE_HELD && i < 3 * TRIALS_PER_HOLDER); i++) {
      const image = join(dir, `h${h.pid}-t${i}.img`);
      const cr = startCr(['dump', '--fds-only', '--pid', String(h.pid), '-o', image]);
      const t0 = performance.now();
      if (rng.chance(0.25)) {
        await spinUntil(t0 + rng.below(Math.ceil(timing.totalMs * 1.1)), cr.done);
      } else {
        while (!cr.done() && tracerOf(h.pid) === 0) await tick();
        // Within the part of the freeze measured on a whole dump, so most kills land inside it.
        await spinUntil(performance.now() + rng.below(Math.ceil(timing.tracedMs * 0.9) + 1), cr.done);
      }
      const traced = tracerOf(h.pid) === cr.pid;
      if (!cr.done()) signal(cr.pid, SIGKILL);
      const end = await cr.end;
      tally.trials++;
      if (end.code === 0) tally.completed++;
      else if (traced) {
        tally.killedWhileTraced++;
        heldKills++;
      }
      if (end.code !== 0 && end.signal !== 'SIGKILL') tally.problems.push(`trial ${i}: cr ended ${end.code ?? end.signal}: ${end.stderr.trim()}`);
      const state = settled(h.pid);
      if (state) tally.problems.push(`trial ${i}${traced ? ' (killed while traced)' : ''}: target ${state}`);
      else {
        const now = fdSnapshot(h.pid);
        if (now !== before) tally.problems.push(`trial ${i}: the target's fd table changed: ${changedLines(before, now)}`);
      }
      // The image is put in place whole (link of a complete temporary file) or not at all.
      if (existsSync(image)) {
        tally.images++;
        try {
          readImage(image);
        } catch (err) {
          tally.problems.push(`trial ${i}: a partial image: ${(err as Error).message}`);
        }
      }
    }
    const held = readBack(h);
    if (held) tally.problems.push(`pipe bytes: ${held}`);
  } finally {
    ensureReaped(h.pid);
  }
}

test(`SIGKILL of cr at random moments of ${2 * TRIALS_PER_HOLDER} or more dumps: the target is never left stopped or traced, nothing is consumed`, async () => {
  const tally: Tally = { trials: 0, killedWhileTraced: 0, completed: 0, images: 0, problems: [] };
  // Two targets at once: one with many fds (a long /proc and kcmp phase), one with full pipes
  // (a long pipe-copy phase).
  await Promise.all([
    killTrials({ pipes: 8, capacity: 65536, bytes: 1000, dups: 1000, high: 0 }, 11, tally),
    killTrials({ pipes: 24, capacity: 262144, bytes: 262144, dups: 0, high: 0 }, 12, tally),
  ]);
  const summary = `${tally.trials} trials, ${tally.killedWhileTraced} killed while holding the target, ${tally.completed} completed, ${tally.images} images written`;
  assert.equal(tally.problems, [], summary);
  assert.ok(tally.trials >= 2 * TRIALS_PER_HOLDER, summary);
  // Many kills must land inside the window that matters.
  assert.ok(tally.killedWhileTraced >= 2 * KILLS_WHILE_HELD, summary);
  console.log(`  faults: ${summary}`);
  // A killed cr may leave its temporary file (never the image) behind: only cr's own names.
  for (const name of readdirSync(dir)) assert.match(name, /^(h\d+-t\d+\.img|\.h\d+-t\d+\.img\.[0-9a-f]{16}\.tmp|holder-.*\.out|restore-table\.json)$/);
});


test('the target killed at random moments of a dump: cr ends with one line, never hangs', async () => {
  const rng = new Rng(5);
  const outcomes: string[] = [];
  for (let i = 0; i < 3; i++) {
    const h = startHolder({ pipes: 8, capacity: 65536, bytes: 65536, dups: 1500, high: 0 }, dir);
    try {
      const cr = startCr(['dump', '--fds-only', '--pid', String(h.pid), '-o', join(dir, `victim-${i}.img`)]);
      while (!cr.done() && tracerOf(h.pid) === 0) await tick();
      await spinUntil(performance.now() + rng.below(60), cr.done);
      signal(h.pid, SIGKILL);
      const end = await cr.end;
      outcomes.push(String(end.code ?? end.signal));
      assert.ok(end.code === 0 || end.code === 1, `cr ended ${end.code ?? end.signal}: ${end.stderr}`);
      if (end.code === 1) assert.match(end.stderr, /^cr dump: [^\n]+\n$/);
      if (end.code === 1) assert.not.ok(existsSync(join(dir, `victim-${i}.img`)));
    } finally {
      ensureReaped(h.pid);
      rmSync(join(dir, `victim-${i}.img`), { force: true });
    }
  }
  console.log(`  target killed mid-dump: cr exit codes ${outcomes.join(', ')}`);
});

// ---------------------------------------------------------------------------------------------
// Restore. The image (INTO_TABLE): 16 pipes with bytes at fds 100-131 and 1,500 dups of one read
// end at 1000-2499, so the replay runs long enough to be hit.

const RESTORE_TABLE: FdTable = INTO_TABLE;
const RESTORE_IMAGE = join(dir, 'restore-table.json');
writeFileSync(RESTORE_IMAGE, tableJson(oneProcess(RESTORE_TABLE, 1)));
const IMAGE_FDS = new Set(RESTORE_TABLE.fds.map((f) => f.fd));
const TARGET_SPEC: HolderSpec = { pipes: 2, capacity: 65536, bytes: 1000, dups: 0, high: 0 };

const fdNumbers = (pid: number): number[] => readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);
/** rt_sigtimedwait (x86_64), where the holder's sigwait(3) waits. */
const SYS_rt_sigtimedwait = 128;
const sigBlk = (pid: number): string => /^SigBlk:\s*(\S+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '?';

type RestoreState = 'untouched' | 'complete' | 'partial' | 'died';

/** What a restore --into left in pid, compared with its fd table before. */
function restoreState(pid: number, before: string, beforeFds: number[]): { state: RestoreState; why: string } {
  if (/dead/.test(runState(pid))) return { state: 'died', why: 'the target died' };
  const now = fdNumbers(pid);
  if (now.join(',') === beforeFds.join(',')) {
    return fdSnapshot(pid) === before ? { state: 'untouched', why: '' } : { state: 'partial', why: 'same fd numbers, other fds' };
  }
  const want = [...new Set([...beforeFds, ...IMAGE_FDS])].sort((a, b) => a - b);
  if (now.join(',') !== want.join(',')) return { state: 'partial', why: `${now.length} fds, neither ${beforeFds.length} nor ${want.length}` };
  // Every image fd present: check what they are with a dump (the target is our child, not node's).
  const { image } = dumpFdTable(pid, { skipUnsupported: false, leaveStopped: false });
  const got = onlyProcess(image.table);
  const keep = got.fds.filter((f) => IMAGE_FDS.has(f.fd));
  const descs = got.descs.filter((d) => keep.some((f) => f.desc === d.id));
  const pipes = got.pipes.filter((p) => descs.some((d) => 'pipe' in d && d.pipe === p.id));
  const diff = compareTables(RESTORE_TABLE, { fds: keep, descs, pipes, rlimit: RESTORE_TABLE.rlimit });
  return diff.length === 0 ? { state: 'complete', why: '' } : { state: 'partial', why: diff.slice(0, 3).join('; ') };
}

interface Hit {
  state: RestoreState;
  /** the target's blocked-signal mask differs from before */
  maskChanged: boolean;
  problems: string[];
  /** how cr ended and what was found, for a failure message */
  detail: string;
}

/**
 * One restore --into a fresh holder, hit by `sig` at a random moment while cr holds it (or, with
 * small probability, at any moment of the command). Says what became of the target; `problems`
 * are what no signal may cause (a target left traced or stopped, cr hanging or crashing).
 */
async function restoreHit(sig: number, rng: Rng): Promise<Hit> {
  const h = startHolder(TARGET_SPEC, dir);
  try {
    const problems: string[] = [];
    const before = fdSnapshot(h.pid);
    const beforeFds = fdNumbers(h.pid);
    const mask = sigBlk(h.pid);
    const cr = startCr(['restore', RESTORE_IMAGE, '--into', String(h.pid)]);
    const t0 = performance.now();
    if (rng.chance(0.2)) {
      await spinUntil(performance.now() + rng.below(800), cr.done);
    } else {
      while (!cr.done() && tracerOf(h.pid) === 0) await tick();
      await spinUntil(performance.now() + rng.below(120), cr.done);
    }
    const hitAt = performance.now();
    if (!cr.done()) signal(cr.pid, sig);
    const end = await cr.end;
    if (end.signal !== null && end.signal !== 'SIGKILL' && !(sig !== SIGKILL && end.signal)) problems.push(`cr died of ${end.signal}`);
    if (end.signal === null && ![0, 1, 128 + sig].includes(end.code ?? -1)) problems.push(`cr ended ${end.code}: ${end.stderr.trim()}`);
    const state = settled(h.pid);
    if (state && !/dead/.test(state)) problems.push(`target ${state}`);
    const after = restoreState(h.pid, before, beforeFds);
    // The mask is compared in the same place as before, the holder's sigwait: while it waits
    // there the kernel shows the awaited signals unblocked (rt_sigtimedwait), not otherwise.
    if (after.state !== 'died') waitInSyscall(h.pid, SYS_rt_sigtimedwait, 30_000);
    const maskChanged = after.state !== 'died' && sigBlk(h.pid) !== mask;
    if (after.state === 'untouched' || (after.state === 'complete' && !maskChanged)) {
      const held = readBack(h);
      if (held) problems.push(`the target's own pipes: ${held}`);
    }
    const detail = `signal ${sig} after ${(hitAt - t0).toFixed(0)} ms; cr ended ${end.code ?? end.signal}: ${end.stderr.trim()}; ${after.why}`;
    return { state: after.state, maskChanged, problems: problems.map((p) => `signal ${sig}: ${p}${after.why ? ` (${after.why})` : ''}`), detail };
  } finally {
    ensureReaped(h.pid);
  }
}

test('SIGINT or SIGTERM during restore --into: the target ends untouched or completely restored, never in between', async () => {
  const rng = new Rng(21);
  const problems: string[] = [];
  const seen = new Map<RestoreState, number>();
  for (let i = 0; i < 10; i++) {
    const hit = await restoreHit(i % 2 ? SIGINT : SIGTERM, rng);
    seen.set(hit.state, (seen.get(hit.state) ?? 0) + 1);
    problems.push(...hit.problems);
    if (hit.state === 'partial' || hit.state === 'died') problems.push(`trial ${i}: target ${hit.state}: ${hit.detail}`);
    if (hit.maskChanged) problems.push(`trial ${i}: the target's blocked signals changed`);
  }
  assert.equal(problems, []);
  console.log(`  SIGINT/SIGTERM during restore --into: ${[...seen].map(([k, n]) => `${n} ${k}`).join(', ')}`);
  assert.ok((seen.get('complete') ?? 0) > 0, 'no trial let the restore finish first');
});

test('SIGKILL of cr in a whole dump, a restore --into, a restart: the process is never killed or changed; a stopped one is put back by cr recover', async () => {
  const run = join(dir, 'run');
  mkdirSync(run, { mode: 0o700 });
  const ctx: TrialContext = { dir, env: { ...process.env, XDG_RUNTIME_DIR: run }, intoImage: RESTORE_IMAGE };
  ctx.processImage = await processImage(ctx);
  const rng = new Rng(22);
  const bad: string[] = [];
  const seen: string[] = [];
  for (const kind of ['dump', 'into', 'restart'] as Kind[]) {
    // Dump and --into are aimed at the moments cr's code is in the target (the window the journal
    // and the stop are for), which needs no measured run; a restart at any moment of one.
    const timing = kind === 'restart' ? await calibrateKind(kind, ctx) : { totalMs: 0, tracedFromMs: 0, tracedMs: 0 };
    const tally = new Map<Outcome, number>();
    for (let i = 0; i < ABANDON_TRIALS; i++) {
      const r = await trial(kind, ctx, timing, rng, i, 1);
      tally.set(r.outcome, (tally.get(r.outcome) ?? 0) + 1);
      if (r.outcome === 'killed' || r.outcome === 'changed' || r.outcome === 'unrecovered') bad.push(`${kind} trial ${i}: ${r.outcome}: ${r.detail}`);
    }
    seen.push(`${kind}: ${[...tally].map(([k, n]) => `${n} ${k}`).join(', ')}`);
  }
  assert.equal(bad, []);
  // Every journal was put back and removed (recover's list says so in one line).
  const left = spawnSync(process.execPath, [CR, 'recover'], { env: ctx.env, encoding: 'utf8' });
  assert.is(left.status, 0, left.stderr);
  assert.is(left.stdout, 'nothing to recover: cr has no journal of any process\n');
  console.log(`  SIGKILL of cr: ${seen.join('; ')}`);
});

test('cr recover: one line and exit 0 when there is nothing to recover, a stale journal removed, bad PIDs refused', () => {
  const run = join(dir, 'run-recover');
  mkdirSync(run, { mode: 0o700 });
  const env = { ...process.env, XDG_RUNTIME_DIR: run };
  const cr = (...args: string[]) => spawnSync(process.execPath, [CR, 'recover', ...args], { env, encoding: 'utf8' });
  let r = cr('2147483647');
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, /^nothing to recover: cr has no journal of pid 2147483647 \(in .*\)\n$/);
  // A journal whose process has ended (its start time no longer matches pid 1's): removed, not acted on.
  const journal = { version: 1, pid: 1, tid: 1, startTime: '0', command: 'dump', cr: 1, written: '', wasStopped: false, regs: Array(27).fill('0'), mask: '0000000000000000', maps: [] };
  writeFileSync(join(run, 'cr', '1.json'), JSON.stringify(journal), { mode: 0o600 });
  r = cr();
  assert.is(r.status, 0, r.stderr);
  assert.is(r.stdout, 'pid 1: pid 1 is another process now (the one cr worked in has ended); its journal is removed\n');
  assert.not.ok(existsSync(join(run, 'cr', '1.json')));
  for (const arg of ['abc', '0', '-1']) {
    r = cr(arg);
    assert.is(r.status, 2, `${arg}: ${r.stdout}`);
    assert.match(r.stderr, /^cr recover: [^\n]+\n$/);
  }
});

test('SIGINT or SIGTERM during restore -- CMD: the new process ends, nothing is left behind', async () => {
  const rng = new Rng(23);
  const outcomes: string[] = [];
  for (let i = 0; i < 4; i++) {
    const nonce = `cr-faults-${randomBytes(6).toString('hex')}`;
    const sig = i % 2 ? SIGINT : SIGTERM;
    const cr = startCr(['restore', RESTORE_IMAGE, '--', holderBinary(), '0', '65536', '0', '0', '0'], { ...process.env, CR_FAULTS_MARK: nonce });
    // Hit it once the new process exists (it carries the mark in its environment), at a random moment.
    while (!cr.done() && withMark(nonce).length === 0) await tick();
    await spinUntil(performance.now() + rng.below(150), cr.done);
    if (!cr.done()) signal(cr.pid, sig);
    const end = await cr.end;
    outcomes.push(`${end.code ?? end.signal}`);
    assert.ok(end.code === 128 + sig || end.signal !== null || end.code === 1, `cr ended ${end.code}: ${end.stderr}`);
    const deadline = Date.now() + 5000;
    while (withMark(nonce).length > 0 && Date.now() < deadline) sleepMs(5);
    const left = withMark(nonce);
    for (const pid of left) kill(pid, SIGKILL);
    assert.equal(left, [], `signal ${sig}: the restored process outlived cr`);
  }
  console.log(`  SIGINT/SIGTERM during restore -- CMD: cr exit codes ${outcomes.join(', ')}`);
});

/** Pids whose environment carries the mark (processes started by one cr run). */
function withMark(nonce: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/environ`, 'latin1').includes(nonce)) out.push(Number(name));
    } catch {
      // gone, or a kernel thread
    }
  }
  // cr itself carries the mark too: only its descendants count once it is gone.
  return out.filter((pid) => !readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('cr.mjs'));
}

// A parent blocked in vfork() until its child execs: it cannot be stopped (state D) meanwhile.
const VFORKER_C = `#include <unistd.h>
int main(void) {
  if (vfork() == 0) { sleep(30); _exit(0); }
  return 0;
}`;

test('a target that cannot stop (in vfork, state D): the dump gives up within its bound and lets it go', async () => {
  await withProcess([buildC(VFORKER_C)], { fds: [] }, async (pid) => {
    const deadline = Date.now() + 5000;
    while (!/^State:\s*D/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'))) {
      if (Date.now() > deadline) assert.unreachable('the vforker did not block');
      sleepMs(2);
    }
    const cr = startCr(['dump', '--fds-only', '--pid', String(pid), '-o', join(dir, 'vfork.img')]);
    const end = await cr.end;
    assert.is(end.code, 1, end.stderr);
    assert.match(end.stderr, new RegExp(`^cr dump: thread ${pid} of process ${pid} did not stop within 5000 ms \\(state D\\)\\n$`));
    assert.is(tracerOf(pid), 0);
    assert.not.ok(existsSync(join(dir, 'vfork.img')));
    // The vfork child is not ours: kill it too, or it outlives the test.
    for (const child of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) kill(Number(child), SIGKILL);
  });
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
