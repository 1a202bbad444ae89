// planTree: the plan of a whole image, one process at a time against the shared objects, with a
// cross-process order on top (docs/planner.md "Several processes").
//
// The order is the one a restore of a tree will follow: processes are made by fork in tree order
// (each listed after its parent), and a child starts with a copy of its parent's fd table. So an
// object (a pipe with all its descriptions, or a description on no pipe) is created by the
// nearest common ancestor of every process holding it, and reaches the others by inheritance at
// fork: that is the only receive the plan expresses. A process that creates or passes on a
// description it does not hold itself carries it at a number above all of its own (a carried
// fd), close-on-exec, and closes it once its children are forked. Each process's own plan comes
// from the wasm planner, with what it inherits given as CLASS_INHERITED descriptions already open
// in its target (the parent's table at fork).
import type { Desc, Fd, FdTable, FdTables, Rlimit } from '../model/fdtable.js';
import { pairOf, pipeOf, viewOf } from '../model/fdtable.js';
import type { PlanTarget } from '../model/restore-target.js';
import { Plan, type Op } from './ops.js';
import { PlanImpossible, planRestore } from './planner.js';

/** One process's part of a tree's plan. */
export interface ProcessPlan {
  pid: number;
  parent?: number;
  /** descriptions (ids) it creates, and the pipes among them */
  creates: number[];
  pipes: number[];
  /** descriptions it receives by inheritance at fork, and the parent's fd each comes at */
  inherits: Array<{ desc: number; from: number }>;
  /** descriptions it holds only to pass on at fork, at these fds: closed after its forks */
  carries: Array<{ desc: number; fd: number }>;
  /** the fd table and limit it starts with: the given target for a root, its parent's at fork for a child */
  target: PlanTarget;
  /** its own ops (the wasm planner's), then a fork op per child, then the close of each carried fd */
  plan: Plan;
  /** index in plan's ops of the op after which its children may run (its last fork); -1 with no child */
  forksAt: number;
}

export interface TreePlan {
  processes: ProcessPlan[];
}

/** What one process's table will be when it forks: its image fds plus carried ones, and its limit. */
interface AtFork {
  fds: Fd[];
  /** fds a live root target keeps that are not the image's ('into' mode): a child has them too */
  others: number[];
  rlimit: Rlimit;
}

/** The key of the object a description belongs to: its pipe, a pty slave's master, or itself. */
const unitOf = (d: Desc): string => {
  if (d.kind === 'pts') return `d${d.master}`;
  const pipe = pipeOf(d);
  const pair = pairOf(d);
  return pipe !== undefined ? `p${pipe}` : pair !== undefined ? `s${pair}` : `d${d.id}`;
};

/**
 * Plan every process of `tables`; `target` is what each root starts with. Throws PlanImpossible
 * when an object is held by processes with no common ancestor in the image, or a process's own
 * plan cannot exist.
 */
export function planTree(tables: FdTables, target: PlanTarget): TreePlan {
  const procs = tables.processes;
  if (procs.length === 1 && procs[0]!.parent === undefined) return { processes: [onlyRoot(tables, target)] };
  const index = new Map<number, number>(procs.map((p, i) => [p.pid, i]));
  const parentOf = procs.map((p) => (p.parent === undefined ? -1 : index.get(p.parent)!));
  const depth: number[] = [];
  procs.forEach((_, i) => depth.push(parentOf[i]! < 0 ? 0 : depth[parentOf[i]!]! + 1));
  const nca = (a: number, b: number): number => {
    while (a !== b && a >= 0 && b >= 0) {
      if (depth[a]! >= depth[b]!) a = parentOf[a]!;
      else b = parentOf[b]!;
    }
    return a === b ? a : -1;
  };

  const descById = new Map<number, Desc>(tables.descs.map((d) => [d.id, d]));
  // Holders of each description; the creator of each object.
  const holders = new Map<number, Set<number>>();
  procs.forEach((p, i) => {
    for (const f of p.fds) {
      let set = holders.get(f.desc);
      if (!set) holders.set(f.desc, (set = new Set()));
      set.add(i);
    }
  });
  const creator = new Map<string, number>();
  const firstHolder = new Map<string, { desc: number; proc: number }>();
  for (const d of tables.descs) {
    const unit = unitOf(d);
    for (const h of holders.get(d.id) ?? []) {
      const seen = creator.get(unit);
      if (seen === undefined) {
        creator.set(unit, h);
        firstHolder.set(unit, { desc: d.id, proc: h });
        continue;
      }
      const common = nca(seen, h);
      if (common < 0) {
        const first = firstHolder.get(unit)!;
        const what = unit.startsWith('p') ? `pipe ${unit.slice(1)}` : `description ${d.id}`;
        throw new PlanImpossible(
          `${what} is held by processes ${procs[first.proc]!.pid} and ${procs[h]!.pid}, which have no common ancestor in the image: no fork can give it to both`,
        );
      }
      creator.set(unit, common);
    }
  }

  // What each process carries: every description on the way from its object's creator down to
  // each process holding it.
  const carried: Array<Set<number>> = procs.map(() => new Set());
  for (const d of tables.descs) {
    const top = creator.get(unitOf(d))!;
    for (const h of holders.get(d.id) ?? []) {
      for (let at = h; ; at = parentOf[at]!) {
        if (carried[at]!.has(d.id)) break;
        carried[at]!.add(d.id);
        if (at === top) break;
      }
    }
  }

  const atFork: AtFork[] = [];
  const out: ProcessPlan[] = [];
  procs.forEach((proc, i) => {
    const own = viewOf(tables, i);
    const held = new Set(proc.fds.map((f) => f.desc));
    const parent = parentOf[i]!;
    const start: PlanTarget =
      parent < 0 ? target : childTarget(atFork[parent]!, carried[i]!, (id) => creator.get(unitOf(descById.get(id)!)) !== i);
    // Carried fds go above every number in play, so they never meet an image fd or a target's;
    // where the hard limit the process ends with leaves no room there (its children, whose limit
    // that is, must reach them), into the highest numbers neither holds.
    const hard = Math.min(proc.rlimit.hard, start.rlimit.hard);
    const carries: Array<{ desc: number; fd: number }> = [];
    if (carried[i]!.size > held.size) {
      const used = new Set<number>();
      for (const f of proc.fds) used.add(f.fd);
      for (const fd of start.fds) if (fd < hard) used.add(fd);
      let above = 0;
      for (const fd of used) above = Math.max(above, fd + 1);
      let below = Math.min(above, hard) - 1;
      for (const d of tables.descs) {
        if (!carried[i]!.has(d.id) || held.has(d.id)) continue;
        let fd: number;
        if (above < hard) fd = above++;
        else {
          while (below >= 0 && used.has(below)) below--;
          if (below < 0) throw new PlanImpossible(`process ${proc.pid}: no fd number is left below its hard RLIMIT_NOFILE ${hard} to carry description ${d.id} for its children`);
          fd = below--;
        }
        carries.push({ desc: d.id, fd });
      }
    }

    const creates = tables.descs.filter((d) => carried[i]!.has(d.id) && creator.get(unitOf(d)) === i);
    const pipeIds = new Set(creates.map(pipeOf).filter((p) => p !== undefined));
    const table: FdTable =
      carries.length === 0 && creates.length === own.descs.length && parent < 0
        ? own
        : {
            fds: [...proc.fds, ...carries.map((c) => ({ fd: c.fd, desc: c.desc, cloexec: true }))],
            descs: tables.descs.filter((d) => carried[i]!.has(d.id)),
            pipes: tables.pipes.filter((p) => pipeIds.has(p.id)),
            rlimit: proc.rlimit,
          };
    const plan = planOwn(table, start, procs.length > 1 ? proc.pid : undefined);
    const children = procs.filter((c) => c.parent === proc.pid).map((c) => c.pid);
    const ops = plan.words.concat([...children.map((pid): Op => ({ op: 'fork', pid })), ...carries.map((c): Op => ({ op: 'close', fd: c.fd }))]);
    atFork.push({
      fds: table.fds,
      others: start.mode === 'into' ? start.fds.filter((fd) => !table.fds.some((f) => f.fd === fd)) : [],
      rlimit: { soft: Math.min(table.rlimit.soft, hard), hard },
    });
    out.push({
      pid: proc.pid,
      ...(proc.parent === undefined ? {} : { parent: proc.parent }),
      creates: creates.map((d) => d.id),
      pipes: [...pipeIds],
      inherits: inheritsOf(start),
      carries,
      target: start,
      plan: new Plan(ops, plan.lowerBound, plan.commit, plan.warnings),
      forksAt: children.length === 0 ? -1 : plan.length + children.length - 1,
    });
  });
  return { processes: out };
}

/**
 * The plan of a table of one process: it holds every description (docs/fd-table.md), so it creates
 * every object and carries nothing, and none of the bookkeeping of a tree (holders, creators,
 * carried descriptions: a Map or Set entry per description) is needed.
 */
function onlyRoot(tables: FdTables, target: PlanTarget): ProcessPlan {
  const proc = tables.processes[0]!;
  const plan = planOwn(viewOf(tables, 0), target, undefined);
  const pipes = new Set<number>();
  for (const d of tables.descs) {
    const pipe = pipeOf(d);
    if (pipe !== undefined) pipes.add(pipe);
  }
  return { pid: proc.pid, creates: tables.descs.map((d) => d.id), pipes: [...pipes], inherits: inheritsOf(target), carries: [], target, plan, forksAt: -1 };
}

/** What a process's start holds of the image already, each description once, at the first fd holding it. */
const inheritsOf = (start: PlanTarget): ProcessPlan['inherits'] =>
  (start.inherited ?? []).filter((h, k, all) => all.findIndex((x) => x.desc === h.desc) === k).map((h) => ({ desc: h.desc, from: h.fd }));

/** The wasm planner's plan of one process's table; in a tree, a refusal names the process. */
function planOwn(table: FdTable, start: PlanTarget, pid: number | undefined): Plan {
  try {
    return planRestore(table, start);
  } catch (err) {
    if (err instanceof PlanImpossible && pid !== undefined) throw new PlanImpossible(`process ${pid}: ${err.message}`);
    throw err;
  }
}

/**
 * A child's start: its parent's table at fork, the descriptions it carries (and does not create)
 * marked as already open there, in a process cr made (fresh).
 */
function childTarget(parent: AtFork, carried: Set<number>, inherited: (desc: number) => boolean): PlanTarget {
  const fds = [...parent.fds.map((f) => f.fd), ...parent.others];
  const held = parent.fds.filter((f) => carried.has(f.desc) && inherited(f.desc)).map((f) => ({ fd: f.fd, desc: f.desc, cloexec: f.cloexec }));
  return { fds, rlimit: parent.rlimit, mode: 'fresh', inherited: held };
}
