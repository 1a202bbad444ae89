// Where a command's time went: milliseconds per phase, for --timings and the benches.

/** Milliseconds per phase, in the order they ran. */
export type Phases = Array<[string, number]>;

/** A stopwatch that records the time since the previous lap under each name. */
export function stopwatch(phases: Phases): (name: string) => void {
  let t = performance.now();
  return (name) => {
    const now = performance.now();
    phases.push([name, now - t]);
    t = now;
  };
}
