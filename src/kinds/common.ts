// Pieces several kinds share: looking at a path an fd was opened by, the flags F_GETFL may carry,
// and the fields of the kinds opened by path.
import { statSync } from 'node:fs';
import { badInput } from '../errors.js';
import {
  O_ACCMODE, O_APPEND, O_ASYNC, O_DIRECT, O_DSYNC, O_LARGEFILE, O_NOATIME, O_NOCTTY, O_NONBLOCK, O_SYNC, O_CREAT,
  O_EXCL, O_TRUNC,
} from '../model/fdtable.js';
import { get, integer, type Obj } from '../model/json.js';
import type { ProcFd } from '../proc/fds.js';
import { printable } from '../printable.js';
import type { Unsupported } from './kind.js';

/** Status flags a description opened by path or made by pipe2 can carry and a restore can recreate. */
export const RESTORABLE_FLAGS = O_ACCMODE | O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME | O_ASYNC | O_DSYNC | O_SYNC | O_LARGEFILE;

/** F_GETFL never holds these, but an image might: open() must not get them. */
const OPEN_DROP = O_CREAT | O_EXCL | O_TRUNC;

export const no = (e: ProcFd, kind: string, reason: string): Unsupported => ({ fd: e.fd, kind, reason });

export const inodeKey = (e: ProcFd): string => `${e.stat.dev}:${e.ino}`;

function isUnderProc(path: string): boolean {
  return path === '/proc' || path.startsWith('/proc/');
}

/** Check that the path an fd was opened by still names its inode; a reason when it does not. */
export function pathProblem(e: ProcFd): string | null {
  const link = printable(e.link);
  if (!e.link.startsWith('/')) return `its path "${printable(e.link, '"')}" is not absolute (another mount namespace?)`;
  if (isUnderProc(e.link)) return `${link} is under /proc, which names the dumping process's view, not a file to reopen`;
  try {
    const now = statSync(e.link);
    if (now.dev === e.stat.dev && now.ino === e.stat.ino) return null;
  } catch {
    // gone or unreachable: same answer
  }
  return `${link} no longer names the open file (renamed over, or not visible to cr)`;
}

/** Flags outside `allowed`, as the Unsupported a kind refuses them with; null when there are none. */
export function oddFlags(e: ProcFd, allowed: number, kind: string): Unsupported | null {
  const odd = e.flags & ~allowed;
  return odd === 0 ? null : no(e, `${kind} with unusual flags`, `${printable(e.link)}: flags 0o${(odd >>> 0).toString(8)} cannot be recreated`);
}

/** open() flags for a description opened by path: its own but what open() cannot take; O_NOCTTY so a terminal never becomes the target's. */
export function byPathFlags(flags: number): number {
  return ((flags & ~OPEN_DROP) | O_NOCTTY) >>> 0;
}

/** F_GETFL after open(path, callFlags): open() adds O_LARGEFILE on x86_64; O_NOCTTY is not kept. */
export function afterOpen(callFlags: number): number {
  return ((callFlags & ~O_NOCTTY) | O_LARGEFILE) >>> 0;
}

/** An optional byte position, a safe integer. */
export function optionalOffset(obj: Obj, where: string): number | undefined {
  const offset = get(obj, 'offset');
  return offset === undefined ? undefined : integer(offset, `${where}.offset`, 0, Number.MAX_SAFE_INTEGER);
}

/** The position kinds keep as decimal text (a directory's getdents cookie): below 2^63. */
export function parseCookie(value: unknown, where: string): string {
  if (typeof value !== 'string' || !/^(0|[1-9][0-9]{0,18})$/.test(value) || BigInt(value) >= 2n ** 63n) {
    badInput(`${where}: expected a decimal position below 2^63 as a string, got ${typeof value === 'string' ? `"${printable(value.slice(0, 40), '"')}"` : typeof value}`);
  }
  return value;
}

export const quoted = (path: string): string => `"${printable(path, '"')}"`;
