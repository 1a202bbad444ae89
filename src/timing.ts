// Where a command's time went: milliseconds per phase, for --timings and the benches.
import { now } from '../bridge/clock.js';

/** Milliseconds per phase, in the order they ran. */
export type Phases = Array<[string, number]>;

/** A stopwatch that records the time since the previous lap under each name. */
export function stopwatch(phases: Phases): (name: string) => void {
  let t = now();
  return (name) => {
    const at = now();
    phases.push([name, at - t]);
    t = at;
  };
}
