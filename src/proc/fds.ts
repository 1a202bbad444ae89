// The fds of a process as /proc shows them: numbers, link targets, the inode behind each,
// and the per-fd fdinfo (position, status flags, close-on-exec).
import { readdirSync, readFileSync, readlinkSync, statSync, type Stats } from 'node:fs';
import { O_CLOEXEC } from '../model/fdtable.js';

/** What /proc says about one fd, read while the process is frozen. */
export interface ProcFd {
  fd: number;
  /** readlink of /proc/PID/fd/N: a path, `pipe:[ino]`, `socket:[ino]`, `anon_inode:[eventfd]`, ... */
  link: string;
  /** stat of the open inode (through the magic link, so it never resolves the path again) */
  stat: Stats;
  /** fdinfo `pos` */
  pos: number;
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
  /** the raw `flags` line: F_GETFL plus O_CLOEXEC when the fd is close-on-exec */
  flags: number;
}

/** Parse /proc/PID/fdinfo/N text; only `pos` and `flags` matter to cr. */
function parseFdinfo(text: string): Fdinfo {
  let pos: number | undefined;
  let flags: number | undefined;
  for (const line of text.split('\n')) {
    const m = /^(\w+):\s+(\S+)/.exec(line);
    if (!m) continue;
    if (m[1] === 'pos') pos = Number(m[2]);
    else if (m[1] === 'flags') flags = parseInt(m[2]!, 8);
  }
  if (pos === undefined || flags === undefined || Number.isNaN(pos) || Number.isNaN(flags)) {
    throw new Error(`unexpected fdinfo: ${JSON.stringify(text.slice(0, 80))}`);
  }
  return { pos, flags };
}

function readFdinfo(pid: number, fd: number): Fdinfo {
  return parseFdinfo(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1'));
}

export function readProcFd(pid: number, fd: number): ProcFd {
  const path = `/proc/${pid}/fd/${fd}`;
  const link = readlinkSync(path);
  const stat = statSync(path);
  const info = readFdinfo(pid, fd);
  return { fd, link, stat, pos: info.pos, flags: info.flags & ~O_CLOEXEC, cloexec: (info.flags & O_CLOEXEC) !== 0 };
}
