// A terminal cr holds an fd on: its foreground process group and its settings (termios2), the
// calls a shell makes for job control (tcgetpgrp, tcsetpgrp, tcgetattr, tcsetattr).
import { check } from './errno.js';
import { libc } from './libc.js';

/** asm-generic/ioctls.h (x86_64) */
const TIOCGPGRP = 0x540f;
export const TIOCSPGRP = 0x5410;
/** make the terminal the caller's controlling one (a session leader with none) */
export const TIOCSCTTY = 0x540e;
const TCGETS2 = 0x802c542a;
const TCSETS2 = 0x402c542b;
/** sizeof(struct termios2) */
export const TERMIOS2_BYTES = 44;
const SIG_IGN = 1;
export const SIGTTOU = 22;

/** The terminal's foreground process group. */
export function tcgetpgrp(fd: number): number {
  const buf = Buffer.alloc(4);
  check(libc.ioctlBuf(fd, TIOCGPGRP, buf), () => `ioctl(${fd}, TIOCGPGRP)`);
  return buf.readInt32LE(0);
}

/** Make pgid the terminal's foreground group (a background caller needs SIGTTOU ignored). */
export function tcsetpgrp(fd: number, pgid: number): void {
  const buf = Buffer.alloc(4);
  buf.writeInt32LE(pgid, 0);
  check(libc.ioctlBuf(fd, TIOCSPGRP, buf), () => `ioctl(${fd}, TIOCSPGRP, ${pgid})`);
}

/**
 * Whether fd is a terminal: its termios can be read, as glibc's isatty asks (tcgetattr), without
 * node:tty (which loads node:net and its streams).
 */
export function isatty(fd: number): boolean {
  return libc.ioctlBuf(fd, TCGETS2, Buffer.alloc(TERMIOS2_BYTES)) === 0;
}

/** The terminal's struct termios2, as it is in memory. */
export function getTermios(fd: number): Buffer {
  const buf = Buffer.alloc(TERMIOS2_BYTES);
  check(libc.ioctlBuf(fd, TCGETS2, buf), () => `ioctl(${fd}, TCGETS2)`);
  return buf;
}

export function setTermios(fd: number, termios: Buffer): void {
  check(libc.ioctlBuf(fd, TCSETS2, Buffer.from(termios)), () => `ioctl(${fd}, TCSETS2)`);
}

/** Ignore sig (SIG_IGN); returns a function that puts back the disposition it had. */
export function ignoreSignal(sig: number): () => void {
  const old = libc.signal(sig, SIG_IGN);
  if (Number(old) === -1) throw new Error(`signal(${sig}, SIG_IGN) failed`);
  return () => void libc.signal(sig, Number(old));
}

const SYS_poll = 7;
const POLLIN = 0x1;
/** poll's revents bit for a pty master in packet mode with a status byte (TIOCPKT_*) to read. */
export const POLLPRI = 0x2;

/**
 * Let bytes on their way into the terminal's line discipline arrive, so that TIOCINQ counts them:
 * a write to one side of a pty reaches the other's input through the kernel's flip buffer, pushed
 * by a worker that may not have run yet (measured here: TIOCINQ on the master right after a write
 * to the slave read 0 in 1,395 of 2,000 tries). n_tty's poll waits for that push when it finds no
 * input (tty_buffer_flush_work in n_tty_poll); poll with no timeout neither waits for input nor
 * reads any. Returns poll's revents (POLLPRI: a packet-mode status byte waits at a master).
 */
export function settleInput(fd: number): number {
  const pollfd = Buffer.alloc(8); // struct pollfd { int fd; short events, revents; }
  pollfd.writeInt32LE(fd, 0);
  pollfd.writeInt16LE(POLLIN | POLLPRI, 4);
  check(libc.syscall(SYS_poll, 'void *', pollfd, 'ulong', 1, 'int', 0), () => `poll(${fd}, POLLIN|POLLPRI, 0)`);
  return pollfd.readInt16LE(6);
}
