// lseek(2) with SEEK_DATA/SEEK_HOLE, and F_GET_SEALS: reading a file's contents sparse-aware and a
// memfd's seals through an fd cr opened.
import { SyscallError } from './errno.js';
import { libc } from './libc.js';
import { check } from './errno.js';

const SYS_lseek = 8;
const SYS_fcntl = 72;
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;
const ENXIO = 6;
const F_GET_SEALS = 1034;

/** lseek(fd, offset, whence); null for ENXIO (SEEK_DATA past the last data). */
export function seek(fd: number, offset: number, whence: number): number | null {
  try {
    return check(libc.syscall(SYS_lseek, 'int', fd, 'long', offset, 'int', whence), () => `lseek(${fd}, ${offset}, ${whence})`);
  } catch (err) {
    if (err instanceof SyscallError && err.errno === ENXIO) return null;
    throw err;
  }
}

/** fcntl(fd, F_GET_SEALS) */
export function getSeals(fd: number): number {
  return check(libc.syscall(SYS_fcntl, 'int', fd, 'int', F_GET_SEALS), () => `fcntl(${fd}, F_GET_SEALS)`);
}
