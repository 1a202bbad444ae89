// Pipes: creation, non-consuming copy (tee), moving bytes (splice) and capacity.
import { check } from './errno.js';
import { libc } from './libc.js';

export const SPLICE_F_NONBLOCK = 2;
export const F_SETPIPE_SZ = 1031;
const F_GETPIPE_SZ = 1032;
const FIONREAD = 0x541b;

const fdsBuf = new Int32Array(2);
/** FIONREAD's int, reused by every call (a dump asks hundreds of pipes). */
const queuedBuf = Buffer.alloc(4);

/** pipe2(2): [read end, write end]. */
export function pipe2(flags: number): [number, number] {
  check(libc.pipe2(fdsBuf, flags), () => `pipe2(flags=0x${flags.toString(16)})`);
  return [fdsBuf[0]!, fdsBuf[1]!];
}

/** Copy up to len bytes from pipe fdIn to pipe fdOut without consuming them from fdIn. */
export function tee(fdIn: number, fdOut: number, len: number, flags: number): number {
  return check(libc.tee(fdIn, fdOut, len, flags), () => `tee(fdIn=${fdIn}, fdOut=${fdOut}, len=${len}, flags=0x${flags.toString(16)})`);
}

export function splice(fdIn: number, fdOut: number, len: number, flags: number): number {
  return check(
    libc.splice(fdIn, null, fdOut, null, len, flags),
    () => `splice(fdIn=${fdIn}, fdOut=${fdOut}, len=${len}, flags=0x${flags.toString(16)})`,
  );
}

export function getPipeSize(fd: number): number {
  return check(libc.fcntl(fd, F_GETPIPE_SZ, 'int', 0), () => `fcntl(fd=${fd}, F_GETPIPE_SZ)`);
}

/** Returns the capacity the kernel actually set (rounded up to a power-of-two number of pages). */
export function setPipeSize(fd: number, size: number): number {
  return check(libc.fcntl(fd, F_SETPIPE_SZ, 'int', size), () => `fcntl(fd=${fd}, F_SETPIPE_SZ, ${size})`);
}

/** Bytes queued in the pipe behind fd (FIONREAD), which any end answers: no read access needed. */
export function pipeQueued(fd: number): number {
  check(libc.ioctlBuf(fd, FIONREAD, queuedBuf), () => `ioctl(fd=${fd}, FIONREAD)`);
  return queuedBuf.readInt32LE(0);
}
