// Who a process is, as /proc shows it: identity for the image, and the state and tracer that
// decide whether cr may freeze it.
import { readdirSync } from 'node:fs';
import { badInput } from '../errors.js';
import { readProc } from './read.js';

/** PF_EXITING (include/linux/sched.h): the task is in do_exit. */
const PF_EXITING = 0x4;
/** SIGKILL (9) in /proc/PID/status's signal masks. */
const SIGKILL_BIT = 1n << 8n;

export interface ProcessIdentity {
  pid: number;
  comm: string;
  cmdline: string[];
  /** real uid */
  uid: number;
}

export interface ProcessStatus {
  /** one-letter state from `State:` (R, S, D, T, t, Z, X, ...) */
  state: string;
  uid: number;
  /** pid of the process tracing it, 0 when none */
  tracerPid: number;
  /** thread-group id: the pid of the process this thread belongs to */
  tgid: number;
  /** `Seccomp:` 0 none, 1 strict, 2 filters */
  seccomp: number;
}

export function readStatus(pid: number): ProcessStatus {
  const text = readProc(`/proc/${pid}/status`);
  const field = (name: string): string => {
    const m = new RegExp(`^${name}:\\s*(.*)$`, 'm').exec(text);
    if (!m) throw new Error(`/proc/${pid}/status has no ${name} line`);
    return m[1]!;
  };
  return {
    state: field('State').charAt(0),
    uid: Number(field('Uid').split(/\s+/)[0]),
    tracerPid: Number(field('TracerPid')),
    tgid: Number(field('Tgid')),
    // Absent without CONFIG_SECCOMP: then nothing can be filtered.
    seccomp: Number(/^Seccomp:\s*(\d+)/m.exec(text)?.[1] ?? 0),
  };
}

/** Credentials as /proc/PID/status shows them: real, effective, saved and fs ids; groups sorted. */
export interface Creds {
  uid: number[];
  gid: number[];
  groups: number[];
}

export function readCreds(pid: number): Creds {
  const text = readProc(`/proc/${pid}/status`);
  const ids = (name: string): number[] => {
    const m = new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(text);
    if (!m) throw new Error(`/proc/${pid}/status has no ${name} line`);
    const v = m[1]!.trim();
    return v === '' ? [] : v.split(/\s+/).map(Number);
  };
  return { uid: ids('Uid'), gid: ids('Gid'), groups: ids('Groups') };
}

export function readIdentity(pid: number): ProcessIdentity {
  const comm = readProc(`/proc/${pid}/comm`, 'utf8').replace(/\n$/, '');
  const raw = readProc(`/proc/${pid}/cmdline`, 'utf8');
  // Arguments are NUL-terminated; a process that rewrote its argv may leave no final NUL.
  const cmdline = raw === '' ? [] : raw.replace(/\0$/, '').split('\0');
  return { pid, comm, cmdline, uid: readStatus(pid).uid };
}

/** Thread ids of pid, ascending (the thread-group leader is pid itself, while it lives). */
export function listThreads(pid: number): number[] {
  return readdirSync(`/proc/${pid}/task`)
    .map(Number)
    .sort((a, b) => a - b);
}

/** False once the process is gone, exiting, killed or a zombie: whatever failed then failed because it ended. */
export function isRunning(pid: number): boolean {
  try {
    // A process killed a moment ago has closed its fds and freed its memory (do_exit) while its
    // state still reads R or D: the kernel's PF_EXITING flag (field 9 of stat) says it is going.
    const stat = readProc(`/proc/${pid}/stat`);
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const state = fields[0];
    if (state === 'Z' || state === 'X' || (Number(fields[6]) & PF_EXITING) !== 0) return false;
    // Killed, and not yet run to do_exit: kill(2) of SIGKILL adds it to every thread's own pending
    // set before it returns (complete_signal), and wakes a tracee out of its ptrace stop, so a
    // ptrace call that failed with ESRCH a moment later finds it here before PF_EXITING is set.
    const pending = /^SigPnd:\s*([0-9a-f]+)$/m.exec(readProc(`/proc/${pid}/status`))?.[1];
    return pending === undefined || (BigInt(`0x${pending}`) & SIGKILL_BIT) === 0n;
  } catch {
    return false;
  }
}

/**
 * Refuse a thread id that is not its process's leader: /proc/TID answers like a process, but
 * a dump or restore acts on whole processes, and silently taking another pid would surprise.
 * Nothing is said about a pid that does not exist: the caller reports that in its own words.
 */
export function refuseThreadId(pid: number): void {
  let tgid: number;
  try {
    tgid = readStatus(pid).tgid;
  } catch {
    return;
  }
  if (tgid !== pid) badInput(`${pid} is a thread of process ${tgid}, not a process: cr works on whole processes (give ${tgid})`);
}
