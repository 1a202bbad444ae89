// `restore IMAGE -- CMD`: start CMD stopped at its exec (posix_spawn, so libuv never knows it;
// the new program has not run one instruction), give it exactly the image's fd table, let it go.
// If anything fails the process is killed: a half-restored program never runs.
import { accessSync, constants as fsc, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { detach } from '../../bridge/ptrace.js';
import { killAndReap, spawn } from '../../bridge/spawn.js';
import { badInput, CrError } from '../errors.js';
import { Injector } from '../inject/injector.js';
import type { FdTable } from '../model/fdtable.js';
import type { PlanTarget } from '../model/restore-target.js';
import { replay } from '../replay/replay.js';
import { readNofile } from '../proc/limits.js';
import { readTarget } from '../proc/target-state.js';
import { checkedPlan, checkFdNumbers, expectedFds } from '../replay/check.js';
import type { RestoreReport } from './report.js';
import { stopwatch, type Phases } from '../timing.js';
import type { Author } from '../trust/author.js';
import { asAuthor, fsIdentityOf, fsSwitchFor } from '../trust/fsids.js';

const isExecutableFile = (path: string): boolean => {
  try {
    accessSync(path, fsc.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
};

/** Refuse a CMD that cannot start before any process exists (the exec would fail in sh). */
function checkCommand(cmd: string): void {
  if (cmd.includes('/')) {
    if (!isExecutableFile(cmd)) badInput(`${cmd}: not an executable file`);
    return;
  }
  const dirs = (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter);
  if (!dirs.some((dir) => isExecutableFile(join(dir || '.', cmd)))) badInput(`${cmd}: command not found`);
}

/**
 * Start argv with exactly table's fds, its paths opened with the rights of `author` (the image's,
 * docs/trust.md); null: a table cr made itself in this run, opened with CMD's own rights.
 */
export function restoreFresh(table: FdTable, argv: string[], author: Author | null, opts: { setsid?: boolean } = {}): RestoreReport {
  checkCommand(argv[0]!);
  const phases: Phases = [];
  const lap = stopwatch(phases);
  // The child inherits our RLIMIT_NOFILE and, spawned with no fds, has none open: plan for that
  // before starting anything, so a table no plan can restore starts no process.
  let target: PlanTarget = { fds: [], rlimit: readNofile(process.pid), mode: 'fresh' };
  let plan = checkedPlan(table, target);
  // CMD starts with cr's ids: one that could not open as the author is refused before it exists.
  if (author) fsSwitchFor(author, fsIdentityOf(process.pid), `${argv[0]} (as cr's user)`);
  lap('plan');
  let pid: number;
  try {
    pid = spawn(argv, { fds: [], stopAtExec: true, setsid: opts.setsid ?? false });
  } catch (err) {
    throw new CrError(`cannot start ${argv[0]}: ${(err as Error).message}`);
  }
  try {
    const state = readTarget(pid);
    if (state.fds.length > 0 || state.rlimit.soft !== target.rlimit.soft || state.rlimit.hard !== target.rlimit.hard) {
      target = { fds: state.fds, rlimit: state.rlimit, mode: 'fresh' };
      plan = checkedPlan(table, target);
    }
    lap('start');
    const opener = fsIdentityOf(pid);
    const ids = author && fsSwitchFor(author, opener, `${argv[0]} (pid ${pid})`);
    const inj = Injector.attach(pid);
    lap('attach');
    // No finish() on failure: the process is killed, and its state no longer matters.
    const stats = asAuthor(inj, ids, opener, () => replay(inj, table, plan));
    lap('fds');
    inj.finish();
    checkFdNumbers(pid, expectedFds(table, target));
    detach(pid);
    lap('detach');
    return { pid, plan, stats, phases };
  } catch (err) {
    killAndReap(pid);
    const message = err instanceof Error ? err.message : String(err);
    throw new CrError(`${message}; pid ${pid} (${argv[0]}) was killed`, err instanceof CrError ? err.code : 1);
  }
}
