// The POSIX timers (timer_create) of a frozen process, from /proc/PID/timers: id, clock, signal
// and its value, and how it notifies (a signal to the process or to its thread, or nothing).
// Their interval and time left are read by injected timer_gettime (injected-reads.ts). What
// restart cannot create again (a CPU clock of another process, SIGEV_THREAD) is a reason to refuse.
import { TIMER_CLOCKS } from '../image/process-head.js';
import { readProc } from '../proc/read.js';

export interface TimerEntry {
  id: number;
  clock: number;
  notify: 'signal' | 'thread' | 'none';
  signal: number;
  /** sigev_value, 8 bytes as the kernel shows the pointer */
  value: Buffer;
}


const BLOCK = /^ID: (\d+)\nsignal: (\d+)\/([0-9a-f]{16})\nnotify: (\w+)\/(pid|tid)\.(\d+)\nClockID: (-?\d+)$/gm;

export function readTimers(pid: number): { timers: TimerEntry[]; refusals: string[] } {
  const text = readProc(`/proc/${pid}/timers`);
  const timers: TimerEntry[] = [];
  const refusals: string[] = [];
  for (const m of text.matchAll(BLOCK)) {
    const [, id, signal, value, how, target, who, clock] = m;
    const what = `process ${pid}'s POSIX timer ${id}`;
    if (!TIMER_CLOCKS.includes(Number(clock))) refusals.push(`${what} counts clock ${clock} (another process's CPU time, say), which cr cannot create again`);
    else if (how === 'thread') refusals.push(`${what} notifies by SIGEV_THREAD, which cr cannot create again`);
    else if (Number(who) !== pid) refusals.push(`${what} notifies ${target} ${who}, not the process itself`);
    else timers.push({ id: Number(id), clock: Number(clock), notify: how === 'none' ? 'none' : target === 'tid' ? 'thread' : 'signal', signal: Number(signal), value: Buffer.from(value!, 'hex').reverse() });
  }
  const listed = (text.match(/^ID: /gm) ?? []).length;
  if (listed !== timers.length + refusals.length) refusals.push(`process ${pid}: /proc/PID/timers shows a timer cr cannot read`);
  return { timers: timers.sort((a, b) => a.id - b.id), refusals };
}
