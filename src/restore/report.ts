// What a restore reports: the process, the plan it ran, and where the time went.
import type { Plan } from '../plan/ops.js';
import type { ReplayStats } from '../replay/replay.js';
import type { Phases } from '../timing.js';

export interface RestoreReport {
  pid: number;
  plan: Plan;
  stats: ReplayStats;
  phases: Phases;
}
