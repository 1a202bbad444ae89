// The fds of a process as /proc shows them: numbers, link targets, the inode behind each,
// and the per-fd fdinfo (position, status flags, close-on-exec).
import { readdirSync, readFileSync, readlinkSync, statSync, type Stats } from 'node:fs';
import { O_CLOEXEC } from '../model/fdtable.js';

/** What /proc says about one fd, read while the process is frozen. */
export interface ProcFd {
  /** the process the fd is in (a socket's kind asks the kernel about it through a dup of its own) */
  pid: number;
  fd: number;
  /** readlink of /proc/PID/fd/N: a path, `pipe:[ino]`, `socket:[ino]`, `anon_inode:[eventfd]`, ... */
  link: string;
  /** stat of the open inode (through the magic link, so it never resolves the path again) */
  stat: Stats;
  /** fdinfo `pos` (inexact above 2^53: posText is exact) */
  pos: number;
  /** fdinfo `pos` as the kernel wrote it (a directory's position may be a 63-bit cookie) */
  posText: string;
  /** every fdinfo line as name -> value text (eventfd-count, eventfd-semaphore, ...) */
  info: Map<string, string>;
  /** the whole fdinfo text, for kinds with lines that repeat (an epoll's `tfd:` items) */
  text: string;
  /** fdinfo `flags` without O_CLOEXEC: what F_GETFL returns */
  flags: number;
  /** fdinfo's O_CLOEXEC bit, which is the fd's FD_CLOEXEC */
  cloexec: boolean;
}

/** fd numbers open in pid, ascending. */
export function listFds(pid: number): number[] {
  return readdirSync(`/proc/${pid}/fd`)
    .map(Number)
    .sort((a, b) => a - b);
}

interface Fdinfo {
  /** may exceed 2^53 (and so be inexact) for a far-seeked file: callers check */
  pos: number;
  posText: string;
  /** the raw `flags` line: F_GETFL plus O_CLOEXEC when the fd is close-on-exec */
  flags: number;
  info: Map<string, string>;
}

/** Parse /proc/PID/fdinfo/N text: `pos` and `flags` for every fd, the rest for the kinds that read it. */
function parseFdinfo(text: string): Fdinfo {
  const info = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([\w-]+):\s+(\S+)/.exec(line);
    if (m && !info.has(m[1]!)) info.set(m[1]!, m[2]!);
  }
  const posText = info.get('pos');
  const pos = Number(posText);
  const flags = parseInt(info.get('flags') ?? '', 8);
  if (posText === undefined || !/^\d+$/.test(posText) || Number.isNaN(flags)) {
    throw new Error(`unexpected fdinfo: ${JSON.stringify(text.slice(0, 80))}`);
  }
  return { pos, posText, flags, info };
}

export function readProcFd(pid: number, fd: number): ProcFd {
  const path = `/proc/${pid}/fd/${fd}`;
  const link = readlinkSync(path);
  const stat = statSync(path);
  const text = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1');
  const info = parseFdinfo(text);
  return { pid, fd, link, stat, pos: info.pos, posText: info.posText, info: info.info, text, flags: info.flags & ~O_CLOEXEC, cloexec: (info.flags & O_CLOEXEC) !== 0 };
}
