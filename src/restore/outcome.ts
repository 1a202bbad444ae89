// What a restore reports: the process, the plan it ran, and where the time went.
import type { Plan } from '../plan/ops.js';
import type { ReplayStats } from '../replay/replay.js';

/** Milliseconds per phase, in the order they ran. */
export type Phases = Array<[string, number]>;

export interface Outcome {
  pid: number;
  plan: Plan;
  stats: ReplayStats;
  phases: Phases;
}

/** A stopwatch that records the time since the previous lap under each name. */
export function stopwatch(phases: Phases): (name: string) => void {
  let t = performance.now();
  return (name) => {
    const now = performance.now();
    phases.push([name, now - t]);
    t = now;
  };
}
