// Faults in the middle of a dump. cr is killed with SIGKILL at random moments (many of them while
// it holds the target frozen): the target must never be left stopped or traced, its fd table
// and queued pipe bytes must be unchanged, and an image is either absent or whole. The target
// dying under a dump, or never stopping, gives a one-line error within a time bound.
import { spawn as spawnChild } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { kill, SIGKILL } from '../bridge/signal.js';
import { Rng } from '../src/fuzz/random.js';
import { readImage } from '../src/image/format.js';
import { fdSnapshot, runState } from '../src/imagefuzz/target.js';
import { buildC, ensureReaped, withProcess } from './helpers/processes.js';
import { readBack, sleepMs, startHolder, type Holder, type HolderSpec } from './fixtures/hardening-holder.js';

const CR = fileURLToPath(new URL('../../cr.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'cr-faults-'));
const TRIALS_PER_HOLDER = 25;
const RUN_BOUND_MS = 30_000;

interface CrEnd {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: string;
}

/** `node cr.mjs ...args` as a child; `end` settles when it has exited (killed after RUN_BOUND_MS). */
function startCr(args: string[]): { pid: number; end: Promise<CrEnd>; done: () => boolean } {
  const child = spawnChild(process.execPath, [CR, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
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

/** One whole dump, watched: how long it runs and how long it holds the target. */
async function calibrate(h: Holder): Promise<Timing> {
  const image = join(dir, `calibrate-${h.pid}.img`);
  const t0 = performance.now();
  const cr = startCr(['dump', '--pid', String(h.pid), '-o', image]);
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
  assert.ok(first > 0, 'the dump was never seen holding the target');
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
    for (let i = 0; i < TRIALS_PER_HOLDER; i++) {
      const image = join(dir, `h${h.pid}-t${i}.img`);
      const cr = startCr(['dump', '--pid', String(h.pid), '-o', image]);
      const t0 = performance.now();
      if (rng.chance(0.25)) {
        await spinUntil(t0 + rng.below(Math.ceil(timing.totalMs * 1.1)), cr.done);
      } else {
        while (!cr.done() && tracerOf(h.pid) === 0) await tick();
        await spinUntil(performance.now() + rng.below(Math.ceil(timing.tracedMs) + 1), cr.done);
      }
      const traced = tracerOf(h.pid) === cr.pid;
      if (!cr.done()) kill(cr.pid, SIGKILL);
      const end = await cr.end;
      tally.trials++;
      if (end.code === 0) tally.completed++;
      else if (traced) tally.killedWhileTraced++;
      if (end.code !== 0 && end.signal !== 'SIGKILL') tally.problems.push(`trial ${i}: cr ended ${end.code ?? end.signal}: ${end.stderr.trim()}`);
      const state = settled(h.pid);
      if (state) tally.problems.push(`trial ${i}${traced ? ' (killed while traced)' : ''}: target ${state}`);
      else if (fdSnapshot(h.pid) !== before) tally.problems.push(`trial ${i}: the target's fd table changed`);
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

test(`SIGKILL of cr at random moments of ${2 * TRIALS_PER_HOLDER} dumps: the target is never left stopped or traced, nothing is consumed`, async () => {
  const tally: Tally = { trials: 0, killedWhileTraced: 0, completed: 0, images: 0, problems: [] };
  // Two targets at once: one with many fds (a long /proc and kcmp phase), one with full pipes
  // (a long pipe-copy phase).
  await Promise.all([
    killTrials({ pipes: 8, capacity: 65536, bytes: 1000, dups: 1000, high: 0 }, 11, tally),
    killTrials({ pipes: 24, capacity: 262144, bytes: 262144, dups: 0, high: 0 }, 12, tally),
  ]);
  const summary = `${tally.trials} trials, ${tally.killedWhileTraced} killed while holding the target, ${tally.completed} completed, ${tally.images} images written`;
  assert.equal(tally.problems, [], summary);
  assert.is(tally.trials, 2 * TRIALS_PER_HOLDER);
  // Most kills must land inside the window that matters.
  assert.ok(tally.killedWhileTraced >= TRIALS_PER_HOLDER, summary);
  console.log(`  faults: ${summary}`);
  // A killed cr may leave its temporary file (never the image) behind: only cr's own names.
  for (const name of readdirSync(dir)) assert.match(name, /^(h\d+-t\d+\.img|\.h\d+-t\d+\.img\.\d+\.[0-9a-f]+\.tmp|holder-.*\.out)$/);
});

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
    const cr = startCr(['dump', '--pid', String(pid), '-o', join(dir, 'vfork.img')]);
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
