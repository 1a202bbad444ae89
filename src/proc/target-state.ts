// What a restore target has before the plan runs: its fd numbers and RLIMIT_NOFILE, read from
// /proc while it is held still, so the planner works from the table as it is.
import type { Rlimit } from '../model/fdtable.js';
import { listFds } from './fds.js';
import { readNofile } from './limits.js';

export interface TargetState {
  pid: number;
  /** fd numbers open now, ascending */
  fds: number[];
  rlimit: Rlimit;
}

export function readTarget(pid: number): TargetState {
  return { pid, fds: listFds(pid), rlimit: readNofile(pid) };
}
