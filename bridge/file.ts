// open/close/read/write on cr's own fds, with SyscallError on failure.
import { check } from './errno.js';
import { libc } from './libc.js';

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_NOCTTY = 0o400;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;
export const O_NONBLOCK = 0o4000;
export const O_DIRECT = 0o40000;
export const O_DIRECTORY = 0o200000;
export const O_NOFOLLOW = 0o400000;
export const O_CLOEXEC = 0o2000000;
export const O_PATH = 0o10000000;

export function openFile(path: string, flags: number, mode = 0): number {
  return check(libc.open(path, flags, 'uint', mode), () => `open(${JSON.stringify(path)}, flags=0o${flags.toString(8)}, mode=0o${mode.toString(8)})`);
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
