// The processes of a tree's restart, made as husks (docs/trees.md, "Order of restore"): the root
// husk is spawned, every other member is forked by its parent's husk (injected clone3, traced
// from birth), sessions and groups are made in the order treeOrder gives, and each live member's
// fd table is replayed from its part of the tree's plan (src/plan/tree.ts): a shared description is
// created in the nearest common ancestor of its holders before the forks that carry it, each
// member then closes what it carried only for its children. No member runs an instruction of its
// own here: each ends stopped, traced by cr, ready for its memory and state (src/restart/restart.ts).
// Zombies are forked like the others and end as recorded only when endZombies is called. A session
// leader whose controlling terminal was a pty of the image gets the new one back, with its
// foreground group (src/restart/terminals.ts).
import { SyscallError } from '../../bridge/errno.js';
import { kill, SIGKILL } from '../../bridge/signal.js';
import { killAndReap, spawn } from '../../bridge/spawn.js';
import { waitpid, WALL, WNOHANG } from '../../bridge/wait.js';
import { readFileSync } from 'node:fs';
import { CrError } from '../errors.js';
import { SYS } from '../inject/syscalls.js';
import { O_CLOEXEC, O_NOCTTY, O_RDWR, type FdTable, type FdTables } from '../model/fdtable.js';
import type { PlanTarget } from '../model/restore-target.js';
import { planTree, type TreePlan } from '../plan/tree.js';
import { PlanImpossible } from '../plan/planner.js';
import { readNofile } from '../proc/limits.js';
import { readTarget } from '../proc/target-state.js';
import { replay } from '../replay/replay.js';
import { checkFdNumbers } from '../replay/check.js';
import { verifyTree } from '../sim/verify.js';
import { Husk, HUSK_PROGRAM, HUSK_PTRACE_OPTIONS } from './husk.js';
import { terminalSteps, TIOCSCTTY, TIOCSPGRP, type TerminalMember } from './terminals.js';
import { treeOrder, type OrderMember, type TreeOrder } from './tree-order.js';

/** A member of the recorded tree, as much as making it needs (src/image/tree.ts's TreeMember has it). */
export interface MakeMember extends OrderMember, TerminalMember {
  comm: string;
  /** how a zombie ended; null for a live member */
  zombie: { code: number | null; signal: number | null } | null;
}

export interface MakeOptions {
  /** every member at its recorded pid (clone3 set_tid; CAP_CHECKPOINT_RESTORE) */
  samePid?: boolean;
  timeoutMs?: number;
  /** where the husks' area goes, given the root husk: free in it and in every member's image */
  area: (huskPid: number) => bigint;
  /** run in the root husk before anything else (the author's fs ids for the opens; children inherit them) */
  first?: (husk: Husk) => void;
}

export interface MadeTree {
  order: TreeOrder;
  /** each member's husk, by tree index; a zombie's until endZombies */
  husks: Array<Husk | undefined>;
  /** each member's pid as made, by tree index */
  pids: number[];
  /** what was made only approximately (a controlling terminal not given back), each said once */
  warnings: string[];
}

/**
 * The tree's plan for a root husk that starts with no fds and cr's RLIMIT_NOFILE, checked by the
 * simulator; its processes are `tables`' (the live members, in tree order).
 */
export function checkedTreePlan(tables: FdTables, target: PlanTarget): TreePlan {
  let plan: TreePlan;
  try {
    plan = planTree(tables, target);
  } catch (err) {
    if (err instanceof PlanImpossible) throw new CrError(`the tree's fds cannot be planned: ${err.message}`);
    throw err;
  }
  const check = verifyTree(tables, target, plan);
  if (!check.ok) throw new CrError(`the tree's plan failed the simulator's check: ${check.reason}`);
  return plan;
}

/** What the root husk starts with: no fds, cr's RLIMIT_NOFILE. */
export const rootTarget = (): PlanTarget => ({ fds: [], rlimit: readNofile(process.pid), mode: 'fresh' });

/**
 * Make every member of `members` (root first, parents before children) as a stopped husk with its
 * parent, session, group and fds; `tables` holds the live members' fds in the same order. On any
 * failure every process made is killed (killTree) and the error thrown.
 */
export function makeTree(members: readonly MakeMember[], tables: FdTables, opts: MakeOptions): MadeTree {
  const timeoutMs = opts.timeoutMs ?? 5000;
  let order: TreeOrder;
  try {
    order = treeOrder(members);
  } catch (err) {
    throw new CrError(`the tree cannot be recreated: ${(err as Error).message}`);
  }
  const live = members.flatMap((m, i) => (m.zombie === null ? [i] : []));
  if (live.length !== tables.processes.length || live.some((i, k) => tables.processes[k]!.pid !== members[i]!.pid)) {
    throw new CrError(`the fd table's processes are not the tree's live members`);
  }
  const planOf = new Map<number, number>(live.map((i, k) => [i, k]));
  let target = rootTarget();
  let plan = checkedTreePlan(tables, target);

  const made: MadeTree = { order, husks: members.map(() => undefined), pids: members.map(() => 0), warnings: [] };
  let spawned: number;
  try {
    spawned = spawn([HUSK_PROGRAM], { fds: [], stopAtExec: true, ptraceOptions: HUSK_PTRACE_OPTIONS, timeoutMs });
  } catch (err) {
    throw new CrError(`cannot start the husk ${HUSK_PROGRAM}: ${(err as Error).message}`);
  }
  made.pids[0] = spawned;
  try {
    const state = readTarget(spawned);
    if (state.fds.length > 0 || state.rlimit.soft !== target.rlimit.soft || state.rlimit.hard !== target.rlimit.hard) {
      target = { fds: state.fds, rlimit: state.rlimit, mode: 'fresh' };
      plan = checkedTreePlan(tables, target);
    }
    let root = Husk.adopt(spawned, opts.area(spawned), timeoutMs, () => {});
    made.husks[0] = root;
    if (opts.samePid) {
      root.cloneAs(members[0]!.pid);
      made.pids[0] = root.pid;
    }
    opts.first?.(root);
    root.reset();
    const terminals = terminalSteps(members, tables, plan);
    made.warnings.push(...terminals.warnings);
    members.forEach((m, i) => {
      const husk = made.husks[i]!;
      const steps = order.members[i]!;
      let forked = false;
      const forkChildren = (): void => {
        if (forked) return;
        forked = true;
        const forkOne = (c: number): void => {
          const child = husk.fork(opts.samePid ? members[c]!.pid : undefined);
          made.husks[c] = child;
          made.pids[c] = child.pid;
        };
        steps.before.forEach(forkOne);
        if (steps.setsid) husk.callNamed(`process ${m.pid}'s session`, 'setsid()', SYS.setsid);
        // Its terminal before the children of its session are forked: they share it.
        const term = terminals.steps.find((t) => t.member === i);
        if (term !== undefined) husk.callNamed(`process ${m.pid}'s controlling terminal`, `ioctl(${term.fd}, TIOCSCTTY, 0)`, SYS.ioctl, BigInt(term.fd), BigInt(TIOCSCTTY), 0n);
        steps.after.forEach(forkOne);
      };
      const k = planOf.get(i);
      if (k !== undefined) {
        const p = plan.processes[k]!;
        const table: FdTable = {
          fds: [...tables.processes[k]!.fds, ...p.carries.map((c) => ({ fd: c.fd, desc: c.desc, cloexec: true }))],
          descs: tables.descs,
          pipes: tables.pipes,
          rlimit: tables.processes[k]!.rlimit,
        };
        // The plan's fork ops come after the member's own and before the closes of what it carried:
        // the first makes all its children, zombies too, with its setsid() where treeOrder puts it.
        husk.run((inj, runner) => replay(inj, table, p.plan, { runner, onFork: forkChildren }));
      }
      forkChildren();
      if (k !== undefined) checkFdNumbers(husk.pid, [...new Set(tables.processes[k]!.fds.map((f) => f.fd))].sort((a, b) => a - b));
    });
    for (const i of order.setpgid) {
      const g = order.members[i]!.group;
      const husk = made.husks[i]!;
      // Failures name the member: a group the image describes that the kernel will not make.
      const what = `process ${members[i]!.pid}'s process group`;
      if (g.kind === 'lead') husk.callNamed(what, 'setpgid(0, 0)', SYS.setpgid, 0n, 0n);
      else if (g.kind === 'join') husk.callNamed(what, `setpgid(0, ${pgidOf(made.pids[g.of]!)})`, SYS.setpgid, 0n, BigInt(pgidOf(made.pids[g.of]!)));
    }
    // Every group exists now: each terminal's foreground as recorded, set by its session's leader.
    for (const t of terminals.steps) {
      if (t.foreground !== undefined) setForeground(made.husks[t.member]!, members[t.member]!.pid, pgidOf(made.pids[t.foreground]!));
    }
    return made;
  } catch (err) {
    killTree(made);
    throw err;
  }
}

/**
 * TIOCSPGRP in a session leader (`was` its recorded pid), on /dev/tty, its controlling terminal,
 * opened for the call: the fds it carried for its children are closed by now, and it may hold none
 * of its own. Its signals are blocked, so no SIGTTOU stops it.
 */
function setForeground(husk: Husk, was: number, pgid: number): void {
  const what = `the foreground group of process ${was}'s terminal`;
  const group = Buffer.alloc(4);
  group.writeInt32LE(pgid);
  try {
    const on = husk.callNamed(what, 'open("/dev/tty")', SYS.open, husk.put('/dev/tty'), BigInt(O_RDWR | O_NOCTTY | O_CLOEXEC));
    try {
      husk.callNamed(what, `ioctl(${on}, TIOCSPGRP, ${pgid})`, SYS.ioctl, on, BigInt(TIOCSPGRP), husk.put(group));
    } finally {
      husk.call('close', SYS.close, on);
    }
  } finally {
    husk.reset();
  }
}

/** The process group of pid now (/proc/PID/stat, field 5). */
export function pgidOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

/**
 * Each zombie ends as recorded (exit code, or its signal with no core), its parent still stopped:
 * the parent's wait() will return the status. Children first: a zombie has none in the tree.
 */
export function endZombies(members: readonly MakeMember[], made: MadeTree): void {
  members.forEach((m, i) => {
    if (m.zombie === null) return;
    const husk = made.husks[i]!;
    const how = m.zombie.signal === null ? { code: m.zombie.code ?? 0 } : { signal: m.zombie.signal };
    const ended = husk.exitAs(how, m.comm);
    made.husks[i] = undefined;
    const got = ended.kind === 'exited' ? { code: ended.code } : { signal: ended.signal };
    if (JSON.stringify(got) !== JSON.stringify(how)) {
      throw new CrError(`the zombie ${ended.pid} ended with ${JSON.stringify(got)}, not the recorded ${JSON.stringify(how)}`);
    }
  });
}

/**
 * Kill every process made so far and wait until each is gone: the root (cr's child) reaped; the
 * others, traced by cr, waited for as their tracer, then reaped by their parents' reaper.
 */
export function killTree(made: MadeTree): void {
  const pids = made.pids.filter((p) => p > 0);
  for (const pid of pids) {
    try {
      kill(pid, SIGKILL);
    } catch (err) {
      if (!(err instanceof SyscallError)) throw err;
    }
  }
  for (const pid of pids.reverse()) {
    if (pid === made.pids[0]) {
      killAndReap(pid);
      continue;
    }
    // Not cr's child: the wait fails with ECHILD once it is no longer cr's tracee.
    for (;;) {
      let r;
      try {
        r = waitpid(pid, WALL | WNOHANG);
      } catch {
        break;
      }
      if (r && (r.kind === 'exited' || r.kind === 'signaled')) break;
      if (!r) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}
