// Milliseconds on the monotonic clock, for deadlines and durations: the clock performance.now()
// reads, without the global `performance`, whose first use loads Node's perf_hooks (ten modules:
// about 0.8 ms CPU and 55 page faults in every dump and restore, docs/performance.md).

/** Now, in milliseconds from an arbitrary origin (only differences mean anything). */
export function now(): number {
  const [s, ns] = process.hrtime();
  return s * 1e3 + ns / 1e6;
}
