// The planner on hand-written tables: every case the kernel's rules make hard, each
// plan checked by the independent simulator (src/sim/verify.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, writeFileSync, mkdtempSync, chmodSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { oneProcess, type Desc, type Fd, type FdTable, type Pipe } from '../src/model/fdtable.js';
import { O_LARGEFILE, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY, O_APPEND, O_DIRECT } from '../src/model/fdtable.js';
import type { Op, Plan } from '../src/plan/ops.js';
import type { PlanTarget } from '../src/model/restore-target.js';
import { planRestore, PlanImpossible } from '../src/plan/planner.js';
import { verify } from '../src/sim/verify.js';
import { crProcess } from './helpers/cli.js';
import { NOBODY, unprivilegedTest } from './helpers/unprivileged.js';
import { tableJson } from '../src/model/json.js';
import { generateCase } from '../src/fuzz/generate.js';

const LIMIT = { soft: 1024, hard: 20000 };
const bin = (s: string): Buffer => Buffer.from(s);

/** A table builder: descriptions by id, fds as [number, desc, cloexec]. */
function table(descs: Desc[], fds: Array<[number, number, boolean?]>, pipes: Pipe[], rlimit = LIMIT): FdTable {
  const list: Fd[] = fds.map(([fd, desc, cloexec]) => ({ fd, desc, cloexec: cloexec ?? false }));
  return { fds: list, descs, pipes, rlimit };
}
const fresh = (fds: number[] = [0, 1, 2], rlimit = LIMIT): PlanTarget => ({ fds, rlimit, mode: 'fresh' });

function planOk(t: FdTable, target: PlanTarget): Plan {
  const plan = planRestore(t, target);
  const check = verify(t, target, plan);
  assert.ok(check.ok, `simulator rejected the plan: ${JSON.stringify(check)}\n${plan.ops.map((o) => JSON.stringify(o)).join('\n')}`);
  assert.ok(plan.ops.length >= plan.lowerBound, 'plan shorter than its lower bound');
  return plan;
}
const count = (plan: Plan, kind: Op['op']) => plan.ops.filter((o) => o.op === kind).length;

// The seed's situation: read end at 9, write end at 4, a dup of each at 12 and 7.
const seed = table(
  [
    { id: 1, kind: 'pipe', flags: O_RDONLY, pipe: 0 },
    { id: 2, kind: 'pipe', flags: O_WRONLY, pipe: 0 },
  ],
  [[9, 1], [4, 2], [12, 1], [7, 2, true]],
  [{ id: 0, capacity: 65536, data: bin('queued bytes') }],
);

test('seed layout: read end above write end, dups of both, bytes queued', () => {
  const plan = planOk(seed, fresh());
  assert.is(count(plan, 'pipe2'), 1, 'the pipe is created once');
  assert.is(count(plan, 'write'), 1, 'data written once per pipe, never per dup');
});

test('seed layout into a live target holding 0-12: staged, then one burst', () => {
  const target: PlanTarget = { fds: Array.from({ length: 13 }, (_, i) => i), rlimit: LIMIT, mode: 'into' };
  const plan = planOk(seed, target);
  const commit = plan.ops.findIndex((o) => o.op === 'commit');
  assert.is(commit, plan.commit);
  for (const op of plan.ops.slice(commit + 1)) assert.ok(op.op === 'dup2' || op.op === 'close' || op.op === 'prlimit', `burst holds only dup2/close/prlimit, saw ${op.op}`);
});

test('pipe() returns the ends the wrong way round for the wanted numbers', () => {
  // Read end wanted at 1, write end at 0: pipe2 gives read=0, write=1.
  const t = table(
    [
      { id: 1, kind: 'pipe', flags: O_RDONLY, pipe: 0 },
      { id: 2, kind: 'pipe', flags: O_WRONLY, pipe: 0 },
    ],
    [[1, 1], [0, 2]],
    [{ id: 0, capacity: 65536, data: bin('x') }],
  );
  const plan = planOk(t, fresh([0, 1, 2]));
  const pipe2 = plan.ops.find((o) => o.op === 'pipe2');
  assert.equal(pipe2 && pipe2.op === 'pipe2' && pipe2.fds, [0, 1]);
  assert.ok(count(plan, 'dupfd') === 1, 'the swap goes through one trampoline fd');
});

test('gaps, high numbers and a soft limit that must rise first', () => {
  const t = table(
    [
      { id: 1, kind: 'pipe', flags: O_RDONLY, pipe: 0 },
      { id: 2, kind: 'pipe', flags: O_WRONLY, pipe: 0 },
    ],
    [[4095, 1], [5, 2]],
    [{ id: 0, capacity: 65536, data: Buffer.alloc(0) }],
    { soft: 4096, hard: 20000 },
  );
  const plan = planOk(t, fresh([0, 1, 2], { soft: 1024, hard: 20000 }));
  assert.equal(plan.ops[0], { op: 'prlimit', soft: 20000, hard: 20000 });
  assert.equal(plan.ops.at(-1), { op: 'prlimit', soft: 4096, hard: 20000 });
});

test('several descriptions per end, reopened, O_NONBLOCK on some only', () => {
  const t = table(
    [
      { id: 1, kind: 'pipe', flags: O_RDONLY, pipe: 0 },
      { id: 2, kind: 'pipe', flags: O_WRONLY | O_NONBLOCK, pipe: 0 },
      { id: 3, kind: 'pipe', flags: O_RDONLY | O_LARGEFILE | O_NONBLOCK, pipe: 0 },
      { id: 4, kind: 'pipe', flags: O_WRONLY | O_LARGEFILE, pipe: 0 },
      { id: 5, kind: 'pipe', flags: O_RDWR | O_LARGEFILE, pipe: 0 },
    ],
    [[3, 1], [4, 2], [5, 3], [6, 4], [7, 5], [8, 3, true]],
    [{ id: 0, capacity: 65536, data: bin('a'.repeat(65536)) }],
  );
  const plan = planOk(t, fresh());
  assert.is(count(plan, 'open'), 3, 'one open of /proc/self/fd per reopened description');
});

test('half-closed pipes: only a read end with bytes, only a write end with bytes', () => {
  const t = table(
    [
      { id: 1, kind: 'pipe', flags: O_RDONLY, pipe: 0 },
      { id: 2, kind: 'pipe', flags: O_WRONLY, pipe: 1 },
      { id: 3, kind: 'pipe', flags: O_RDONLY | O_LARGEFILE, pipe: 2 },
    ],
    [[10, 1], [11, 2], [12, 3]],
    [
      { id: 0, capacity: 65536, data: bin('left for the reader') },
      { id: 1, capacity: 4096, data: bin('nobody reads this') },
      { id: 2, capacity: 1048576, data: bin('reopened only') },
    ],
  );
  planOk(t, fresh());
});

test('live target whose fds collide with the image, 0, 1 and 2 included; exact closes the rest', () => {
  const t = table(
    [
      { id: 1, kind: 'pipe', flags: O_RDONLY, pipe: 0 },
      { id: 2, kind: 'pipe', flags: O_WRONLY, pipe: 0 },
      { id: 3, kind: 'file', flags: O_WRONLY | O_APPEND | O_LARGEFILE, path: '/tmp/log', offset: 100 },
    ],
    [[0, 2], [1, 1], [2, 3], [5, 1]],
    [{ id: 0, capacity: 65536, data: bin('zz') }],
  );
  planOk(t, { fds: [0, 1, 2, 3, 5, 9], rlimit: LIMIT, mode: 'into' });
  planOk(t, { fds: [0, 1, 2, 3, 5, 9], rlimit: LIMIT, mode: 'into-exact' });
});

test('permutation cycles between pipe ends in a fresh target', () => {
  // Three pipes whose ends sit where pipe2 would put another pipe's ends.
  const descs: Desc[] = [];
  const fds: Array<[number, number, boolean?]> = [];
  const pipes: Pipe[] = [];
  for (let p = 0; p < 3; p++) {
    descs.push({ id: 2 * p, kind: 'pipe', flags: O_RDONLY, pipe: p }, { id: 2 * p + 1, kind: 'pipe', flags: O_WRONLY, pipe: p });
    pipes.push({ id: p, capacity: 65536, data: bin(`pipe ${p}`) });
  }
  fds.push([1, 0], [2, 1], [3, 2], [4, 3], [5, 4], [0, 5]);
  planOk(table(descs, fds, pipes), fresh([0, 1, 2]));
});

test('a full table: every number below RLIMIT_NOFILE taken, no room above', () => {
  const rlimit = { soft: 64, hard: 64 };
  const descs: Desc[] = [];
  const fds: Array<[number, number, boolean?]> = [];
  const pipes: Pipe[] = [];
  for (let p = 0; p < 32; p++) {
    // Alternate the order of the ends so some pipes land reversed.
    const [r, w] = p % 2 === 0 ? [2 * p, 2 * p + 1] : [2 * p + 1, 2 * p];
    descs.push({ id: 2 * p, kind: 'pipe', flags: O_RDONLY, pipe: p }, { id: 2 * p + 1, kind: 'pipe', flags: O_WRONLY, pipe: p });
    fds.push([r, 2 * p], [w, 2 * p + 1]);
    pipes.push({ id: p, capacity: 65536, data: bin(`#${p}`) });
  }
  const t = table(descs, fds, pipes, rlimit);
  let outcome = 'planned';
  try {
    planOk(t, fresh([0, 1, 2], rlimit));
  } catch (err) {
    if (!(err instanceof PlanImpossible)) throw err;
    outcome = err.message;
  }
  assert.is(outcome, 'planned', 'the reversed pipes are created while a number is still free');
});

test('a table that cannot exist in the target is an error naming why', () => {
  const t = table(
    [
      { id: 1, kind: 'pipe', flags: O_RDONLY, pipe: 0 },
      { id: 2, kind: 'pipe', flags: O_WRONLY, pipe: 0 },
    ],
    [[1, 1], [0, 2]],
    [{ id: 0, capacity: 65536, data: Buffer.alloc(0) }],
    { soft: 2, hard: 2 },
  );
  // Two numbers, both taken by one reversed pipe: pipe2 cannot swap its ends without a third.
  assert.throws(() => planRestore(t, fresh([], { soft: 2, hard: 2 })), (e: Error) => e instanceof PlanImpossible && /no free fd number/.test(e.message));
  // An fd above the target's hard limit.
  const high = table([{ id: 1, kind: 'chr', flags: O_RDWR | O_LARGEFILE, path: '/dev/null' }], [[900, 1]], [], { soft: 1024, hard: 1024 });
  assert.throws(() => planRestore(high, fresh([], { soft: 512, hard: 512 })), (e: Error) => /fd 900 cannot exist/.test(e.message));
  // Two pipe2 read ends on one pipe.
  const two = table(
    [
      { id: 1, kind: 'pipe', flags: O_RDONLY, pipe: 0 },
      { id: 2, kind: 'pipe', flags: O_RDONLY, pipe: 0 },
    ],
    [[3, 1], [4, 2]],
    [{ id: 0, capacity: 65536, data: Buffer.alloc(0) }],
  );
  assert.throws(() => planRestore(two, fresh()), (e: Error) => /two read ends/.test(e.message));
});

test('FIFOs: a writer with no reader gets a temporary one; packets keep their boundaries', () => {
  const t = table(
    [
      { id: 1, kind: 'fifo', flags: O_WRONLY | O_LARGEFILE, pipe: 0, path: '/tmp/f1' },
      { id: 2, kind: 'fifo', flags: O_RDWR | O_LARGEFILE, pipe: 1, path: '/tmp/f2' },
      { id: 3, kind: 'fifo', flags: O_RDONLY | O_LARGEFILE, pipe: 1, path: '/tmp/f2' },
      { id: 4, kind: 'pipe', flags: O_RDONLY, pipe: 2 },
      { id: 5, kind: 'pipe', flags: O_WRONLY | O_DIRECT, pipe: 2 },
    ],
    [[3, 1], [4, 2], [6, 3], [8, 4], [9, 5]],
    [
      { id: 0, capacity: 65536, data: bin('for a reader to come') },
      { id: 1, capacity: 65536, data: bin('rdwr') },
      { id: 2, capacity: 65536, data: bin('onetwo'), packets: [3, 3] },
    ],
  );
  planOk(t, fresh());
});

test('the hard limit above the target\'s is reported, not silently dropped', () => {
  const t = table([{ id: 1, kind: 'chr', flags: O_RDWR | O_LARGEFILE, path: '/dev/null' }], [[0, 1]], [], { soft: 1024, hard: 4096 });
  const plan = planOk(t, fresh([0, 1, 2], { soft: 1024, hard: 2048 }));
  assert.is(plan.warnings.length, 1);
  assert.match(plan.warnings[0], /hard RLIMIT_NOFILE 4096/);
});

test('deterministic: the same input gives byte-identical plans; the module imports only env.abort', () => {
  const a = JSON.stringify(planRestore(seed, fresh()));
  const b = JSON.stringify(planRestore(seed, fresh()));
  assert.is(a, b);
  const wasm = new WebAssembly.Module(readFileSync(new URL('../planner.wasm', import.meta.url)));
  assert.equal(WebAssembly.Module.imports(wasm).map((i) => `${i.module}.${i.name}`), ['env.abort']);
});

test('deterministic across plans: each plan starts on an empty heap, and what an earlier one left there is never read', () => {
  // The stub runtime's __reset hands the next plan memory the last one wrote: a buffer read before
  // it is written would make a plan depend on the one before it.
  // Seeds of each mode, from 3 to 3,000 fds, two of them impossible (105, 248).
  const cases = [63, 2, 102, 5, 105, 11, 153, 248, 7].map((s) => generateCase(s, 3000));
  const once = (c: { table: FdTable; target: PlanTarget }): string => {
    try {
      return JSON.stringify(planRestore(c.table, c.target));
    } catch (err) {
      return `impossible: ${(err as Error).message}`;
    }
  };
  const small = { table: seed, target: fresh() };
  const first = [small, ...cases].map(once);
  // The same inputs again, in the other order, each after a larger or a different plan.
  const again = [...cases].reverse().map(once).reverse();
  assert.equal(again, first.slice(1));
  assert.is(once(small), first[0]);
});

test('a fresh target holding fds above its hard limit: each closed once (a forked child can start so)', () => {
  const plan = planOk(table([], [], [], { soft: 4, hard: 4 }), fresh([2, 3, 5], { soft: 1, hard: 4 }));
  assert.equal(plan.ops.filter((op) => op.op === 'close' && op.fd === 5).length, 1);
});

unprivilegedTest('`cr plan` works on a JSON table as an unprivileged user', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cr-plan-'));
  try {
    const file = join(dir, 'seed.json');
    writeFileSync(file, tableJson(oneProcess(seed, 1)));
    chmodSync(dir, 0o755);
    chmodSync(file, 0o644);
    const out = crProcess(['plan', file], { uid: NOBODY });
    assert.is(out.code, 0, out.stderr);
    assert.match(out.stdout, /verified/);
    const bad = crProcess(['plan', join(dir, 'missing.json')]);
    assert.is(bad.code, 2);
    assert.is(bad.stderr.trim().split('\n').length, 1, 'one line of error');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
