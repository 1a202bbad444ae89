// Freezing a process, or a process and all its descendants, for a consistent snapshot: every
// thread is seized and interrupted (PTRACE_SEIZE + PTRACE_INTERRUPT, so no signal is sent and
// nothing is delivered twice), and thawing lets each thread go exactly where it stopped.
import { SyscallError } from '../../bridge/errno.js';
import { detach, interrupt, PTRACE_EVENT_STOP, seize } from '../../bridge/ptrace.js';
import { kill, SIGSTOP, SIGTRAP, signalName } from '../../bridge/signal.js';
import { waitStop } from '../../bridge/wait.js';
import { CrError } from '../errors.js';
import { isRunning, listThreads, readStatus } from '../proc/process.js';
import { listTree, readStat } from '../proc/tree.js';
import { now } from '../../bridge/clock.js';

export interface Frozen {
  pid: number;
  /**
   * Seized threads, each with the signal to hand back when it is let go: a thread caught in a
   * signal-delivery-stop (a signal arrived as we interrupted) gets its signal re-injected on
   * detach, as if cr had never been there.
   */
  threads: Map<number, number>;
  /**
   * The process was in a job-control stop (SIGSTOP, SIGTSTP, ...) when seized: detach leaves it
   * stopped, and the image says so.
   */
  jobStopped: boolean;
}

const errnoOf = (err: unknown): string | undefined => (err instanceof SyscallError ? err.code : undefined);

/** Throw a CrError saying why pid cannot be frozen, if /proc already tells. */
function checkFreezable(pid: number): void {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new CrError(`${pid} is not a pid`, 2);
  if (pid === process.pid) throw new CrError('cr cannot dump itself');
  let status;
  try {
    status = readStatus(pid);
  } catch {
    throw new CrError(`no process with pid ${pid}`);
  }
  if (status.state === 'Z' || status.state === 'X') throw new CrError(`process ${pid} is a zombie`);
  if (status.tracerPid !== 0) throw new CrError(`process ${pid} is already traced by pid ${status.tracerPid}`);
}

/**
 * Seize and stop one thread. Returns the signal to re-inject at detach (0 for none) and whether it
 * was in a group-stop, or null if the thread exited before it could be stopped.
 */
function stopThread(pid: number, tid: number, timeoutMs: number): { sig: number; groupStop: boolean } | null {
  try {
    seize(tid, 0);
  } catch (err) {
    if (errnoOf(err) === 'ESRCH') return null;
    if (errnoOf(err) === 'EPERM') {
      // The kernel refuses to attach to a task that has exited (a zombie): it is gone, not forbidden.
      if (!isRunning(tid)) return null;
      throw new CrError(`may not trace process ${pid}: ${(err as Error).message}`);
    }
    throw err;
  }
  let result;
  try {
    interrupt(tid);
    result = waitStop(tid, timeoutMs);
  } catch (err) {
    if (errnoOf(err) === 'ESRCH') return null;
    // Seized but not stopped: not in `frozen` yet, so thaw would not let it go. A thread that
    // never stopped cannot be detached (ESRCH) and is released when cr exits.
    letGo(tid);
    if (err instanceof SyscallError) throw err;
    // A thread in uninterruptible sleep (state D) stops only when it leaves it.
    throw new CrError(`thread ${tid} of process ${pid} did not stop within ${timeoutMs} ms (state ${safeState(tid)})`);
  }
  if (result.kind !== 'stopped') return null;
  // PTRACE_EVENT_STOP: our interrupt (with SIGTRAP), or a group-stop (with the stop signal: the
  // process was or got stopped), both left as they are by detach. Otherwise a
  // signal-delivery-stop for result.signal.
  if (result.event === PTRACE_EVENT_STOP) return { sig: 0, groupStop: result.signal !== SIGTRAP };
  return { sig: result.signal, groupStop: false };
}

function letGo(tid: number): void {
  try {
    detach(tid, 0);
  } catch {
    // not in a ptrace stop, or gone
  }
}

function safeState(tid: number): string {
  try {
    return readStatus(tid).state;
  } catch {
    return '?';
  }
}

/** Stop every thread of pid; on any failure, threads already stopped are let go again. */
export function freeze(pid: number, timeoutMs = 5000): Frozen {
  checkFreezable(pid);
  return freezeProcess(pid, timeoutMs);
}

function freezeProcess(pid: number, timeoutMs: number): Frozen {
  const frozen: Frozen = { pid, threads: new Map(), jobStopped: false };
  try {
    // A thread may clone another before it stops: list again until nothing new appears.
    for (;;) {
      let tids: number[];
      try {
        tids = listThreads(pid);
      } catch {
        throw new CrError(`process ${pid} exited while being frozen`);
      }
      const fresh = tids.filter((t) => !frozen.threads.has(t));
      if (fresh.length === 0) break;
      for (const tid of fresh) {
        const stopped = stopThread(pid, tid, timeoutMs);
        if (stopped === null) {
          if (tid === pid) throw new CrError(`process ${pid} exited while being frozen`);
          continue;
        }
        frozen.threads.set(tid, stopped.sig);
        if (tid === pid) frozen.jobStopped = stopped.groupStop;
      }
    }
  } catch (err) {
    thaw(frozen, { leaveStopped: false });
    if (err instanceof SyscallError && err.code === 'ESRCH') throw new CrError(`no process with pid ${pid}`);
    throw err;
  }
  return frozen;
}

/** How long thaw waits for a process left stopped to be seen stopped. */
const STOP_SEEN_MS = 2000;
const PAUSE = new Int32Array(new SharedArrayBuffer(4));

/**
 * Wait until thread tid shows a stop (`T`, or `t` under a tracer), at most until `deadline`
 * (bridge/clock.ts's now()); whether it did. A thread gone, or a zombie, ends the wait: not stopped.
 */
export function awaitStop(tid: number, deadline: number): boolean {
  for (;;) {
    const state = safeState(tid);
    if (state === 'T' || state === 't') return true;
    if (state === '?' || state === 'Z' || state === 'X' || now() > deadline) return false;
    Atomics.wait(PAUSE, 0, 0, 1);
  }
}

/**
 * Let every thread go. With leaveStopped, a SIGSTOP is queued while all threads are still held,
 * so each one enters the group-stop on its way back to user space; thaw returns once each is
 * seen there (so too for a process that was job-stopped before cr came) (a detached thread reaches it only when next scheduled, and whoever ran cr may look
 * at once), or after STOP_SEEN_MS when something else (a SIGCONT) let it run.
 */
export function thaw(frozen: Frozen, opts: { leaveStopped: boolean }): void {
  if (opts.leaveStopped && frozen.threads.size > 0) kill(frozen.pid, SIGSTOP);
  // A job-stopped process detached is woken to enter its stop again: the same gap.
  const stopsAgain = (opts.leaveStopped || frozen.jobStopped) && frozen.threads.size > 0;
  const failures: string[] = [];
  const tids = [...frozen.threads.keys()];
  const killed: number[] = [];
  for (const [tid, sig] of frozen.threads) {
    try {
      detach(tid, sig);
    } catch (err) {
      // ESRCH: the thread was killed (SIGKILL reaches tracees too) and is gone.
      if (errnoOf(err) === 'ESRCH') killed.push(tid);
      else failures.push(`${tid}${sig ? ` (${signalName(sig)})` : ''}: ${(err as Error).message}`);
    }
  }
  frozen.threads.clear();
  reapKilled(frozen.pid, killed);
  if (failures.length > 0) throw new Error(`could not let threads go: ${failures.join('; ')}`);
  if (stopsAgain) {
    const deadline = now() + STOP_SEEN_MS;
    for (const tid of tids) awaitStop(tid, deadline);
  }
}

/**
 * Killed threads cr still traces stay zombies until cr waits for them: before that their parent
 * cannot reap the process (a process's exit is reported after its threads'), which in a
 * long-lived user of cr's API is a leak. Each is waited for here, the leader last; the leader of
 * cr's own child is left to cr's waiting for it like any child's, its exit status not taken.
 * Bounded: a thread that does not end within a second is left.
 */
function reapKilled(pid: number, killed: number[]): void {
  if (killed.length === 0) return;
  let ownChild = false;
  try {
    ownChild = readStat(pid).ppid === process.pid;
  } catch {
    // gone already: nothing of it to reap as its parent
  }
  const order = [...killed.filter((t) => t !== pid), ...(killed.includes(pid) && !ownChild ? [pid] : [])];
  for (const tid of order) {
    try {
      for (;;) {
        const r = waitStop(tid, 1000);
        if (r.kind === 'exited' || r.kind === 'signaled') break;
      }
    } catch {
      // not ours to wait for any more, or still dying after the bound: left
    }
  }
}

/** A process and its descendants, frozen: what freezeTree gives. */
export interface FrozenTree {
  /** pre-order (a parent before its children, siblings by pid), the root first; zombies not frozen */
  members: Array<{ pid: number; ppid: number; frozen: Frozen | null }>;
  /** descendants already traced by another tracer: not frozen (cr cannot), for the dump to refuse */
  traced: Array<{ pid: number; tracer: number }>;
}

const isZombie = (pid: number): boolean => {
  try {
    return readStat(pid).state === 'Z';
  } catch {
    return false;
  }
};

/**
 * Freeze root and all its descendants. Each round lists the tree and freezes every live process
 * not frozen yet, parents before children, until a round finds nothing new: a frozen process
 * cannot fork, and a fork it was in when interrupted has linked its child before the parent
 * stopped, so the next round sees it. A process that exits before it is seized is a zombie of a
 * frozen parent (nothing reaps it now) and is recorded as one; zombies are never seized or reaped.
 * A pid listed as a child whose process was reaped (and the pid reused) before its parent froze
 * is not its parent's child when checked after the seize, and is let go. On any failure every
 * process frozen so far is let go.
 */
export function freezeTree(root: number, timeoutMs = 5000): FrozenTree {
  checkFreezable(root);
  const frozen = new Map<number, Frozen>();
  const traced = new Map<number, number>();
  const letAllGo = (): void => {
    for (const f of frozen.values()) {
      try {
        thaw(f, { leaveStopped: false });
      } catch {
        // gone
      }
    }
    frozen.clear();
  };
  try {
    for (;;) {
      const listed = listTree(root);
      // cr run from inside the tree (`cr dump --pid $$` from a shell) would freeze itself.
      if (listed.some((m) => m.pid === process.pid)) {
        throw new CrError(`cr itself (pid ${process.pid}) is a descendant of ${root}: run cr from outside the tree it dumps`, 2);
      }
      let fresh = 0;
      for (const { pid, ppid } of listed) {
        if (frozen.has(pid) || traced.has(pid) || isZombie(pid)) continue;
        if (ppid !== null && !frozen.has(ppid)) continue; // its parent ended or was not yet frozen: next round
        let status;
        try {
          status = readStatus(pid);
        } catch {
          continue; // gone: reaped (its parent ran until it froze), not a member
        }
        if (status.tracerPid !== 0) {
          traced.set(pid, status.tracerPid);
          continue;
        }
        let f: Frozen;
        try {
          f = freezeProcess(pid, timeoutMs);
        } catch (err) {
          if (pid !== root && err instanceof CrError && / exited while being frozen$/.test(err.message)) continue;
          throw err;
        }
        frozen.set(pid, f);
        fresh++;
        if (ppid !== null && readStat(pid).ppid !== ppid) {
          // The pid was reused by a process outside the tree: not ours to hold.
          frozen.delete(pid);
          thaw(f, { leaveStopped: false });
        }
      }
      if (fresh > 0) continue;
      // Nothing new: every listed process is frozen or a zombie, and none can change the tree now.
      const members = listed.flatMap(({ pid, ppid }) => {
        const f = frozen.get(pid);
        if (!f && !isZombie(pid)) return [];
        return [{ pid, ppid: ppid ?? readStat(pid).ppid, frozen: f ?? null }];
      });
      const kept = new Set(members.map((m) => m.pid));
      for (const [pid, f] of frozen) {
        if (!kept.has(pid)) {
          frozen.delete(pid);
          thaw(f, { leaveStopped: false });
        }
      }
      return { members, traced: [...traced].map(([pid, tracer]) => ({ pid, tracer })) };
    }
  } catch (err) {
    letAllGo();
    if (err instanceof SyscallError && err.code === 'ESRCH') throw new CrError(`no process with pid ${root}`);
    throw err;
  }
}

/** Let every member of a frozen tree go (with leaveStopped, each stays stopped); failures named together. */
export function thawTree(tree: FrozenTree, opts: { leaveStopped: boolean }): void {
  const failures: string[] = [];
  for (const m of tree.members) {
    if (!m.frozen) continue;
    try {
      thaw(m.frozen, opts);
    } catch (err) {
      failures.push((err as Error).message);
    }
  }
  if (failures.length > 0) throw new Error(failures.join('; '));
}
