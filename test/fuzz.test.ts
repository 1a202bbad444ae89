// The planner against the simulator on random cases (a bounded run of `cr fuzz`), the
// planner's determinism, and the fuzzer's own parts: generator, guarantee, shrinker.
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { O_RDWR } from '../src/model/fdtable.js';
import { oneProcess, viewOf, type FdTable } from '../src/model/fdtable.js';
import { parseTables } from '../src/image/validate.js';

/** A fuzz case's table is one process's: validated as the image of that one process. */
const parseTable = (table: FdTable): FdTable => viewOf(parseTables(oneProcess(table, 1)), 0);
import { planRestore } from '../src/plan/planner.js';
import type { Plan, PlanRecords } from '../src/plan/ops.js';
import { checkCase } from '../src/fuzz/check.js';
import { generateCase, planGuaranteed, type FuzzCase } from '../src/fuzz/generate.js';
import { fuzz } from '../src/fuzz/run.js';
import { shrink } from '../src/fuzz/shrink.js';
import { verify } from '../src/sim/verify.js';

const here = dirname(fileURLToPath(import.meta.url));

test('bounded fuzz: every plan verifies, every refusal is one the planner may make', () => {
  // npm run fuzz runs 100,000; the suite keeps to a few seconds.
  const CASES = 5000;
  const report = fuzz({ seed: 1, count: CASES, maxFds: 400 });
  const f = report.failure;
  assert.ok(
    !f,
    f && `seed ${f.seed}: ${f.reason}\nshrunk: ${f.shrunkReason}\ntable: ${JSON.stringify(f.shrunk.table)}\ntarget: ${JSON.stringify(f.shrunk.target)}\ntree: ${f.shrunk.tree}`,
  );
  assert.is(report.cases, CASES);
  assert.is(report.failures, 0);
  // The mix must exercise both outcomes, or it tests less than it claims.
  assert.ok(report.verified > CASES * 0.75, `only ${report.verified} plans verified`);
  assert.ok(report.impossible > CASES / 120, `only ${report.impossible} cases without a plan`);
  assert.ok(report.totalOps >= report.totalLowerBound);
  // Split over trees of 2 to 4 processes (fuzz/tree.ts), most cases of a third must plan and verify.
  assert.ok(report.trees > CASES / 4, `only ${report.trees} cases planned as trees`);
  assert.ok(report.trees - report.treesImpossible > report.trees * 0.7, `only ${report.trees - report.treesImpossible} of ${report.trees} trees verified`);
});

test('cases the fuzzer shrank from planner failures verify', () => {
  const found: Array<[string, FuzzCase]> = [
    // open(fifo, ...|O_DIRECT) is EINVAL: packet mode comes by F_SETFL after the open
    ['O_DIRECT at open', {
      table: { fds: [{ fd: 5, desc: 11, cloexec: true }], descs: [{ id: 11, kind: 'fifo', flags: 50177, pipe: 2, path: '/tmp/cr-fuzz/fifo0' }], pipes: [{ id: 2, capacity: 65536, data: Buffer.alloc(0) }], rlimit: { soft: 256, hard: 1048576 } },
      target: { fds: [], rlimit: { soft: 1024, hard: 20000 }, mode: 'fresh' },
    }],
    // F_SETFL cannot set O_ASYNC on a device without ->fasync: only open() can
    ['O_ASYNC by F_SETFL', {
      table: { fds: [{ fd: 20, desc: 54, cloexec: false }], descs: [{ id: 54, kind: 'chr', flags: 40961, path: '/dev/full', offset: 0 }], pipes: [], rlimit: { soft: 40, hard: 589 } },
      target: { fds: [], rlimit: { soft: 40, hard: 589 }, mode: 'into-exact' },
    }],
    // both ends staged: dup3 sets each close-on-exec bit, no F_SETFD needed, yet the bound counted one
    ['lower bound above the plan', {
      table: {
        fds: [{ fd: 31, desc: 228, cloexec: false }, { fd: 18, desc: 154, cloexec: true }],
        descs: [{ id: 228, kind: 'pipe', flags: 0, pipe: 19 }, { id: 154, kind: 'pipe', flags: 1, pipe: 19 }],
        pipes: [{ id: 19, capacity: 4096, data: Buffer.alloc(0) }],
        rlimit: { soft: 60, hard: 60 },
      },
      target: { fds: [31, 18], rlimit: { soft: 26, hard: 26932 }, mode: 'into' },
    }],
    // all ends reopened, one staged: three spare numbers are enough (pipe2 temporaries
    // at 0 and 1, reopen, a dup2 cycle through a closed temporary), yet refused
    ['temporaries for a pipe of reopened ends', {
      table: {
        fds: [{ fd: 3, desc: 7, cloexec: true }, { fd: 4, desc: 29, cloexec: false }, { fd: 5, desc: 16, cloexec: true }],
        descs: [{ id: 16, kind: 'pipe', flags: 32770, pipe: 3 }, { id: 29, kind: 'pipe', flags: 34817, pipe: 3 }, { id: 7, kind: 'pipe', flags: 32769, pipe: 3 }],
        pipes: [{ id: 3, capacity: 4096, data: Buffer.alloc(0) }],
        rlimit: { soft: 6, hard: 6 },
      },
      target: { fds: [4], rlimit: { soft: 6, hard: 6 }, mode: 'into-exact' },
    }],
    ['the same, beside a half-closed pipe, the soft limit below the image fds', {
      table: {
        fds: [{ fd: 6, desc: 22, cloexec: false }, { fd: 0, desc: 33, cloexec: true }, { fd: 4, desc: 27, cloexec: false }, { fd: 5, desc: 29, cloexec: false }],
        descs: [{ id: 22, kind: 'pipe', flags: 32768, pipe: 1 }, { id: 27, kind: 'pipe', flags: 50176, pipe: 1 }, { id: 29, kind: 'pipe', flags: 0, pipe: 13 }, { id: 33, kind: 'pipe', flags: 32769, pipe: 1 }],
        pipes: [{ id: 1, capacity: 65536, data: Buffer.alloc(0) }, { id: 13, capacity: 65536, data: Buffer.alloc(0) }],
        rlimit: { soft: 7, hard: 7 },
      },
      target: { fds: [0], rlimit: { soft: 4, hard: 7 }, mode: 'into' },
    }],
    ['the same, after two pipes made by pipe2', {
      table: {
        fds: [{ fd: 3, desc: 35, cloexec: false }, { fd: 4, desc: 10, cloexec: false }, { fd: 5, desc: 4, cloexec: false }, { fd: 6, desc: 28, cloexec: false }, { fd: 7, desc: 3, cloexec: false }],
        descs: [{ id: 10, kind: 'pipe', flags: 0, pipe: 10 }, { id: 4, kind: 'pipe', flags: 2049, pipe: 10 }, { id: 3, kind: 'pipe', flags: 37889, pipe: 7 }, { id: 28, kind: 'pipe', flags: 32768, pipe: 7 }, { id: 35, kind: 'pipe', flags: 1, pipe: 13 }],
        pipes: [{ id: 10, capacity: 32768, data: Buffer.alloc(0) }, { id: 7, capacity: 65536, data: Buffer.alloc(0) }, { id: 13, capacity: 8192, data: Buffer.alloc(0) }],
        rlimit: { soft: 8, hard: 8 },
      },
      target: { fds: [6], rlimit: { soft: 3, hard: 8 }, mode: 'into-exact' },
    }],
  ];
  for (const [what, c] of found) {
    const outcome = checkCase(c);
    assert.is(outcome.kind, 'verified', `${what}: ${outcome.kind === 'verified' ? '' : outcome.reason}`);
  }
});

test('the same input gives byte-identical plans, in one process and in another', () => {
  const seeds = [3, 41, 1992, 777, 5];
  const planOf = (seed: number): string => {
    const c = generateCase(seed);
    try {
      return JSON.stringify(planRestore(parseTable(c.table), c.target));
    } catch (err) {
      return `impossible: ${(err as Error).message}`;
    }
  };
  const first = seeds.map(planOf);
  // In the other order: nothing a plan leaves behind in the module may change the next.
  const second = [...seeds].reverse().map(planOf).reverse();
  assert.equal(second, first);
  assert.ok(first.some((p) => p.startsWith('{')), 'no seed gave a plan');
  const script = `
    const { generateCase } = await import(${JSON.stringify(join(here, '../src/fuzz/generate.js'))});
    const { parseTables } = await import(${JSON.stringify(join(here, '../src/image/validate.js'))});
    const { oneProcess, viewOf } = await import(${JSON.stringify(join(here, '../src/model/fdtable.js'))});
    const parseTable = (t) => viewOf(parseTables(oneProcess(t, 1)), 0);
    const { planRestore } = await import(${JSON.stringify(join(here, '../src/plan/planner.js'))});
    const out = ${JSON.stringify(seeds)}.reverse().map((seed) => {
      const c = generateCase(seed);
      try { return JSON.stringify(planRestore(parseTable(c.table), c.target)); }
      catch (err) { return 'impossible: ' + err.message; }
    }).reverse();
    process.stdout.write(JSON.stringify(out));`;
  const other = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', maxBuffer: 256 << 20 }));
  assert.equal(other, first);
});

test('cases: one seed, one case; tables are valid and range from tiny to 20,000 fds', () => {
  assert.is(JSON.stringify(generateCase(123)), JSON.stringify(generateCase(123)));
  assert.is.not(JSON.stringify(generateCase(123)), JSON.stringify(generateCase(124)));
  let small = 0;
  let big = 0;
  const modes = new Set<string>();
  for (let seed = 0; seed < 3000; seed++) {
    const c = generateCase(seed, 2000);
    parseTable(c.table);
    const n = c.table.fds.length;
    if (n <= 8) small++;
    if (n > 400) big++;
    modes.add(c.target.mode);
    assert.ok(n <= 2000);
  }
  assert.ok(small > 1000 && big > 50, `${small} small, ${big} big`);
  assert.equal([...modes].sort(), ['fresh', 'into', 'into-exact']);
  const sizes = [];
  for (let seed = 0; seed < 3000 && sizes.length === 0; seed++) {
    const n = generateCase(seed).table.fds.length;
    if (n > 5000) sizes.push(n);
  }
  assert.ok(sizes.length > 0, 'no case above 5000 fds in 3000 seeds');
});

test("the planner's promise: image fds below the hard limit and enough spare numbers", () => {
  const table = parseTable({
    fds: [
      { fd: 0, desc: 1, cloexec: false },
      { fd: 1, desc: 2, cloexec: false },
    ],
    descs: [
      { id: 1, kind: 'chr', flags: 0, path: '/dev/null' },
      { id: 2, kind: 'chr', flags: 1, path: '/dev/null' },
    ],
    pipes: [],
    rlimit: { soft: 4, hard: 4 },
  });
  const target = (fds: number[], hard: number, mode: 'fresh' | 'into' = 'fresh') => ({ fds, rlimit: { soft: hard, hard }, mode });
  assert.ok(planGuaranteed(table, target([], 4))); // 2 and 3 are spare
  assert.not.ok(planGuaranteed(table, target([2], 4)));
  assert.not.ok(planGuaranteed(table, target([], 1))); // fd 1 cannot exist
  assert.ok(planGuaranteed(table, target([0, 1], 4))); // fresh: the target's fds just go
  assert.not.ok(planGuaranteed(table, target([0, 1], 4, 'into'))); // both descriptions need staging
  assert.ok(planGuaranteed(table, target([0, 1], 6, 'into')));
  assert.not.ok(planGuaranteed(table, target([0, 1, 5], 6, 'into')));
});

test('shrinking keeps what makes a case fail and drops the rest', () => {
  let seed = 0;
  let c: FuzzCase;
  const hasRdwrFifo = (x: FuzzCase): boolean => x.table.descs.some((d) => d.kind === 'fifo' && (d.flags & 3) === O_RDWR);
  do c = generateCase(++seed, 400);
  while (!(hasRdwrFifo(c) && c.table.fds.length > 50 && c.target.fds.length > 0));
  const small = shrink(c, hasRdwrFifo);
  assert.is(small.table.fds.length, 1);
  assert.is(small.table.descs.length, 1);
  assert.is(small.table.pipes.length, 1);
  assert.is(small.table.pipes[0].data.length, 0);
  assert.is(small.target.fds.length, 0);
  parseTable(small.table);
});

test('shrinking squeezes the fd number line, limits with it', () => {
  const c: FuzzCase = {
    table: {
      fds: [{ fd: 1000, desc: 1, cloexec: false }, { fd: 1002, desc: 2, cloexec: true }],
      descs: [{ id: 1, kind: 'chr', flags: 0, path: '/dev/null' }, { id: 2, kind: 'chr', flags: 1, path: '/dev/zero' }],
      pipes: [],
      rlimit: { soft: 2000, hard: 2000 },
    },
    target: { fds: [...Array.from({ length: 1000 }, (_, i) => i), 1001], rlimit: { soft: 1024, hard: 4000 }, mode: 'into' },
  };
  // "Fails" while both image fds stay and a target fd sits between them.
  const between = (x: FuzzCase): boolean => {
    const [a, b] = x.table.fds.map((f) => f.fd);
    return x.table.fds.length === 2 && x.target.fds.some((fd) => fd > a && fd < b);
  };
  const small = shrink(c, between);
  assert.equal(small.table.fds.map((f) => f.fd), [0, 2]);
  assert.equal(small.target.fds, [1]);
  assert.equal(small.table.rlimit, { soft: 3, hard: 3 });
  assert.equal(small.target.rlimit, { soft: 3, hard: 3 });
  parseTable(small.table);
});

test('a plan missing any one op fails verification', () => {
  // Every op of a good plan has a job, so dropping one must show. The one exception
  // is a close(n) that a later dup2(_, n) makes redundant (dup2 closes n anyway):
  // wasted, not wrong.
  let checked = 0;
  let missed = 0;
  const misses: string[] = [];
  for (let seed = 1; checked < 400; seed++) {
    const c = generateCase(seed, 30);
    let plan: Plan;
    try {
      plan = planRestore(parseTable(c.table), c.target);
    } catch {
      continue;
    }
    if (!verify(c.table, c.target, plan).ok) continue;
    const i = seed % plan.ops.length;
    if (plan.ops[i].op === 'commit') continue;
    const ops = plan.ops.filter((_, k) => k !== i);
    const mutated: PlanRecords = { ...plan, ops, commit: i < plan.commit ? plan.commit - 1 : plan.commit, lowerBound: 0 };
    const dropped = plan.ops[i];
    if (dropped.op === 'close' && plan.ops.slice(i + 1).some((o) => o.op === 'dup2' && o.to === dropped.fd)) continue;
    checked++;
    if (verify(c.table, c.target, mutated).ok) {
      missed++;
      misses.push(`seed ${seed} op ${i} ${JSON.stringify(plan.ops[i])}`);
    }
  }
  assert.is(missed, 0, `${missed} of ${checked} ops could go unnoticed: ${misses.slice(0, 5).join('; ')}`);
});

test('checkCase reports a case that is not valid input instead of planning it', () => {
  const c = generateCase(7);
  const broken: FuzzCase = { ...c, table: { ...c.table, fds: [...c.table.fds, { ...c.table.fds[0] }] } };
  const outcome = checkCase(broken);
  assert.is(outcome.kind, 'failure');
  assert.match(outcome.kind === 'failure' ? outcome.reason : '', 'appears twice');
});

test.run();
