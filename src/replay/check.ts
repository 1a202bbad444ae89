// The checks around a replay: before any process is touched, the image's paths must not lead
// into /proc, its user must be the target's (or the user said otherwise), and the plan must pass
// the simulator; afterwards the target must hold exactly the fd numbers the plan promised.
import { lstatSync, readlinkSync, statfsSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { F_GETFD } from '../../bridge/fcntl.js';
import { badInput, CrError } from '../errors.js';
import { ANY_SUCCESS, RECORD_BYTES, type BatchRunner } from '../inject/batch.js';
import { SYS } from '../inject/syscalls.js';
import type { FdTable } from '../model/fdtable.js';
import { printable } from '../printable.js';
import type { Plan } from '../plan/ops.js';
import type { PlanTarget } from '../model/restore-target.js';
import { planRestore } from '../plan/planner.js';
import { listFds } from '../proc/fds.js';
import { verify } from '../sim/verify.js';

/** The planner's plan for this target, refused (CrError) unless the simulator accepts it. */
export function checkedPlan(table: FdTable, target: PlanTarget): Plan {
  const plan = planRestore(table, target);
  const check = verify(table, target, plan);
  if (!check.ok) {
    throw new CrError(`the plan failed the simulator's check${check.op === undefined ? '' : ` at op ${check.op + 1}`}: ${check.reason}`);
  }
  return plan;
}

/** The fd numbers a target must have once the plan ran. */
export function expectedFds(table: FdTable, target: PlanTarget): number[] {
  const fds = new Set(table.fds.map((f) => f.fd));
  if (target.mode === 'into') for (const fd of target.fds) fds.add(fd);
  return [...fds].sort((a, b) => a - b);
}

/** Throw unless pid's open fd numbers are exactly `want`. */
export function checkFdNumbers(pid: number, want: number[]): void {
  const got = listFds(pid);
  const wanted = new Set(want);
  const have = new Set(got);
  const extra = got.filter((fd) => !wanted.has(fd));
  const missing = want.filter((fd) => !have.has(fd));
  const problems = [
    ...(extra.length ? [`has fds ${extra.join(', ')} the plan did not make`] : []),
    ...(missing.length ? [`lacks fds ${missing.join(', ')}`] : []),
  ];
  if (problems.length > 0) throw new CrError(`after the replay pid ${pid} ${problems.join(' and ')}`);
}

/**
 * checkFdNumbers without listing /proc/PID/fd, for a target stopped in cr's hands whose batches
 * `runner` runs: each number of `want` (distinct) is shown open by an F_GETFD in the target, and
 * as many fds are open as `want` has (the size of /proc/PID/fd: its count of open fds, since Linux
 * 6.2), so those are all of them. A first listing of a thousand fds costs the kernel a dentry and
 * an inode for each (about 2 ms here). When either disagrees, or the size is not the count (0 on
 * an older kernel), the listing is made and says which numbers differ.
 */
export function checkFdsHeld(runner: BatchRunner, pid: number, want: number[]): void {
  if (want.length > 0 && statSync(`/proc/${pid}/fd`).size === want.length && allOpen(runner, want)) return;
  checkFdNumbers(pid, want);
}

/** Does every fd of `want` exist in the target? F_GETFD of each, as many a batch as fit. */
function allOpen(runner: BatchRunner, want: number[]): boolean {
  const perBatch = Math.floor(runner.capacity / RECORD_BYTES) - 1;
  for (let at = 0; at < want.length; at += perBatch) {
    const batch = runner.batch();
    const end = Math.min(want.length, at + perBatch);
    for (let i = at; i < end; i++) batch.call(SYS.fcntl, [want[i]!, F_GETFD], ANY_SUCCESS);
    if (runner.run(batch, { unexpectedOnly: true }).matched !== batch.length) return false;
  }
  return true;
}

const PROC_SUPER_MAGIC = 0x9fa0;
/** The kernel's own bound on symlinks followed in one lookup (MAXSYMLINKS). */
const MAX_SYMLINKS = 40;

/**
 * Where path goes once it reaches a procfs (`/proc/self/fd/0` for `/dev/stdin`), following it one
 * component at a time as the kernel would (symlinks read, `..` taken from where they led); null
 * if it reaches none or stops existing first. Done in cr's view of the file system: the target's
 * is not at hand.
 */
function procOnTheWay(path: string, isProc: (dev: number, at: string) => boolean): string | null {
  const todo = path.split('/').reverse();
  let at = '/';
  let links = 0;
  while (todo.length > 0) {
    const part = todo.pop()!;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      at = dirname(at);
      continue;
    }
    const next = at === '/' ? `/${part}` : `${at}/${part}`;
    let st;
    try {
      st = lstatSync(next);
    } catch {
      return null; // missing (or hidden from cr): nothing further to follow
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_SYMLINKS) return null; // the open fails with ELOOP
      const link = readlinkSync(next);
      if (link.startsWith('/')) at = '/';
      todo.push(...link.split('/').reverse());
      continue;
    }
    at = next;
    if (isProc(Number(st.dev), at)) return [at, ...todo.reverse()].filter((p) => p !== '' && p !== '.').join('/');
  }
  return null;
}

/**
 * Refuse (exit 2) an image whose paths lead into /proc by way of symlinks (`/dev/stdin`,
 * `/dev/fd/N`, `/etc/mtab`): opened by the target, they would name its own fds and files, not
 * what the image recorded. Validation already refuses paths that say /proc in their text.
 */
export function checkPaths(table: FdTable): void {
  const procDev = new Map<number, boolean>();
  const isProc = (dev: number, at: string): boolean => {
    let proc = procDev.get(dev);
    if (proc === undefined) procDev.set(dev, (proc = statfsSync(at).type === PROC_SUPER_MAGIC));
    return proc;
  };
  const paths = new Map<number, string>();
  for (const d of table.descs) if ('path' in d) paths.set(d.id, d.path);
  const seen = new Set<number>();
  for (const { fd, desc } of table.fds) {
    const path = paths.get(desc);
    if (path === undefined || seen.has(desc)) continue;
    seen.add(desc);
    const at = procOnTheWay(path, isProc);
    if (at !== null) badInput(`fd ${fd}: "${printable(path, '"')}" leads into /proc (as ${printable(at)}); restored, it would name the target's own files, not the image's`);
  }
}

/**
 * Refuse (exit 2) to give a process of one user what was dumped from another's, unless asked:
 * the image's files, pipes and bytes were that user's. `imageUid` undefined: a JSON table, no user.
 */
export function checkUid(imageUid: number | undefined, runsAs: number, who: string, allowed: boolean): void {
  if (imageUid === undefined || imageUid === runsAs || allowed) return;
  badInput(`the image was dumped from a process of uid ${imageUid}, but ${who} runs as uid ${runsAs}; pass --allow-uid-change to restore it anyway`);
}
