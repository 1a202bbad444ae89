// What kind of open file an fd is, and whether cr can checkpoint it: anonymous pipes, named
// FIFOs, regular files and character devices opened by a path that still names them. Anything
// else is unsupported, with a reason dump prints (or records, under --skip-unsupported).
import { statSync } from 'node:fs';
import {
  O_ACCMODE, O_APPEND, O_ASYNC, O_DIRECT, O_DSYNC, O_LARGEFILE, O_NOATIME, O_NONBLOCK, O_PATH, O_SYNC,
} from '../model/fdtable.js';
import type { ProcFd } from '../proc/fds.js';
import { printable } from '../printable.js';

export type Kind =
  /** `pipe` and `fifo` carry the key of their pipe object (the inode), `fifo` its path */
  | { kind: 'pipe'; pipeKey: string }
  | { kind: 'fifo'; pipeKey: string; path: string }
  | { kind: 'file'; path: string }
  | { kind: 'chr'; path: string };

export interface Unsupported {
  fd: number;
  /** a short name: socket, eventfd, epoll, directory, deleted file, ... */
  kind: string;
  reason: string;
}

/** Status flags a description of a supported kind can carry and a restore can recreate. */
const RESTORABLE_FLAGS = O_ACCMODE | O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME | O_ASYNC | O_DSYNC | O_SYNC | O_LARGEFILE;

/** Device number of /dev/ptmx (major 5, minor 2). */
const PTMX_RDEV = (5 << 8) | 2;

const inodeKey = (e: ProcFd): string => `${e.stat.dev}:${e.stat.ino}`;

/** anon_inode:[eventfd] -> eventfd; eventpoll is better known as epoll. */
function anonKind(link: string): string | null {
  const m = /^anon_inode:\[?([^\]]*)\]?$/.exec(link);
  if (!m) return null;
  return m[1] === 'eventpoll' ? 'epoll' : m[1] || 'anon inode';
}

function isUnderProc(path: string): boolean {
  return path === '/proc' || path.startsWith('/proc/');
}

/** Check that the path an fd was opened by still names its inode; a reason when it does not. */
function pathProblem(e: ProcFd): string | null {
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

export function classify(e: ProcFd): Kind | Unsupported {
  const no = (kind: string, reason: string): Unsupported => ({ fd: e.fd, kind, reason });
  // A file name is whatever the process (or anyone) chose: escaped wherever a message shows it.
  const link = printable(e.link);
  const st = e.stat;
  if ((e.flags & O_PATH) !== 0) return no('O_PATH fd', `an O_PATH fd on ${link} is not an open file description cr can restore`);
  if (st.isSocket()) return no('socket', `${link}: sockets are not supported`);
  const anon = anonKind(e.link);
  if (anon !== null) return no(anon, `${link}: ${anon} fds are not supported`);
  // A directory's O_DIRECTORY would pass for an unusual flag: name it for what it is.
  if (st.isDirectory()) return no('directory', `${link}: directory fds are not supported`);
  const odd = e.flags & ~RESTORABLE_FLAGS;
  if (odd !== 0) return no('file with unusual flags', `${link}: flags 0o${(odd >>> 0).toString(8)} cannot be recreated`);
  if (st.isFIFO()) {
    if (e.link.startsWith('pipe:')) return { kind: 'pipe', pipeKey: inodeKey(e) };
    if (st.nlink === 0) return no('deleted FIFO', `${link}: the FIFO was deleted, so it cannot be reopened by path`);
    const problem = pathProblem(e);
    return problem ? no('fifo', problem) : { kind: 'fifo', pipeKey: inodeKey(e), path: e.link };
  }
  if (st.isFile()) {
    if (st.nlink === 0) {
      const kind = e.link.startsWith('/memfd:') ? 'memfd' : 'deleted file';
      return no(kind, `${link}: deleted files are not supported yet (there is no path to reopen)`);
    }
    if (!Number.isSafeInteger(e.pos)) return no('file', `${link}: offset ${e.pos} is beyond 2^53`);
    const problem = pathProblem(e);
    return problem ? no('file', problem) : { kind: 'file', path: e.link };
  }
  if (st.isCharacterDevice()) {
    // Opening /dev/ptmx makes a new terminal: a master cannot be restored by its path.
    if (st.rdev === PTMX_RDEV) return no('pty master', `${link}: a pty master cannot be reopened by path`);
    const problem = pathProblem(e);
    return problem ? no('chr', problem) : { kind: 'chr', path: e.link };
  }
  if (st.isBlockDevice()) return no('block device', `${link}: block devices are not supported`);
  return no('unknown', `${link}: unknown kind of file`);
}

export const isUnsupported = (k: Kind | Unsupported): k is Unsupported => 'reason' in k;
