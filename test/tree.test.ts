// Several processes in one table (docs/fd-table.md, docs/planner.md "Several processes"): a parent
// and its child sharing an inherited file description and a pipe between them (one end in each),
// written by hand as JSON, planned per process with the order across them, and verified by the
// simulator running every process's ops (a fork op copies the parent's fd table). Restore refuses
// such a table in one line until trees are restored.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseTables } from '../src/image/validate.js';
import { O_LARGEFILE, O_RDONLY, O_RDWR, O_WRONLY, type FdTables } from '../src/model/fdtable.js';
import type { PlanTarget } from '../src/model/restore-target.js';
import { PlanImpossible } from '../src/plan/planner.js';
import { planTree, type TreePlan } from '../src/plan/tree.js';
import { SimProcess, SimWorld } from '../src/sim/kernel.js';
import { verifyTree } from '../src/sim/verify.js';
import { readFileSync } from 'node:fs';
import { reap } from '../bridge/spawn.js';
import { O_APPEND } from '../src/model/fdtable.js';
import { cr } from './helpers/cli.js';
import { buildC, withProcess } from './helpers/processes.js';
import { tableJson } from '../src/model/json.js';

const dir = mkdtempSync(join(tmpdir(), 'cr-tree-'));
const LIMIT = { soft: 1024, hard: 4096 };
const bin = (s: string): Buffer => Buffer.from(s);

/**
 * Parent 100 and child 101. Description 1 (a file at offset 7) is the parent's fd 3 and the
 * child's fds 3 and 5: inherited, one offset. Pipe 0: the parent writes (fd 4), the child reads
 * (fd 0), 5 bytes queued. Each has one description of its own: the parent /dev/null at fd 1, the
 * child an eventfd at fd 1.
 */
const TWO = (): FdTables => ({
  descs: [
    { id: 1, kind: 'file', flags: O_RDWR | O_LARGEFILE, path: '/srv/log', offset: 7 },
    { id: 2, kind: 'pipe', flags: O_WRONLY, pipe: 0 },
    { id: 3, kind: 'pipe', flags: O_RDONLY, pipe: 0 },
    { id: 4, kind: 'chr', flags: O_WRONLY | O_LARGEFILE, path: '/dev/null' },
    { id: 5, kind: 'eventfd', flags: O_RDWR, count: 2, semaphore: false },
  ],
  pipes: [{ id: 0, capacity: 65536, data: bin('hello') }],
  processes: [
    { pid: 100, fds: [{ fd: 1, desc: 4, cloexec: false }, { fd: 3, desc: 1, cloexec: false }, { fd: 4, desc: 2, cloexec: true }], rlimit: LIMIT },
    {
      pid: 101,
      parent: 100,
      fds: [{ fd: 0, desc: 3, cloexec: false }, { fd: 1, desc: 5, cloexec: false }, { fd: 3, desc: 1, cloexec: false }, { fd: 5, desc: 1, cloexec: true }],
      rlimit: { soft: 512, hard: 4096 },
    },
  ],
});
const FRESH: PlanTarget = { fds: [0, 1, 2], rlimit: LIMIT, mode: 'fresh' };

function planned(tables: FdTables, target = FRESH): TreePlan {
  const tree = planTree(parseTables(JSON.parse(tableJson(tables))), target);
  const check = verifyTree(tables, target, tree);
  assert.ok(check.ok, `the simulator refused the tree's plan: ${JSON.stringify(check)}\n${JSON.stringify(tree, null, 1)}`);
  return tree;
}

test('two processes: the parent creates the file and the pipe, the child inherits them at fork; verified', () => {
  const tree = planned(TWO());
  const [parent, child] = tree.processes;
  assert.equal(parent!.creates, [1, 2, 3, 4]);
  assert.equal(parent!.pipes, [0]);
  assert.equal(parent!.inherits, []);
  // The read end is the child's only: the parent carries it above its own numbers, then closes it.
  assert.equal(parent!.carries, [{ desc: 3, fd: 5 }]);
  const ops = parent!.plan.ops;
  const fork = ops.findIndex((op) => op.op === 'fork');
  assert.equal(ops[fork], { op: 'fork', pid: 101 });
  assert.equal(ops.slice(fork + 1), [{ op: 'close', fd: 5 }]);
  assert.is(parent!.forksAt, fork);
  assert.equal(ops.filter((op) => op.op === 'write').map((op) => op.op === 'write' && op.bytes), [5]);
  assert.equal(child!.creates, [5]);
  assert.equal(child!.inherits, [{ desc: 1, from: 3 }, { desc: 3, from: 5 }]);
  // The child starts with the parent's table at fork, the two descriptions marked as inherited.
  assert.equal(child!.target.fds, [1, 3, 4, 5]);
  assert.equal(child!.target.inherited, [{ fd: 3, desc: 1, cloexec: false }, { fd: 5, desc: 3, cloexec: true }]);
  // Nothing is opened again in the child: the file stays at 3, is dup'd to 5, the read end moves to 0.
  assert.not.ok(child!.plan.ops.some((op) => op.op === 'open' || op.op === 'pipe2' || op.op === 'write'), JSON.stringify(child!.plan.ops));
  assert.ok(child!.plan.ops.some((op) => op.op === 'create'));
  assert.ok(child!.plan.ops.length >= child!.plan.lowerBound);
});

test('the simulator holds a tree to the image: a child that opens the file again, or is never forked, fails', () => {
  const tables = TWO();
  const good = planned(tables);
  // Planned as if the child's file were a description of its own: one offset no more.
  const split = TWO();
  split.descs.push({ ...(split.descs[0] as Extract<FdTables['descs'][number], { kind: 'file' }>), id: 9 });
  split.processes[1]!.fds = split.processes[1]!.fds.map((f) => (f.desc === 1 ? { ...f, desc: 9 } : f));
  const wrong = verifyTree(tables, FRESH, planTree(split, FRESH));
  assert.not.ok(wrong.ok);
  assert.match((wrong as { reason: string }).reason, /^process 101: fd 3 of process 100 and fd 3 share description 1 in the image but not at the end$/);
  // The parent's plan without its fork.
  const unforked: TreePlan = structuredClone(good);
  unforked.processes[0]!.plan.ops = unforked.processes[0]!.plan.ops.filter((op) => op.op !== 'fork');
  assert.equal(verifyTree(tables, FRESH, unforked), { ok: false, reason: 'process 101: its parent 100 never forks it' });
  // Forked before the parent made the pipe: the child's table is not what its plan assumes.
  const early: TreePlan = structuredClone(good);
  const ops = early.processes[0]!.plan.ops;
  const fork = ops.findIndex((op) => op.op === 'fork');
  ops.splice(fork, 1);
  ops.splice(1, 0, { op: 'fork', pid: 101 });
  const r = verifyTree(tables, FRESH, early);
  assert.not.ok(r.ok);
  assert.match((r as { reason: string }).reason, /^process 101: the fork gives it fds \[[0-9,]*\], its plan assumes \[1,3,4,5\]$/);
});

test('fork in the simulator: the child gets the parent\'s fds on the same descriptions, close-on-exec kept', () => {
  const world = new SimWorld();
  world.add('/srv/log', 'file');
  const parent = new SimProcess(world, LIMIT);
  const [r, w] = parent.pipe2(0);
  const f = parent.open('/srv/log', O_RDWR);
  parent.setfd(f, true);
  const child = parent.fork();
  assert.equal(child.fds(), [r, w, f]);
  assert.is(child.get(f)!.desc, parent.get(f)!.desc);
  assert.is(child.get(f)!.cloexec, true);
  // One description: a seek in one is the other's position too; closing in one leaves the other's.
  child.lseek(f, 42);
  assert.is(parent.get(f)!.desc.offset, 42n);
  child.close(w);
  parent.write(w, Buffer.from('x'));
  assert.is(child.get(r)!.desc.pipe!.bytes().length, 1);
});

// What the simulator's fork encodes, asked of this kernel: after a child seeks, sets O_APPEND
// and closes its copy of a pipe's write end, the parent sees the offset and the flag (one
// description) and still writes through its own copy; the child's copy kept FD_CLOEXEC.
const FORK_FACTS = String.raw`
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
  (void)argc;
  int f = open(argv[1], O_RDWR), p[2];
  if (f < 0 || pipe(p) < 0 || fcntl(f, F_SETFD, FD_CLOEXEC) < 0) return 2;
  pid_t c = fork();
  if (c == 0) {
    lseek(f, 42, SEEK_SET);
    fcntl(f, F_SETFL, O_APPEND);
    close(p[1]);
    _exit(fcntl(f, F_GETFD) == FD_CLOEXEC ? 10 : 11);
  }
  int status;
  if (waitpid(c, &status, 0) != c || !WIFEXITED(status)) return 3;
  FILE *out = fopen(argv[2], "w");
  if (!out) return 4;
  fprintf(out, "offset %ld append %d child-cloexec %d parent-write %ld\n", (long)lseek(f, 0, SEEK_CUR),
          (fcntl(f, F_GETFL) & O_APPEND) != 0, WEXITSTATUS(status) == 10, (long)write(p[1], "x", 1));
  return fclose(out) == 0 ? 0 : 5;
}
`;

test('fork as this kernel does it: one description in both, fds copied with close-on-exec, closes apart', async () => {
  const file = join(dir, 'forked');
  const out = join(dir, 'facts');
  writeFileSync(file, 'x'.repeat(100));
  await withProcess([buildC(FORK_FACTS), file, out], { fds: [] }, (pid) => {
    const status = reap(pid, 10_000);
    assert.equal([status.kind, status.kind === 'exited' ? status.code : status.signal], ['exited', 0]);
  });
  const world = new SimWorld();
  world.add(file, 'file');
  const parent = new SimProcess(world, LIMIT);
  const f = parent.open(file, O_RDWR);
  const [, w] = parent.pipe2(0);
  parent.setfd(f, true);
  const child = parent.fork();
  child.lseek(f, 42);
  child.setfl(f, O_RDWR | O_APPEND);
  child.close(w);
  const sim = `offset ${parent.get(f)!.desc.offset} append ${(parent.get(f)!.desc.flags & O_APPEND) !== 0 ? 1 : 0} ` +
    `child-cloexec ${child.get(f)!.cloexec ? 1 : 0} parent-write ${parent.write(w, Buffer.from('x'))}\n`;
  assert.is(sim, readFileSync(out, 'utf8'));
  assert.is(sim, 'offset 42 append 1 child-cloexec 1 parent-write 1\n');
});

test('siblings sharing what their parent does not hold: the parent carries it; processes with no common ancestor are refused', () => {
  const tables: FdTables = {
    descs: [
      { id: 1, kind: 'chr', flags: O_WRONLY | O_LARGEFILE, path: '/dev/null' },
      { id: 2, kind: 'file', flags: O_RDONLY | O_LARGEFILE, path: '/srv/data', offset: 0 },
    ],
    pipes: [],
    processes: [
      { pid: 10, fds: [{ fd: 0, desc: 1, cloexec: false }], rlimit: LIMIT },
      { pid: 11, parent: 10, fds: [{ fd: 4, desc: 2, cloexec: false }], rlimit: LIMIT },
      { pid: 12, parent: 10, fds: [{ fd: 0, desc: 2, cloexec: false }], rlimit: LIMIT },
    ],
  };
  const tree = planned(tables);
  assert.equal(tree.processes[0]!.carries, [{ desc: 2, fd: 3 }]);
  assert.equal(tree.processes[0]!.plan.ops.slice(-3), [{ op: 'fork', pid: 11 }, { op: 'fork', pid: 12 }, { op: 'close', fd: 3 }]);
  const unrelated = structuredClone(tables);
  delete unrelated.processes[2]!.parent;
  assert.throws(() => planTree(unrelated, FRESH), (err: Error) =>
    err instanceof PlanImpossible && err.message === 'description 2 is held by processes 11 and 12, which have no common ancestor in the image: no fork can give it to both');
});

test('cr plan prints each process\'s plan and the order across them; show lists both; restore refuses a tree in one line', async () => {
  const file = join(dir, 'two.json');
  writeFileSync(file, tableJson(TWO()));
  const r = await cr(['plan', file]);
  assert.is(r.code, 0, r.stderr);
  const out = r.stdout;
  assert.match(out, /^plan: 2 processes, \d+ ops in all for 7 fds, 5 descriptions, 1 pipes$/m);
  assert.match(out, /^process 100 \(a root\): \d+ ops/m);
  assert.match(out, /^ {2}creates descriptions 1, 2, 3, 4 \(pipes 0\)$/m);
  assert.match(out, /^ {2}carries description 3 at fd 5 for its children$/m);
  assert.match(out, /^process 101 \(child of 100, forked at op \d+ of 100\): \d+ ops/m);
  assert.match(out, /^ {2}inherits description 1 at fd 3, description 3 at fd 5$/m);
  assert.match(out, /^ +\d+ {2}fork\(\) = 101 {4}child process$/m);
  assert.match(out, /^verified: the simulator ends with exactly the image's table in every process/m);
  const json = await cr(['plan', file, '--json']);
  const parsed = JSON.parse(json.stdout) as { processes: Array<{ pid: number; ops: unknown[] }>; verified: boolean };
  assert.equal(parsed.processes.map((p) => p.pid), [100, 101]);
  assert.ok(parsed.verified);

  const shown = await cr(['show', file]);
  assert.is(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /^process 101, child of 100: 4 fds$/m);
  assert.match(shown.stdout, /^description 1 \(file\) is shared by processes 100, 101$/m);
  assert.match(shown.stdout, /^pipe 0: 5 B of 64 KiB: "hello"$/m);
  const same = await cr(['diff', file, file]);
  assert.is(same.code, 0, same.stdout);
  assert.match(same.stdout, /same: .* \(2 processes, 7 fds, 5 descriptions, 1 pipe\)/);

  const restored = await cr(['restore', file, '--', 'true']);
  assert.equal([restored.code, restored.stderr], [2, `cr restore: the image holds 2 processes: restoring an fd table takes one (restore IMAGE restarts a tree from a whole-process image)\n`]);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
