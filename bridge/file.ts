// open/close/read/write on cr's own fds, with SyscallError on failure.
import { check } from './errno.js';
import { libc } from './libc.js';

// Flag values are the kernel's ABI and live in src/model/fdtable.ts, which callers import; the
// bridge takes them as plain numbers.

export function openFile(path: string, flags: number, mode = 0): number {
  return check(libc.open(path, flags, 'uint', mode), () => `open(${JSON.stringify(path)}, flags=0o${flags.toString(8)}, mode=0o${mode.toString(8)})`);
}

/** openat(2): path relative to the directory open at dirfd (AT_FDCWD: the cwd). */
export function openAt(dirfd: number, path: string, flags: number, mode = 0): number {
  return check(libc.openat(dirfd, path, flags, 'uint', mode), () => `openat(${dirfd}, ${JSON.stringify(path)}, flags=0o${flags.toString(8)})`);
}

export const AT_FDCWD = -100;
export const AT_SYMLINK_FOLLOW = 0x400;
export const AT_EMPTY_PATH = 0x1000;

/** linkat(2): a new name for a file, e.g. an O_TMPFILE one (AT_EMPTY_PATH, oldpath ''). */
export function linkAt(olddirfd: number, oldpath: string, newdirfd: number, newpath: string, flags: number): void {
  check(libc.linkat(olddirfd, oldpath, newdirfd, newpath, flags), () => `linkat(${olddirfd}, ${JSON.stringify(oldpath)}, ${newdirfd}, ${JSON.stringify(newpath)}, 0x${flags.toString(16)})`);
}

export const RENAME_EXCHANGE = 2;

/** renameat2(2): with RENAME_EXCHANGE, the two names swap what they name, atomically. */
export function renameAt2(olddirfd: number, oldpath: string, newdirfd: number, newpath: string, flags: number): void {
  check(libc.renameat2(olddirfd, oldpath, newdirfd, newpath, flags), () => `renameat2(${olddirfd}, ${JSON.stringify(oldpath)}, ${newdirfd}, ${JSON.stringify(newpath)}, 0x${flags.toString(16)})`);
}

/** readlinkat(2) into buf: the link's length in bytes (buf.length: it may not all have fit). */
export function readlinkAt(dirfd: number, path: string, buf: Buffer): number {
  return check(libc.readlinkat(dirfd, path, buf, buf.length), () => `readlinkat(${dirfd}, ${JSON.stringify(path)})`);
}

/** fcntl(F_DUPFD_CLOEXEC): a second fd of fd's open file, close-on-exec. */
export function dupFd(fd: number): number {
  return check(libc.fcntl(fd, 1030, 'int', 0), () => `fcntl(fd=${fd}, F_DUPFD_CLOEXEC)`);
}

export const LOCK_EX = 2;
export const LOCK_NB = 4;

/** flock(2): a lock on the open file description of fd (EAGAIN with LOCK_NB when another holds one). */
export function flockFd(fd: number, op: number): void {
  check(libc.flock(fd, op), () => `flock(fd=${fd}, ${op})`);
}

export function closeFd(fd: number): void {
  check(libc.close(fd), () => `close(fd=${fd})`);
}

/** read(2) into buf; returns bytes read (0 at end of file). */
export function readFd(fd: number, buf: Buffer): number {
  return check(libc.read(fd, buf, buf.length), () => `read(fd=${fd}, len=${buf.length})`);
}

export function writeFd(fd: number, buf: Buffer): number {
  return check(libc.write(fd, buf, buf.length), () => `write(fd=${fd}, len=${buf.length})`);
}
