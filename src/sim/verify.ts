// Runs a plan on a simulated target and says whether it rebuilds the image exactly.
// The target starts with its own fds (files the simulator knows nothing of) and its
// own RLIMIT_NOFILE; every op goes through the simulated kernel (kernel.ts), and the
// final fd table must equal the image up to renaming of descriptions and pipes.
// A tree's plan (verifyTree) runs each process's ops in its own simulated process, a child
// made by its parent's fork op; at the end every process must hold its own table, and one
// description of the image must be one description of the simulation in every process.
import { kindOf } from '../kinds/registry.js';
import { pairOf, pipeOf, viewOf, type Desc, type FdTable, type FdTables, type Pipe } from '../model/fdtable.js';
import type { Op, Plan } from '../plan/ops.js';
import type { TreePlan } from '../plan/tree.js';
import type { PlanTarget } from '../model/restore-target.js';
import { flagNames } from '../model/flags.js';
import { SimDesc, SimError, SimPipe, SimProcess, SimWorld } from './kernel.js';
import { ByKey } from '../model/by-key.js';

export type VerifyResult = { ok: true } | { ok: false; reason: string; op?: number };

class Failure extends Error {
  constructor(
    readonly reason: string,
    readonly op?: number,
  ) {
    super(reason);
  }
}

/** The simulated world of an image: every path it names, as the kind it names it. */
export function worldOf(table: { descs: Desc[] }): SimWorld {
  const world = new SimWorld();
  for (const d of table.descs) {
    const node = kindOf(d).node?.(d);
    if (node) world.add(node.path, node.type);
  }
  return world;
}

/**
 * What the image's descriptions and pipes are in the simulation, kept across the processes of a
 * tree (one description, one object, whoever holds it) and which pipes' bytes were written.
 */
class Identity {
  /** image description id -> what it is at the end, with where it was first seen (for messages) */
  readonly descMap: ByKey<Seen>;
  /** the same records, by simulated description (its serial: one world numbers them all) */
  readonly descBack = new ByKey<Seen>(1 << 24);
  readonly pipeMap: ByKey<{ sim: SimPipe; desc: number }>;
  /** by simulated pipe (its serial) */
  readonly pipeBack = new ByKey<{ id: number; desc: number }>(1 << 24);
  /** pipes whose bytes were written */
  readonly written: ByKey<true>;
  /**
   * Each description's own checks, run once every process is compared: one may name another (an
   * epoll its targets, a pty slave its master) held only by a process compared later. Kept as a
   * record per description rather than a closure (a table may hold 100,000).
   */
  readonly deferred: Deferred[] = [];
  readonly pairMap = new Map<number, { sim: object; desc: number }>();
  readonly pairBack = new Map<object, { id: number; desc: number }>();

  constructor(objects: { descs: Desc[]; pipes: Pipe[] }) {
    this.descMap = ByKey.sized(objects.descs.length);
    this.pipeMap = ByKey.sized(objects.pipes.length);
    this.written = ByKey.sized(objects.pipes.length);
  }
}

/** An image description and the simulated one it is at the end, first seen at `fd` of `who`. */
interface Seen {
  id: number;
  sim: SimDesc;
  fd: number;
  who: string;
}

/** A description's own check: `d` is at `fd` of `who` as `sim` at the end. */
interface Deferred {
  d: Desc;
  sim: SimDesc;
  fd: number;
  who: string;
}

function runDeferred(shared: Identity): void {
  const idOf = (s: object): number | undefined => (s instanceof SimDesc ? shared.descBack.get(s.serial)?.id : undefined);
  for (const { d, sim, fd, who } of shared.deferred) {
    const differs = kindOf(d).simCheck(d, sim, idOf);
    if (differs !== null) throw new Failure(`${who}fd ${fd} (description ${d.id}) ${differs}`);
  }
}

function outcome(body: () => void): VerifyResult {
  try {
    body();
    return { ok: true };
  } catch (err) {
    if (err instanceof Failure) return err.op === undefined ? { ok: false, reason: err.reason } : { ok: false, reason: err.reason, op: err.op };
    throw err;
  }
}

export function verify(table: FdTable, target: PlanTarget, plan: Plan): VerifyResult {
  return outcome(() => {
    const proc = new SimProcess(worldOf(table), target.rlimit);
    const targetFds = new Set(target.fds);
    for (const fd of targetFds) proc.adoptForeign(fd);
    const shared = new Identity(table);
    run(table, target, plan, proc, shared, () => {
      throw new Failure('a plan of one process forks');
    });
    compare(table, target, proc, targetFds, shared, '');
    runDeferred(shared);
  });
}

/**
 * Check a tree's plan: each root starts as `target` says, each child as its parent's fork
 * left it; after every process has run its ops, each holds exactly its table, and the processes
 * share exactly the descriptions (and pipes) the image says they share. A failure names the
 * process, and `op` is the op's index within that process's plan.
 */
export function verifyTree(tables: FdTables, target: PlanTarget, tree: TreePlan): VerifyResult {
  return outcome(() => {
    const n = tables.processes.length;
    if (tree.processes.length !== n) throw new Failure(`the plan has ${tree.processes.length} processes, the image ${n}`);
    const world = worldOf(tables);
    const shared = new Identity(tables);
    const sims = new Map<number, SimProcess>();
    const ran: Array<{ table: FdTable; target: PlanTarget; proc: SimProcess; who: string }> = [];
    tables.processes.forEach((image, i) => {
      const p = tree.processes[i]!;
      const who = `process ${image.pid}: `;
      if (p.pid !== image.pid) throw new Failure(`plan ${i} is for process ${p.pid}, the image's process ${i} is ${image.pid}`);
      let proc: SimProcess;
      const targetFds = new Set(p.target.fds);
      if (image.parent === undefined) {
        proc = new SimProcess(world, target.rlimit);
        for (const fd of target.fds) proc.adoptForeign(fd);
      } else {
        const forked = sims.get(image.pid);
        if (forked === undefined) throw new Failure(`${who}its parent ${image.parent} never forks it`);
        proc = forked;
        // What the plan assumed the child starts with must be what the fork gave it.
        const have = proc.fds().join(',');
        if (have !== [...targetFds].sort((a, b) => a - b).join(',')) {
          throw new Failure(`${who}the fork gives it fds [${have}], its plan assumes [${[...targetFds].join(',')}]`);
        }
      }
      const table = viewOf(tables, i);
      const children = new Set(tables.processes.filter((c) => c.parent === image.pid).map((c) => c.pid));
      try {
        run(tables, p.target, p.plan, proc, shared, (child, op) => {
          if (!children.has(child)) throw new Failure(`op ${op}: forks ${child}, which is not a child of ${image.pid} in the image`, op);
          if (sims.has(child)) throw new Failure(`op ${op}: forks ${child} a second time`, op);
          sims.set(child, proc.fork());
        });
      } catch (err) {
        if (err instanceof Failure) throw new Failure(who + err.reason, err.op);
        throw err;
      }
      ran.push({ table, target: p.target, proc, who });
    });
    for (const r of ran) {
      try {
        compare(r.table, r.target, r.proc, new Set(r.target.fds), shared, r.who);
      } catch (err) {
        if (err instanceof Failure) throw new Failure(r.who + err.reason, err.op);
        throw err;
      }
    }
    runDeferred(shared);
  });
}

function isInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v);
}

function describeOp(op: Op): string {
  return JSON.stringify(op);
}

/** Op fields the planner must fill with integers (fds, flags, sizes). */
const INT_FIELDS: Record<Op['op'], string[]> = {
  pipe2: ['flags', 'pipe'],
  open: ['desc', 'via', 'flags', 'fd'],
  dup2: ['from', 'to'],
  dupfd: ['from', 'min', 'fd'],
  close: ['fd'],
  setfl: ['fd', 'flags'],
  setfd: ['fd'],
  setpipesz: ['fd', 'size'],
  lseek: ['fd'],
  create: ['desc', 'fd'],
  link: ['desc', 'item', 'fd'],
  pty: ['desc', 'lowest', 'fd'],
  socketpair: [],
  write: ['fd', 'pipe', 'bytes'],
  prlimit: ['soft', 'hard'],
  fork: ['pid'],
  commit: [],
};

function checkShape(op: Op, i: number): void {
  const name = op?.op;
  const fields = typeof name === 'string' && Object.hasOwn(INT_FIELDS, name) ? INT_FIELDS[name] : undefined;
  if (!fields) throw new Failure(`op ${i}: unknown op ${JSON.stringify(op)}`, i);
  const record = op as unknown as Record<string, unknown>;
  for (const f of fields) {
    if (!isInt(record[f])) throw new Failure(`op ${i} (${describeOp(op)}): ${f} is not an integer`, i);
  }
  if (op.op === 'lseek' && !(typeof op.offset === 'string' && /^(0|[1-9][0-9]{0,18})$/.test(op.offset))) {
    throw new Failure(`op ${i} (${describeOp(op)}): offset is not a decimal position`, i);
  }
  if ((op.op === 'dup2' || op.op === 'dupfd' || op.op === 'setfd' || op.op === 'create' || op.op === 'socketpair') && typeof op.cloexec !== 'boolean') {
    throw new Failure(`op ${i} (${describeOp(op)}): cloexec is not a boolean`, i);
  }
  if (op.op === 'socketpair' && !(Array.isArray(op.fds) && op.fds.length === 2 && op.fds.every(isInt) && Array.isArray(op.descs) && op.descs.length === 2 && op.descs.every(isInt))) {
    throw new Failure(`op ${i} (${describeOp(op)}): fds and descs are not two integers each`, i);
  }
  if (op.op === 'pipe2' && !(Array.isArray(op.fds) && op.fds.length === 2 && op.fds.every(isInt))) {
    throw new Failure(`op ${i} (${describeOp(op)}): fds is not two integers`, i);
  }
  if (op.op === 'open' && typeof op.path !== 'string') throw new Failure(`op ${i} (${describeOp(op)}): path is not a string`, i);
}

/**
 * Run `plan` in `proc`. `objects` are the descriptions and pipes its ops may name: in a tree, all
 * of the image's (a process creates and writes what only its descendants hold).
 */
function run(objects: { descs: Desc[]; pipes: Pipe[] }, target: PlanTarget, plan: Plan, proc: SimProcess, shared: Identity, fork: (pid: number, op: number) => void): void {
  const ops = plan.ops;
  if (!Array.isArray(ops)) throw new Failure('plan.ops is not an array');
  let commits = 0;
  let commitAt = -1;
  for (let i = 0; i < ops.length; i++) {
    if (ops[i]?.op === 'commit') {
      commits++;
      commitAt = i;
    }
  }
  if (commits !== 1) throw new Failure(`plan has ${commits} commit markers, not 1`);
  if (plan.commit !== commitAt) throw new Failure(`plan.commit is ${plan.commit} but the commit marker is op ${commitAt}`);
  const syscalls = ops.length - 1;
  if (!isInt(plan.lowerBound) || plan.lowerBound < 0 || plan.lowerBound > syscalls) {
    throw new Failure(`plan.lowerBound ${plan.lowerBound} is not a bound on its own ${syscalls} syscalls`);
  }

  const targetFds = new Set(target.fds);
  const pipes = ByKey.sized<Pipe>(objects.pipes.length);
  for (const p of objects.pipes) pipes.set(p.id, p);
  const descs = ByKey.sized<Desc>(objects.descs.length);
  for (const d of objects.descs) descs.set(d.id, d);
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    checkShape(op, i);
    if (i < plan.commit) checkRollback(op, i, targetFds, proc);
    try {
      if (op.op === 'fork') fork(op.pid, i);
      else apply(op, i, proc, pipes, shared.written, descs);
    } catch (err) {
      if (err instanceof SimError) throw new Failure(`op ${i} (${describeOp(op)}): ${err.message}`, i);
      throw err;
    }
  }
}

/**
 * Before the commit a plan may only add fds at numbers the target does not use, so
 * that closing what it made undoes it. Changing the soft limit is allowed (rollback
 * puts the old one back); lowering the hard limit could never be undone.
 */
function checkRollback(op: Op, i: number, targetFds: Set<number>, proc: SimProcess): void {
  let touched: number | undefined;
  switch (op.op) {
    case 'close':
    case 'setfl':
    case 'setfd':
    case 'setpipesz':
    case 'lseek':
    case 'write':
      touched = op.fd;
      break;
    case 'dup2':
      touched = op.to;
      break;
    case 'prlimit':
      if (op.hard !== proc.rlimit.hard) throw new Failure(`op ${i} (${describeOp(op)}): changes the hard limit before the commit`, i);
      return;
    default:
      return;
  }
  if (targetFds.has(touched)) throw new Failure(`op ${i} (${describeOp(op)}): touches the target's fd ${touched} before the commit`, i);
}

/** Op i planned `planned` where the kernel gave `got` (an fd, or a pair of them): they must be the same. */
function expect(op: Op, i: number, what: string, planned: number | number[], got: number | number[]): void {
  const same = Array.isArray(planned) && Array.isArray(got) ? planned[0] === got[0] && planned[1] === got[1] : planned === got;
  if (!same) {
    throw new Failure(`op ${i} (${describeOp(op)}): the plan expects ${what} ${JSON.stringify(planned)}, the kernel gives ${JSON.stringify(got)}`, i);
  }
}

function apply(op: Op, i: number, proc: SimProcess, pipes: ByKey<Pipe>, written: ByKey<true>, descs: ByKey<Desc>): void {
  switch (op.op) {
    case 'pipe2':
      expect(op, i, 'fds', op.fds, proc.pipe2(op.flags));
      return;
    case 'open':
      if (op.via >= 0 && op.path !== `/proc/self/fd/${op.via}`) {
        throw new Failure(`op ${i} (${describeOp(op)}): via ${op.via} but path is not /proc/self/fd/${op.via}`, i);
      }
      expect(op, i, 'fd', op.fd, proc.open(op.path, op.flags));
      return;
    case 'dup2':
      if (op.cloexec) proc.dup3(op.from, op.to, true);
      else proc.dup2(op.from, op.to);
      return;
    case 'dupfd':
      expect(op, i, 'fd', op.fd, proc.dupfd(op.from, op.min, op.cloexec));
      return;
    case 'close':
      proc.close(op.fd);
      return;
    case 'setfl':
      proc.setfl(op.fd, op.flags);
      return;
    case 'setfd':
      proc.setfd(op.fd, op.cloexec);
      return;
    case 'setpipesz':
      proc.setPipeSize(op.fd, op.size);
      return;
    case 'lseek':
      proc.lseek(op.fd, BigInt(op.offset));
      return;
    case 'create': {
      const d = descs.get(op.desc);
      const make = d === undefined ? undefined : kindOf(d).simCreate;
      if (d === undefined || make === undefined) throw new Failure(`op ${i} (${describeOp(op)}): the image has no description ${op.desc} its kind makes with one call`, i);
      expect(op, i, 'fd', op.fd, make(proc, d, op.cloexec));
      return;
    }
    case 'link': {
      const d = descs.get(op.desc);
      const link = d === undefined ? undefined : kindOf(d).simLink;
      if (d === undefined || link === undefined || !(op.item < (kindOf(d).links?.(d).length ?? 0))) {
        throw new Failure(`op ${i} (${describeOp(op)}): the image has no description ${op.desc} with a link ${op.item}`, i);
      }
      link(proc, d, op.item, op.fd);
      return;
    }
    case 'pty': {
      const d = descs.get(op.desc);
      const prepare = d === undefined ? undefined : kindOf(d).simPrepare;
      if (d === undefined || prepare === undefined) throw new Failure(`op ${i} (${describeOp(op)}): the image has no description ${op.desc} whose object is made first`, i);
      prepare(proc, d, op.lowest, op.fd, op.done);
      if (!op.done) proc.hold(op.desc, op.fd);
      return;
    }
    case 'socketpair': {
      const ends = op.descs.map((id) => (id < 0 ? undefined : descs.get(id)));
      const d = ends[0] ?? ends[1];
      const make = d === undefined ? undefined : kindOf(d).simCreatePair;
      if (d === undefined || make === undefined || ends.some((e, k) => e === undefined && op.descs[k]! >= 0)) {
        throw new Failure(`op ${i} (${describeOp(op)}): the image has no pair of descriptions ${op.descs.join(', ')} their kind makes with one call`, i);
      }
      expect(op, i, 'fds', op.fds, make(proc, ends as never, op.cloexec));
      return;
    }
    case 'write': {
      const pipe = pipes.get(op.pipe);
      if (!pipe) throw new Failure(`op ${i} (${describeOp(op)}): the image has no pipe ${op.pipe}`, i);
      if (written.has(op.pipe)) throw new Failure(`op ${i} (${describeOp(op)}): pipe ${op.pipe}'s bytes are written a second time`, i);
      written.set(op.pipe, true);
      const bytes = pipe.data;
      if (op.bytes !== bytes.length) throw new Failure(`op ${i} (${describeOp(op)}): pipe ${op.pipe} has ${bytes.length} bytes, not ${op.bytes}`, i);
      let at = 0;
      for (const n of pipe.packets ?? [bytes.length]) {
        proc.write(op.fd, bytes.subarray(at, at + n));
        at += n;
      }
      return;
    }
    case 'prlimit':
      proc.prlimit(op.soft, op.hard);
      return;
    case 'commit':
    case 'fork': // run() makes the child
      return;
    default: {
      const never: never = op;
      throw new Failure(`op ${i}: unknown op ${JSON.stringify(never)}`, i);
    }
  }
}

/** How a failure names a description of the image: the first fd this process holds it at. */
function where(fd: number, id: number): string {
  return `fd ${fd} (description ${id})`;
}

/** Does the simulated process now hold exactly the image (plus, in 'into' mode, the target's other fds)? */
function compare(table: FdTable, target: PlanTarget, proc: SimProcess, targetFds: Set<number>, shared: Identity, who: string): void {
  const descs = ByKey.sized<Desc>(table.descs.length);
  for (const d of table.descs) descs.set(d.id, d);
  const imageFds = ByKey.sized<true>(table.fds.length);
  const { descMap, descBack } = shared;
  // Descriptions this process reaches, at the first fd it holds each at, in the order first held:
  // their fields are checked here, once per process.
  const mineIds: number[] = [];
  const mineFds: number[] = [];
  const mine = ByKey.sized<true>(table.descs.length);
  // In a tree, an fd of another process is named with its process.
  const pair = (seen: Seen, fd: number): string =>
    seen.who === who ? `fds ${seen.fd} and ${fd}` : `fd ${seen.fd} of ${seen.who.replace(/: $/, '')} and fd ${fd}`;
  for (const f of table.fds) {
    imageFds.set(f.fd, true);
    const entry = proc.get(f.fd);
    if (!entry) throw new Failure(`fd ${f.fd} is not open at the end`);
    if (entry.cloexec !== f.cloexec) throw new Failure(`fd ${f.fd} has close-on-exec ${entry.cloexec}, the image says ${f.cloexec}`);
    const sim = entry.desc;
    if (sim.kind === 'foreign') throw new Failure(`fd ${f.fd} still refers to the target's own fd ${sim.origin}'s file`);
    const mapped = descMap.get(f.desc);
    if (mapped === undefined) {
      const back = descBack.get(sim.serial);
      if (back) throw new Failure(`${pair(back, f.fd)} share a description at the end but not in the image`);
      const seen: Seen = { id: f.desc, sim, fd: f.fd, who };
      descMap.set(f.desc, seen);
      descBack.set(sim.serial, seen);
    } else if (mapped.sim !== sim) {
      throw new Failure(`${pair(mapped, f.fd)} share description ${f.desc} in the image but not at the end`);
    }
    if (!mine.has(f.desc)) {
      mine.set(f.desc, true);
      mineIds.push(f.desc);
      mineFds.push(f.fd);
    }
  }
  let expected = imageFds.size;
  if (target.mode === 'into') {
    for (const fd of targetFds) {
      if (imageFds.has(fd)) continue;
      const entry = proc.get(fd);
      if (!entry) throw new Failure(`the target's fd ${fd} was closed`);
      if (entry.desc.origin !== fd) throw new Failure(`the target's fd ${fd} no longer refers to its own file`);
      if (entry.cloexec) throw new Failure(`the target's fd ${fd} had its close-on-exec flag changed`);
      expected++;
    }
  }
  if (proc.size !== expected) {
    const extra = proc.fds().find((fd) => !imageFds.has(fd) && !(target.mode === 'into' && targetFds.has(fd)));
    throw new Failure(`fd ${extra} is open at the end but is not in the image`);
  }

  const pipes = ByKey.sized<Pipe>(table.pipes.length);
  for (const p of table.pipes) pipes.set(p.id, p);
  const { pipeMap, pipeBack, pairMap, pairBack } = shared;
  const minePipes: number[] = [];
  const minePipe = ByKey.sized<true>(table.pipes.length);
  for (let k = 0; k < mineIds.length; k++) {
    const id = mineIds[k]!;
    const fd = mineFds[k]!;
    const d = descs.get(id)!;
    const sim = descMap.get(id)!.sim;
    if (sim.kind !== d.kind) throw new Failure(`${where(fd, id)} is a ${sim.kind}, the image says ${d.kind}`);
    if (sim.flags !== d.flags) throw new Failure(`${where(fd, id)} has flags ${flagNames(sim.flags)}, the image says ${flagNames(d.flags)}`);
    // The path a description was opened by (a deleted file's is where it was, not a node).
    const path = kindOf(d).node?.(d)?.path;
    if (path !== undefined && sim.node?.path !== path) throw new Failure(`${where(fd, id)} is ${JSON.stringify(sim.node?.path)}, the image says ${JSON.stringify(path)}`);
    // Judged once every process is compared: a description may name another (an epoll its
    // targets, a pty slave its master) held only by a process compared later.
    shared.deferred.push({ d, sim, fd, who });
    const pair = pairOf(d);
    if (pair !== undefined) {
      const simPair = sim.pair;
      const seen = pairMap.get(pair);
      if (seen && seen.sim !== simPair) throw new Failure(`descriptions ${seen.desc} and ${id} are ends of socket pair ${pair} in the image but not at the end`);
      const back = simPair ? pairBack.get(simPair) : undefined;
      if (back && back.id !== pair) throw new Failure(`descriptions ${back.desc} and ${id} are ends of one socket pair at the end but of pairs ${back.id} and ${pair} in the image`);
      if (!simPair) throw new Failure(`${where(fd, id)} is not an end of a socket pair at the end`);
      if (!seen) pairMap.set(pair, { sim: simPair, desc: id });
      if (!back) pairBack.set(simPair, { id: pair, desc: id });
    }
    const pipe = pipeOf(d);
    if (pipe === undefined) continue;
    const simPipe = sim.pipe!;
    const mapped = pipeMap.get(pipe);
    if (mapped && mapped.sim !== simPipe) throw new Failure(`descriptions ${mapped.desc} and ${id} are on pipe ${pipe} in the image but on different pipes at the end`);
    const back = pipeBack.get(simPipe.serial);
    if (back && back.id !== pipe) throw new Failure(`descriptions ${back.desc} and ${id} are on one pipe at the end but on pipes ${back.id} and ${pipe} in the image`);
    if (!mapped) pipeMap.set(pipe, { sim: simPipe, desc: id });
    if (!back) pipeBack.set(simPipe.serial, { id: pipe, desc: id });
    if (!minePipe.has(pipe)) {
      minePipe.set(pipe, true);
      minePipes.push(pipe);
    }
  }
  for (const id of minePipes) {
    const sim = pipeMap.get(id)!.sim;
    const p = pipes.get(id)!;
    if (sim.capacity !== p.capacity) throw new Failure(`pipe ${id} has capacity ${sim.capacity}, the image says ${p.capacity}`);
    const want = p.data;
    // Most pipes of a big table are empty at both ends: nothing to gather or compare.
    if (want.length === 0 && sim.buffers.length === 0 && p.packets === undefined) continue;
    const got = sim.bytes();
    if (Buffer.compare(want, got) !== 0) throw new Failure(`pipe ${id} holds ${got.length} bytes that are not the image's ${want.length}`);
    const packets = sim.buffers.filter((b) => b.packet).map((b) => b.len);
    if (p.packets === undefined) {
      if (packets.length > 0) throw new Failure(`pipe ${id} holds ${packets.length} packets, the image says a byte stream`);
    } else if (packets.length !== sim.buffers.length || packets.join(',') !== p.packets.join(',')) {
      throw new Failure(`pipe ${id} holds packets [${packets.join(',')}] in ${sim.buffers.length} buffers, the image says [${p.packets.join(',')}]`);
    }
  }

  const hard = Math.min(table.rlimit.hard, target.rlimit.hard);
  const soft = Math.min(table.rlimit.soft, hard);
  const got = proc.rlimit;
  if (got.soft !== soft || got.hard !== hard) throw new Failure(`RLIMIT_NOFILE is ${got.soft}/${got.hard} at the end, not ${soft}/${hard}`);
}
