// waitpid with the status decoded. cr reaps and watches its tracees itself (never via
// child_process), so these are the only waits on them.
import { check } from './errno.js';
import { libc } from './libc.js';
import { now } from './clock.js';

export const WNOHANG = 1;
export const WUNTRACED = 2;
export const WCONTINUED = 8;
/** Wait for all children, clone children and ptrace tracees alike. */
export const WALL = 0x40000000;

export interface WaitResult {
  pid: number;
  /** The raw status word. */
  status: number;
  kind: 'exited' | 'signaled' | 'stopped' | 'continued';
  /** Exit status when kind is 'exited', else -1. */
  code: number;
  /** Terminating signal ('signaled') or stop signal ('stopped'), else 0. */
  signal: number;
  /** PTRACE_EVENT_* of a ptrace event stop (PTRACE_EVENT_STOP for group-stops of seized tracees), else 0. */
  event: number;
}

function decodeStatus(pid: number, status: number): WaitResult {
  const low = status & 0x7f;
  if (low === 0) return { pid, status, kind: 'exited', code: (status >> 8) & 0xff, signal: 0, event: 0 };
  if ((status & 0xff) === 0x7f) {
    return { pid, status, kind: 'stopped', code: -1, signal: (status >> 8) & 0xff, event: (status >> 16) & 0xff };
  }
  if (status === 0xffff) return { pid, status, kind: 'continued', code: -1, signal: 0, event: 0 };
  return { pid, status, kind: 'signaled', code: -1, signal: low, event: 0 };
}

const statusBuf = new Int32Array(1);

/** waitpid(2); null when WNOHANG was given and nothing changed. */
export function waitpid(pid: number, flags: number): WaitResult | null {
  const got = check(libc.waitpid(pid, statusBuf, flags), () => `waitpid(pid=${pid}, flags=0x${flags.toString(16)})`);
  if (got === 0) return null;
  return decodeStatus(got, statusBuf[0]!);
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Wait up to timeoutMs for the next state change of pid (stop, exit, ...), polling with
 * WNOHANG so a tracee that never stops cannot hang cr. Spins with sched_yield first: ptrace
 * stops usually arrive within microseconds, and sleeping would dominate their cost. `flags`
 * (default __WALL) may add WUNTRACED to see stops of a child that is not traced.
 */
export function waitStop(pid: number, timeoutMs: number, flags = WALL): WaitResult {
  const deadline = now() + timeoutMs;
  for (let round = 0; ; round++) {
    const result = waitpid(pid, WNOHANG | flags);
    if (result) return result;
    if (now() > deadline) throw new Error(`waitpid(pid=${pid}): no state change within ${timeoutMs} ms`);
    if (round < 200) libc.schedYield();
    else Atomics.wait(sleeper, 0, 0, Math.min(1, (round - 200) * 0.05 + 0.05));
  }
}
