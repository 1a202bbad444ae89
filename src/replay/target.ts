// What a restore target has before the plan runs: its fd numbers and RLIMIT_NOFILE, read from
// /proc while it is held still, so the planner works from the table as it is.
import { readFileSync } from 'node:fs';
import type { Rlimit } from '../model/fdtable.js';
import { listFds } from '../proc/fds.js';

export interface TargetState {
  pid: number;
  /** fd numbers open now, ascending */
  fds: number[];
  rlimit: Rlimit;
}

/**
 * RLIMIT_NOFILE from /proc/PID/limits, which anyone may read: prlimit(2) on another process
 * needs matching uids or CAP_SYS_RESOURCE, which cr (even as root) may lack.
 */
export function readNofile(pid: number): Rlimit {
  const text = readFileSync(`/proc/${pid}/limits`, 'latin1');
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(text);
  if (!m) throw new Error(`/proc/${pid}/limits has no "Max open files" line`);
  const value = (s: string): number => (s === 'unlimited' ? Infinity : Number(s));
  return { soft: value(m[1]!), hard: value(m[2]!) };
}

export function readTarget(pid: number): TargetState {
  return { pid, fds: listFds(pid), rlimit: readNofile(pid) };
}
