// `restore IMAGE --into PID`: install the image's fds at their numbers in a live process. Every
// thread is held still for the whole restore. The plan stages everything at spare numbers and
// moves it into place after its commit, so a failure before the commit is undone exactly: the
// target ends with the fd table it had, running and untraced.
import { CrError } from '../errors.js';
import { freeze, thaw, type Frozen } from '../task/freeze.js';
import { Injector } from '../inject/injector.js';
import { Guard } from '../inject/journal.js';
import type { FdTable } from '../model/fdtable.js';
import type { Plan } from '../plan/ops.js';
import type { PlanTarget } from '../model/restore-target.js';
import { replay, ReplayError, rollback, type ReplayHooks, type ReplayStats } from '../replay/replay.js';
import { readTarget, type TargetState } from '../proc/target-state.js';
import { checkedPlan, checkFdNumbers, expectedFds } from '../replay/check.js';
import type { RestoreReport } from './report.js';
import { stopwatch, type Phases } from '../timing.js';
import { isRunning, readStatus, refuseThreadId } from '../proc/process.js';
import type { Author } from '../trust/author.js';
import { asAuthor, fsIdentityOf, fsSwitchFor } from '../trust/fsids.js';

/** A thread to inject from: one stopped by our interrupt, not one holding a signal to deliver. */
function injectionThread(frozen: Frozen): number {
  if (frozen.threads.get(frozen.pid) === 0) return frozen.pid;
  for (const [tid, sig] of frozen.threads) if (sig === 0) return tid;
  throw new CrError(`every thread of pid ${frozen.pid} is taking a signal right now; nothing was changed, try again`);
}

/** The replay failed: undo it if it stopped before the commit, and say what state pid is in. */
function afterFailure(err: unknown, inj: Injector, before: TargetState): CrError {
  const message = err instanceof Error ? err.message : String(err);
  if (!isRunning(before.pid)) return new CrError(`pid ${before.pid} ended during the restore (${message.split('\n')[0]})`);
  if (err instanceof ReplayError && err.afterCommit) {
    return new CrError(`${message}; this was after the commit, so pid ${before.pid} keeps a partly restored fd table`);
  }
  try {
    rollback(inj, before);
  } catch (undo) {
    return new CrError(`${message}; undoing it failed too (${(undo as Error).message})`);
  }
  // A refusal (a path that opens the wrong kind of file) keeps its exit status once undone.
  return new CrError(`${message}; rolled back: pid ${before.pid}'s fd table is as it was`, err instanceof CrError ? err.code : 1);
}

const sameState = (a: TargetState, b: TargetState): boolean =>
  a.fds.join(',') === b.fds.join(',') && a.rlimit.soft === b.rlimit.soft && a.rlimit.hard === b.rlimit.hard;

/**
 * The target's state, read from /proc; undefined when cr may not read it (another user's
 * process), for the freeze to refuse in ptrace's own words. A CrError when there is no such process.
 */
function readTargetOf(pid: number): TargetState | undefined {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new CrError(`${pid} is not a pid`, 2);
  try {
    return readTarget(pid);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ESRCH') throw new CrError(`no process with pid ${pid}`);
    if (code === 'EACCES' || code === 'EPERM') return undefined;
    throw new CrError(`cannot read the fd table of pid ${pid}: ${code ?? (err as Error).message}`);
  }
}

/**
 * A filter may refuse the calls the replay injects, or kill the process for making them
 * (SECCOMP_RET_KILL, SIGSYS), which no rollback can undo; cr cannot read filters back to tell.
 */
function refuseSeccomp(pid: number): void {
  let mode: number;
  try {
    mode = readStatus(pid).seccomp;
  } catch {
    return; // gone: the freeze says so in its own words
  }
  if (mode !== 0) {
    throw new CrError(`pid ${pid} runs under seccomp ${mode === 1 ? '(strict mode)' : 'filters'}, which could refuse or kill it for the calls a restore injects; nothing was changed`, 2);
  }
}

/**
 * Install table's fds in pid, its paths opened with the rights of `author` (the image's,
 * docs/trust.md): the injection thread takes on the author's fs ids for the replay and gets its
 * own back afterwards, on failure too. null: opened with the target's own rights.
 */
export function restoreInto(table: FdTable, pid: number, exact: boolean, author: Author | null): RestoreReport {
  if (pid === process.pid) throw new CrError('cr cannot restore into itself', 2);
  const phases: Phases = [];
  const lap = stopwatch(phases);
  const mode = exact ? 'into-exact' : 'into';
  const planFor = (state: TargetState): { target: PlanTarget; plan: Plan } => {
    const target: PlanTarget = { fds: state.fds, rlimit: state.rlimit, mode };
    return { target, plan: checkedPlan(table, target) };
  };
  // Plan for the table as it is now, before stopping anything, so the target is held only for
  // the replay; once it is held, plan again only if its table changed in between. A table cr may
  // not read (another user's process) is read after the freeze, which refuses first (EPERM).
  refuseThreadId(pid);
  const guess = readTargetOf(pid);
  refuseSeccomp(pid);
  let planned = guess && planFor(guess);
  // A target that cannot open as the author is refused before it is stopped (and again, for the
  // thread that does the opening, once it is).
  if (author && guess) fsSwitchFor(author, fsIdentityOf(pid), `pid ${pid}`);
  lap('plan');
  const frozen = freeze(pid);
  lap('freeze');
  try {
    const before = readTarget(pid);
    if (!planned || !guess || !sameState(before, guess)) {
      planned = planFor(before);
      lap('replan');
    }
    const { target, plan } = planned;
    const thread = injectionThread(frozen);
    const opener = fsIdentityOf(thread);
    // Refused (exit 2) here, before the injector touches anything, when the target cannot open as the author.
    const ids = author && fsSwitchFor(author, opener, `pid ${pid}`);
    // Journalled and held in a group stop from here until the registers and mask are its own
    // again: a cr killed meanwhile leaves it stopped for `cr recover` (src/inject/journal.ts).
    const guard = Guard.start(pid, thread, 'into', { fds: before.fds, rlimit: before.rlimit });
    let inj: Injector;
    try {
      inj = Injector.attach(thread);
    } catch (err) {
      guard.close();
      throw err;
    }
    lap('attach');
    const lastOp = plan.length - 1;
    let committed = false;
    const hooks: ReplayHooks = {
      onCommit: () => {
        committed = true;
        guard.update({ committed: true, lastOp });
      },
      // After the commit, recover runs a batch cut short to its end: it must know which it was.
      onBatch: (b) => {
        if (committed) guard.update({ batchAt: b.recordsAt.toString(), batchCalls: b.calls, batchEndsAt: b.lastOp });
      },
    };
    let stats: ReplayStats | CrError;
    try {
      stats = asAuthor(inj, ids, opener, () => replay(inj, table, plan, hooks), (saved) => guard.update({ fsIds: saved }));
      guard.update({ replayed: true });
    } catch (err) {
      stats = afterFailure(err, inj, before);
    }
    try {
      inj.finish();
    } catch (err) {
      if (!(stats instanceof CrError)) {
        const why = (err as Error).message;
        stats = isRunning(pid)
          ? new CrError(`the fd table is restored, but putting pid ${pid}'s registers and signal mask back failed: ${why}`)
          : new CrError(`pid ${pid} ended during the restore (${why})`);
      }
    }
    try {
      guard.close();
    } catch (err) {
      stats = new CrError(stats instanceof CrError ? `${stats.message}; and ${(err as Error).message}` : (err as Error).message);
    }
    if (stats instanceof CrError) throw stats;
    lap('fds');
    try {
      checkFdNumbers(pid, expectedFds(table, target));
    } catch (err) {
      // Killed after the cure: its fds went with it.
      if (!isRunning(pid)) throw new CrError(`pid ${pid} ended during the restore (${(err as Error).message})`);
      throw err;
    }
    return { pid, plan, stats, phases };
  } finally {
    thaw(frozen, { leaveStopped: false });
    lap('thaw');
  }
}
