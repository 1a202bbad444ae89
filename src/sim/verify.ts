// Runs a plan on a simulated target and says whether it rebuilds the image exactly.
// The target starts with its own fds (files the simulator knows nothing of) and its
// own RLIMIT_NOFILE; every op goes through the simulated kernel (kernel.ts), and the
// final fd table must equal the image up to renaming of descriptions and pipes.
// A tree's plan (verifyTree) runs each process's ops in its own simulated process, a child
// made by its parent's fork op; at the end every process must hold its own table, and one
// description of the image must be one description of the simulation in every process.
import { kindOf } from '../kinds/registry.js';
import { pairOf, pipeOf, viewOf, type Desc, type Fd, type FdTable, type FdTables, type Pipe } from '../model/fdtable.js';
import { fits, K_CLOSE, K_COMMIT, K_CREATE, K_DUP2, K_DUPFD, K_FORK, K_LINK, K_LSEEK, K_OPEN, K_PIPE2, K_PRLIMIT, K_PTY, K_SETFD, K_SETFL, K_SETPIPESZ, K_SOCKETPAIR, K_WRITE, OpWords, Plan, STRIDE, type Op, type PlanRecords } from '../plan/ops.js';
import type { TreePlan } from '../plan/tree.js';
import type { PlanTarget } from '../model/restore-target.js';
import { flagNames } from '../model/flags.js';
import { SimDesc, SimError, SimPipe, SimProcess, SimWorld } from './kernel.js';
import { IntByKey } from '../model/by-key.js';

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
  /**
   * image description id -> the serial of what it is at the end (the one world numbers every
   * simulated object: equal serials, one object), and the fd and process (an index into `whos`)
   * it was first seen at (for messages). Numbers in typed arrays, not objects in JS arrays: a
   * table of 100,000 would give the garbage collector arrays of 100,000 pointers to scan.
   */
  readonly descMap: IntByKey;
  readonly seenFd: IntByKey;
  readonly seenWho: IntByKey;
  /** how each process is named in a message, by the index seenWho holds */
  readonly whos: string[] = [];
  /** simulated description (its serial) -> image description id */
  readonly descBack = new IntByKey(1 << 24);
  /** image pipe id -> the serial of what it is at the end, and the description it was first seen through */
  readonly pipeMap: IntByKey;
  readonly pipeDesc: IntByKey;
  /** simulated pipe (its serial) -> image pipe id, and the description it was first seen through */
  readonly pipeBack = new IntByKey(1 << 24);
  readonly pipeBackDesc = new IntByKey(1 << 24);
  /** pipes whose bytes were written (1) */
  readonly written: IntByKey;
  /**
   * Each description's own checks, run once every process is compared: one may name another (an
   * epoll its targets, a pty slave its master) held only by a process compared later. Kept as
   * columns (description, its simulated one, the fd and process it is at), not a record or a
   * closure per description (a table may hold 100,000).
   */
  readonly deferredDescs: Desc[] = [];
  readonly deferredSims: SimDesc[] = [];
  readonly deferredFds: number[] = [];
  readonly deferredWho: string[] = [];
  readonly pairMap = new Map<number, { sim: object; desc: number }>();
  readonly pairBack = new Map<object, { id: number; desc: number }>();

  constructor(objects: { descs: Desc[]; pipes: Pipe[] }) {
    this.descMap = IntByKey.sized(objects.descs.length);
    this.seenFd = IntByKey.sized(objects.descs.length);
    this.seenWho = IntByKey.sized(objects.descs.length);
    this.pipeMap = IntByKey.sized(objects.pipes.length);
    this.pipeDesc = IntByKey.sized(objects.pipes.length);
    this.written = IntByKey.sized(objects.pipes.length);
  }

  /** The index seenWho keeps for the process named `who`. */
  whoIndex(who: string): number {
    const at = this.whos.indexOf(who);
    return at >= 0 ? at : this.whos.push(who) - 1;
  }
}

/** Image id -> position in `list` (each id once: validation refused a table with an id twice). */
function positions(list: ReadonlyArray<{ id: number }>): IntByKey {
  const at = IntByKey.sized(list.length);
  for (let i = 0; i < list.length; i++) at.set(list[i]!.id, i);
  return at;
}

/** A list of the image's objects by id, its positions made on the first lookup. */
class ById<T extends { id: number }> {
  private at: IntByKey | undefined;
  constructor(private readonly list: readonly T[]) {}

  get(id: number): T | undefined {
    const at = (this.at ??= positions(this.list)).get(id);
    return at === -1 ? undefined : this.list[at];
  }
}

function runDeferred(shared: Identity): void {
  const idOf = (s: object): number | undefined => {
    const id = s instanceof SimDesc ? shared.descBack.get(s.serial) : -1;
    return id === -1 ? undefined : id;
  };
  const { deferredDescs, deferredSims, deferredFds, deferredWho } = shared;
  for (let k = 0; k < deferredDescs.length; k++) {
    const d = deferredDescs[k]!;
    const differs = kindOf(d).simCheck(d, deferredSims[k]!, idOf);
    if (differs !== null) throw new Failure(`${deferredWho[k]!}fd ${deferredFds[k]!} (description ${d.id}) ${differs}`);
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

export function verify(table: FdTable, target: PlanTarget, plan: Plan | PlanRecords): VerifyResult {
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

/** A plan given as records (written by hand): each op must have the shape its kind says, its integers in 32 bits. */
function checkShape(op: Op, i: number): void {
  const name = op?.op;
  const fields = typeof name === 'string' && Object.hasOwn(INT_FIELDS, name) ? INT_FIELDS[name] : undefined;
  if (!fields) throw new Failure(`op ${i}: unknown op ${JSON.stringify(op)}`, i);
  const record = op as unknown as Record<string, unknown>;
  for (const f of fields) {
    if (!isInt(record[f])) throw new Failure(`op ${i} (${JSON.stringify(op)}): ${f} is not an integer`, i);
    if (!fits(record[f] as number)) throw new Failure(`op ${i} (${JSON.stringify(op)}): ${f} is not a 32-bit integer`, i);
  }
  if (op.op === 'lseek' && !(typeof op.offset === 'string' && /^(0|[1-9][0-9]{0,18})$/.test(op.offset))) {
    throw new Failure(`op ${i} (${JSON.stringify(op)}): offset is not a decimal position`, i);
  }
  if ((op.op === 'dup2' || op.op === 'dupfd' || op.op === 'setfd' || op.op === 'create' || op.op === 'socketpair') && typeof op.cloexec !== 'boolean') {
    throw new Failure(`op ${i} (${JSON.stringify(op)}): cloexec is not a boolean`, i);
  }
  if (op.op === 'socketpair' && !(Array.isArray(op.fds) && op.fds.length === 2 && op.fds.every(isInt) && op.fds.every(fits) && Array.isArray(op.descs) && op.descs.length === 2 && op.descs.every(isInt) && op.descs.every(fits))) {
    throw new Failure(`op ${i} (${JSON.stringify(op)}): fds and descs are not two integers each`, i);
  }
  if (op.op === 'pipe2' && !(Array.isArray(op.fds) && op.fds.length === 2 && op.fds.every(isInt) && op.fds.every(fits))) {
    throw new Failure(`op ${i} (${JSON.stringify(op)}): fds is not two integers`, i);
  }
  if (op.op === 'open' && typeof op.path !== 'string') throw new Failure(`op ${i} (${JSON.stringify(op)}): path is not a string`, i);
}

/**
 * A plan's ops as words, how each is named in a failure (as its record, in JSON), and, for a plan
 * given as records, the first op whose shape is wrong: the check stops there when it reaches it,
 * as it would have at that op.
 */
class Checked {
  constructor(
    readonly ops: OpWords,
    private readonly records: readonly Op[] | undefined,
    readonly badAt = -1,
    readonly bad?: Failure,
  ) {}

  describe(i: number): string {
    return JSON.stringify(this.records === undefined ? this.ops.op(i) : this.records[i]);
  }
}

function wordsOf(plan: Plan | PlanRecords): Checked {
  if (plan instanceof Plan && !plan.edited) return new Checked(plan.words, undefined);
  const records = plan.ops;
  if (!Array.isArray(records)) throw new Failure('plan.ops is not an array');
  const ops = new OpWords(records.length);
  for (let i = 0; i < records.length; i++) {
    try {
      checkShape(records[i]!, i);
    } catch (err) {
      if (err instanceof Failure) return new Checked(ops, records, i, err);
      throw err;
    }
    ops.pushOp(records[i]!);
  }
  return new Checked(ops, records);
}

/**
 * Run `plan` in `proc`. `objects` are the descriptions and pipes its ops may name: in a tree, all
 * of the image's (a process creates and writes what only its descendants hold).
 */
function run(objects: { descs: Desc[]; pipes: Pipe[] }, target: PlanTarget, plan: Plan | PlanRecords, proc: SimProcess, shared: Identity, fork: (pid: number, op: number) => void): void {
  const words = plan instanceof Plan && !plan.edited;
  if (!words && !Array.isArray(plan.ops)) throw new Failure('plan.ops is not an array');
  const length = words ? plan.length : plan.ops.length;
  let commits = 0;
  let commitAt = -1;
  if (words) {
    const ops = plan.words;
    for (let i = ops.find(K_COMMIT); i >= 0; i = ops.find(K_COMMIT, i + 1)) {
      commits++;
      commitAt = i;
    }
  } else {
    for (let i = 0; i < length; i++) {
      if (plan.ops[i]?.op === 'commit') {
        commits++;
        commitAt = i;
      }
    }
  }
  if (commits !== 1) throw new Failure(`plan has ${commits} commit markers, not 1`);
  if (plan.commit !== commitAt) throw new Failure(`plan.commit is ${plan.commit} but the commit marker is op ${commitAt}`);
  const syscalls = length - 1;
  if (!isInt(plan.lowerBound) || plan.lowerBound < 0 || plan.lowerBound > syscalls) {
    throw new Failure(`plan.lowerBound ${plan.lowerBound} is not a bound on its own ${syscalls} syscalls`);
  }

  const checked = wordsOf(plan);
  const ops = checked.ops;
  const targetFds = new Set(target.fds);
  const pipes = new ById(objects.pipes);
  const descs = new ById(objects.descs);
  for (let i = 0; i < length; i++) {
    if (i === checked.badAt) throw checked.bad!;
    if (i < plan.commit) checkRollback(checked, i, targetFds, proc);
    try {
      if (ops.kind(i) === K_FORK) fork(ops.field(i, 1), i);
      else apply(checked, i, proc, pipes, shared.written, descs);
    } catch (err) {
      if (err instanceof SimError) throw new Failure(`op ${i} (${checked.describe(i)}): ${err.message}`, i);
      throw err;
    }
  }
}

/**
 * Before the commit a plan may only add fds at numbers the target does not use, so
 * that closing what it made undoes it. Changing the soft limit is allowed (rollback
 * puts the old one back); lowering the hard limit could never be undone.
 */
function checkRollback(checked: Checked, i: number, targetFds: Set<number>, proc: SimProcess): void {
  const ops = checked.ops;
  let touched: number;
  switch (ops.kind(i)) {
    case K_CLOSE:
    case K_SETFL:
    case K_SETFD:
    case K_SETPIPESZ:
    case K_LSEEK:
    case K_WRITE:
    case K_DUP2: // its second field: the number it lands at
      touched = ops.field(i, ops.kind(i) === K_DUP2 ? 2 : 1);
      break;
    case K_PRLIMIT:
      if (ops.field(i, 2) !== proc.rlimit.hard) throw new Failure(`op ${i} (${checked.describe(i)}): changes the hard limit before the commit`, i);
      return;
    default:
      return;
  }
  if (targetFds.has(touched)) throw new Failure(`op ${i} (${checked.describe(i)}): touches the target's fd ${touched} before the commit`, i);
}

/** Op i planned fd `planned` where the kernel gave `got`: they must be the same. */
function expect(checked: Checked, i: number, planned: number, got: number): void {
  if (planned !== got) throw new Failure(`op ${i} (${checked.describe(i)}): the plan expects fd ${planned}, the kernel gives ${got}`, i);
}

/** Op i planned the fds [a, b] where the kernel gave `got`: they must be the same. */
function expectPair(checked: Checked, i: number, a: number, b: number, got: number[]): void {
  if (a !== got[0] || b !== got[1]) throw new Failure(`op ${i} (${checked.describe(i)}): the plan expects fds ${JSON.stringify([a, b])}, the kernel gives ${JSON.stringify(got)}`, i);
}

/** Op i is wrong in the way `what` says. */
function failAt(checked: Checked, i: number, what: string): Failure {
  return new Failure(`op ${i} (${checked.describe(i)}): ${what}`, i);
}

function apply(checked: Checked, i: number, proc: SimProcess, pipes: ById<Pipe>, written: IntByKey, descs: ById<Desc>): void {
  const ops = checked.ops;
  const w = ops.words;
  const b = i * STRIDE;
  const kind = w[b]!;
  switch (kind) {
    case K_PIPE2:
      expectPair(checked, i, w[b + 2]!, w[b + 3]!, proc.pipe2(w[b + 1]!));
      return;
    case K_OPEN: {
      const via = w[b + 2]!;
      const path = ops.text(i);
      if (via >= 0 && path !== `/proc/self/fd/${via}`) throw failAt(checked, i, `via ${via} but path is not /proc/self/fd/${via}`);
      expect(checked, i, w[b + 4]!, proc.open(path, w[b + 3]!));
      return;
    }
    case K_DUP2:
      if (w[b + 3]) proc.dup3(w[b + 1]!, w[b + 2]!, true);
      else proc.dup2(w[b + 1]!, w[b + 2]!);
      return;
    case K_DUPFD:
      expect(checked, i, w[b + 4]!, proc.dupfd(w[b + 1]!, w[b + 2]!, w[b + 3] !== 0));
      return;
    case K_CLOSE:
      proc.close(w[b + 1]!);
      return;
    case K_SETFL:
      proc.setfl(w[b + 1]!, w[b + 2]!);
      return;
    case K_SETFD:
      proc.setfd(w[b + 1]!, w[b + 2] !== 0);
      return;
    case K_SETPIPESZ:
      proc.setPipeSize(w[b + 1]!, w[b + 2]!);
      return;
    case K_LSEEK:
      proc.lseek(w[b + 1]!, BigInt(ops.text(i)));
      return;
    case K_CREATE: {
      const id = w[b + 1]!;
      const d = descs.get(id);
      const make = d === undefined ? undefined : kindOf(d).simCreate;
      if (d === undefined || make === undefined) throw failAt(checked, i, `the image has no description ${id} its kind makes with one call`);
      expect(checked, i, w[b + 3]!, make(proc, d, w[b + 2] !== 0));
      return;
    }
    case K_LINK: {
      const id = w[b + 1]!;
      const item = w[b + 2]!;
      const d = descs.get(id);
      const link = d === undefined ? undefined : kindOf(d).simLink;
      if (d === undefined || link === undefined || !(item < (kindOf(d).links?.(d).length ?? 0))) {
        throw failAt(checked, i, `the image has no description ${id} with a link ${item}`);
      }
      link(proc, d, item, w[b + 3]!);
      return;
    }
    case K_PTY: {
      const id = w[b + 1]!;
      const fd = w[b + 3]!;
      const done = w[b + 4] !== 0;
      const d = descs.get(id);
      const prepare = d === undefined ? undefined : kindOf(d).simPrepare;
      if (d === undefined || prepare === undefined) throw failAt(checked, i, `the image has no description ${id} whose object is made first`);
      prepare(proc, d, w[b + 2]!, fd, done);
      if (!done) proc.hold(id, fd);
      return;
    }
    case K_SOCKETPAIR: {
      const ids = [w[b + 4]!, w[b + 5]!];
      const ends = ids.map((id) => (id < 0 ? undefined : descs.get(id)));
      const d = ends[0] ?? ends[1];
      const make = d === undefined ? undefined : kindOf(d).simCreatePair;
      if (d === undefined || make === undefined || ends.some((e, k) => e === undefined && ids[k]! >= 0)) {
        throw failAt(checked, i, `the image has no pair of descriptions ${ids.join(', ')} their kind makes with one call`);
      }
      expectPair(checked, i, w[b + 2]!, w[b + 3]!, make(proc, ends as never, w[b + 1] !== 0));
      return;
    }
    case K_WRITE: {
      const fd = w[b + 1]!;
      const id = w[b + 2]!;
      const pipe = pipes.get(id);
      if (!pipe) throw failAt(checked, i, `the image has no pipe ${id}`);
      if (written.has(id)) throw failAt(checked, i, `pipe ${id}'s bytes are written a second time`);
      written.set(id, 1);
      const bytes = pipe.data;
      if (w[b + 3] !== bytes.length) throw failAt(checked, i, `pipe ${id} has ${bytes.length} bytes, not ${w[b + 3]}`);
      let at = 0;
      for (const n of pipe.packets ?? [bytes.length]) {
        proc.write(fd, bytes.subarray(at, at + n));
        at += n;
      }
      return;
    }
    case K_PRLIMIT:
      proc.prlimit(w[b + 1]!, w[b + 2]!);
      return;
    case K_COMMIT:
    case K_FORK: // run() makes the child
      return;
    default:
      throw failAt(checked, i, `unknown op kind ${kind}`);
  }
}

/** How a failure names a description of the image: the first fd this process holds it at. */
function where(fd: number, id: number): string {
  return `fd ${fd} (description ${id})`;
}

/**
 * compare's check of each description a process reaches (at the first fd it holds it at) against
 * what it is at the end: kind, flags, path, socket pair, pipe (each pipe reached listed in
 * `minePipes`, with what it is at the end); its kind's own checks deferred. Its own function, as
 * mapFds is.
 */
function checkDescs(table: FdTable, shared: Identity, who: string, mineIds: number[], mineFds: number[], mineSims: SimDesc[], minePipes: number[], minePipeSims: SimPipe[]): void {
  const descs = new ById(table.descs);
  const { pipeMap, pipeDesc, pipeBack, pipeBackDesc, pairMap, pairBack } = shared;
  const minePipe = IntByKey.sized(table.pipes.length);
  for (let k = 0; k < mineIds.length; k++) {
    const id = mineIds[k]!;
    const fd = mineFds[k]!;
    const d = descs.get(id)!;
    const sim = mineSims[k]!;
    if (sim.kind !== d.kind) throw new Failure(`${where(fd, id)} is a ${sim.kind}, the image says ${d.kind}`);
    if (sim.flags !== d.flags) throw new Failure(`${where(fd, id)} has flags ${flagNames(sim.flags)}, the image says ${flagNames(d.flags)}`);
    // The path a description was opened by (a deleted file's is where it was, not a node).
    const path = kindOf(d).node?.(d)?.path;
    if (path !== undefined && sim.node?.path !== path) throw new Failure(`${where(fd, id)} is ${JSON.stringify(sim.node?.path)}, the image says ${JSON.stringify(path)}`);
    // Judged once every process is compared: a description may name another (an epoll its
    // targets, a pty slave its master) held only by a process compared later.
    shared.deferredDescs.push(d);
    shared.deferredSims.push(sim);
    shared.deferredFds.push(fd);
    shared.deferredWho.push(who);
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
    if (mapped !== -1 && mapped !== simPipe.serial) throw new Failure(`descriptions ${pipeDesc.get(pipe)} and ${id} are on pipe ${pipe} in the image but on different pipes at the end`);
    const back = pipeBack.get(simPipe.serial);
    if (back !== -1 && back !== pipe) throw new Failure(`descriptions ${pipeBackDesc.get(simPipe.serial)} and ${id} are on one pipe at the end but on pipes ${back} and ${pipe} in the image`);
    if (mapped === -1) {
      pipeMap.set(pipe, simPipe.serial);
      pipeDesc.set(pipe, id);
    }
    if (back === -1) {
      pipeBack.set(simPipe.serial, pipe);
      pipeBackDesc.set(simPipe.serial, id);
    }
    if (!minePipe.has(pipe)) {
      minePipe.set(pipe, 1);
      minePipes.push(pipe);
      minePipeSims.push(simPipe);
    }
  }
}

/** compare's check of each pipe a process reaches: its capacity, bytes and packets at the end. */
function checkPipes(list: Pipe[], minePipes: number[], minePipeSims: SimPipe[]): void {
  const pipes = new ById(list);
  for (let k = 0; k < minePipes.length; k++) {
    const id = minePipes[k]!;
    const sim = minePipeSims[k]!;
    const p = pipes.get(id)!;
    if (sim.capacity !== p.capacity) throw new Failure(`pipe ${id} has capacity ${sim.capacity}, the image says ${p.capacity}`);
    const want = p.data;
    // Most pipes of a big table are empty at both ends: nothing to gather or compare.
    if (want.length === 0 && sim.buffers.length === 0 && p.packets === undefined) continue;
    const got = sim.bytes();
    if (Buffer.compare(want, got) !== 0) throw new Failure(`pipe ${id} holds ${got.length} bytes that are not the image's ${want.length}`);
    if (p.packets === undefined) {
      // A byte stream: no buffer may be a packet (counted without a list per pipe).
      let packets = 0;
      for (const b of sim.buffers) if (b.packet) packets++;
      if (packets > 0) throw new Failure(`pipe ${id} holds ${packets} packets, the image says a byte stream`);
      continue;
    }
    const packets = sim.buffers.filter((b) => b.packet).map((b) => b.len);
    if (packets.length !== sim.buffers.length || packets.join(',') !== p.packets.join(',')) {
      throw new Failure(`pipe ${id} holds packets [${packets.join(',')}] in ${sim.buffers.length} buffers, the image says [${p.packets.join(',')}]`);
    }
  }
}

/**
 * compare's walk of a process's fds: each open at the end, with its close-on-exec bit, on the
 * simulated description its image description maps to (mapped at its first fd); the descriptions
 * this process reaches are listed in `mine*`. A function of its own, small, so that V8 compiles it
 * (on-stack, while it runs once over 100,000 fds) in a fraction of the time compare as a whole takes.
 */
function mapFds(fds: Fd[], proc: SimProcess, shared: Identity, whoAt: number, imageFds: IntByKey, mine: IntByKey, mineIds: number[], mineFds: number[], mineSims: SimDesc[], pair: (id: number, fd: number) => string): void {
  const { descMap, descBack, seenFd, seenWho } = shared;
  for (let k = 0; k < fds.length; k++) {
    const f = fds[k]!;
    imageFds.set(f.fd, 1);
    const sim = proc.descAt(f.fd);
    if (!sim) throw new Failure(`fd ${f.fd} is not open at the end`);
    const cloexec = proc.cloexecAt(f.fd);
    if (cloexec !== f.cloexec) throw new Failure(`fd ${f.fd} has close-on-exec ${cloexec}, the image says ${f.cloexec}`);
    if (sim.kind === 'foreign') throw new Failure(`fd ${f.fd} still refers to the target's own fd ${sim.origin}'s file`);
    const mapped = descMap.get(f.desc);
    if (mapped === -1) {
      const back = descBack.get(sim.serial);
      if (back !== -1) throw new Failure(`${pair(back, f.fd)} share a description at the end but not in the image`);
      descMap.set(f.desc, sim.serial);
      seenFd.set(f.desc, f.fd);
      seenWho.set(f.desc, whoAt);
      descBack.set(sim.serial, f.desc);
    } else if (mapped !== sim.serial) {
      throw new Failure(`${pair(f.desc, f.fd)} share description ${f.desc} in the image but not at the end`);
    }
    if (!mine.has(f.desc)) {
      mine.set(f.desc, 1);
      mineIds.push(f.desc);
      mineFds.push(f.fd);
      mineSims.push(sim);
    }
  }
}

/** Does the simulated process now hold exactly the image (plus, in 'into' mode, the target's other fds)? */
function compare(table: FdTable, target: PlanTarget, proc: SimProcess, targetFds: Set<number>, shared: Identity, who: string): void {
  const imageFds = IntByKey.sized(table.fds.length);
  const { seenFd, seenWho, whos } = shared;
  const whoAt = shared.whoIndex(who);
  // Descriptions this process reaches, at the first fd it holds each at, in the order first held,
  // with what each is in the simulation: their fields are checked here, once per process.
  const mineIds: number[] = [];
  const mineFds: number[] = [];
  const mineSims: SimDesc[] = [];
  const mine = IntByKey.sized(table.descs.length);
  // In a tree, an fd of another process is named with its process.
  const pair = (id: number, fd: number): string => {
    const at = seenFd.get(id);
    const by = whos[seenWho.get(id)]!;
    return by === who ? `fds ${at} and ${fd}` : `fd ${at} of ${by.replace(/: $/, '')} and fd ${fd}`;
  };
  mapFds(table.fds, proc, shared, whoAt, imageFds, mine, mineIds, mineFds, mineSims, pair);
  let expected = imageFds.size;
  if (target.mode === 'into') {
    for (const fd of targetFds) {
      if (imageFds.has(fd)) continue;
      const sim = proc.descAt(fd);
      if (!sim) throw new Failure(`the target's fd ${fd} was closed`);
      if (sim.origin !== fd) throw new Failure(`the target's fd ${fd} no longer refers to its own file`);
      if (proc.cloexecAt(fd)) throw new Failure(`the target's fd ${fd} had its close-on-exec flag changed`);
      expected++;
    }
  }
  if (proc.size !== expected) {
    const extra = proc.fds().find((fd) => !imageFds.has(fd) && !(target.mode === 'into' && targetFds.has(fd)));
    throw new Failure(`fd ${extra} is open at the end but is not in the image`);
  }

  // The pipes this process reaches, in the order first reached, and what each is at the end.
  const minePipes: number[] = [];
  const minePipeSims: SimPipe[] = [];
  checkDescs(table, shared, who, mineIds, mineFds, mineSims, minePipes, minePipeSims);
  checkPipes(table.pipes, minePipes, minePipeSims);

  const hard = Math.min(table.rlimit.hard, target.rlimit.hard);
  const soft = Math.min(table.rlimit.soft, hard);
  const got = proc.rlimit;
  if (got.soft !== soft || got.hard !== hard) throw new Failure(`RLIMIT_NOFILE is ${got.soft}/${got.hard} at the end, not ${soft}/${hard}`);
}
