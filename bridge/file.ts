// open/close/read/write on cr's own fds, with SyscallError on failure.
import { check } from './errno.js';
import { libc } from './libc.js';

// Flag values are the kernel's ABI and live in src/model/fdtable.ts, which callers import; the
// bridge takes them as plain numbers.

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
