// What a restore target is to the planner: the fd numbers it has open now, its RLIMIT_NOFILE, and
// how the plan may treat those fds. Input to the planner, the simulator and replay alike, and
// parsed from untrusted JSON by image/validate.ts, so it lives below all of them.
import type { Rlimit } from './fdtable.js';

/** How the planner may treat the fds the target already has. */
export type TargetMode =
  /** a process cr started for the restore: its fds may be closed whenever convenient */
  | 'fresh'
  /** a live process: its fds are untouched until the commit; those not in the image stay */
  | 'into'
  /** as 'into', but target fds not in the image are closed after the commit */
  | 'into-exact';

export interface PlanTarget {
  /** fd numbers open in the target now */
  fds: number[];
  /** the target's RLIMIT_NOFILE now */
  rlimit: Rlimit;
  mode: TargetMode;
  /**
   * Target fds that already hold a description of the table: a child forked during a tree's
   * restore inherits its parent's (src/plan/tree.ts). `desc` is the description's id. Only in
   * 'fresh' mode; never read from JSON.
   */
  inherited?: Array<{ fd: number; desc: number; cloexec: boolean }>;
}
