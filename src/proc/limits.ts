// Resource limits from /proc/PID/limits. prlimit(2) on a process of another user needs
// CAP_SYS_RESOURCE, which cr may lack even as root; the proc file anyone may read.
import type { Rlimit } from '../model/fdtable.js';
import { readProc } from './read.js';

export interface ProcLimit {
  /** RLIMIT_* number: the file lists the limits in resource order */
  resource: number;
  /** null: unlimited */
  soft: number | null;
  hard: number | null;
}

/** Every limit of the process, in resource order. */
export function readLimits(pid: number): ProcLimit[] {
  const lines = readProc(`/proc/${pid}/limits`).split('\n').slice(1).filter(Boolean);
  return lines.map((line, resource) => {
    // "Max open files            1024                 20000                files"
    const [soft, hard] = line.slice(26).trim().split(/\s+/);
    const value = (v: string | undefined): number | null => {
      if (v === 'unlimited') return null;
      const n = Number(v);
      if (!Number.isSafeInteger(n) || n < 0) throw new Error(`/proc/${pid}/limits: cannot read ${JSON.stringify(line)}`);
      return n;
    };
    return { resource, soft: value(soft), hard: value(hard) };
  });
}

const RLIMIT_NOFILE = 7;

/** RLIMIT_NOFILE (never unlimited: the kernel caps it at fs.nr_open). */
export function readNofile(pid: number): Rlimit {
  const limit = readLimits(pid)[RLIMIT_NOFILE];
  if (!limit || limit.soft === null || limit.hard === null) throw new Error(`/proc/${pid}/limits: no finite "Max open files" limit`);
  return { soft: limit.soft, hard: limit.hard };
}
