// Sockets of cr's own (dups of a target's, from pidfd_getfd, or a netlink socket): options,
// names, and reads that leave the queue as it was (MSG_PEEK). Thin: structures are built and
// parsed by the callers above.
import { addressOf, libc } from './libc.js';
import { check } from './errno.js';

export const AF_UNIX = 1;
export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_NETLINK = 16;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_SEQPACKET = 5;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const MSG_PEEK = 2;
export const MSG_TRUNC = 0x20;
export const MSG_DONTWAIT = 0x40;
export const MSG_CMSG_CLOEXEC = 0x40000000;
export const MSG_CTRUNC = 8;

/** getsockopt(level, name) of an int option. */
export function getsockoptInt(fd: number, level: number, name: number): number {
  const out = Buffer.alloc(4);
  const len = new Int32Array([4]);
  check(libc.getsockopt(fd, level, name, out, len), () => `getsockopt(fd=${fd}, level=${level}, name=${name})`);
  return out.readInt32LE(0);
}

/** getsockopt(level, name) of a structure: the bytes the kernel wrote. */
export function getsockoptBuf(fd: number, level: number, name: number, size: number): Buffer {
  const out = Buffer.alloc(size);
  const len = new Int32Array([size]);
  check(libc.getsockopt(fd, level, name, out, len), () => `getsockopt(fd=${fd}, level=${level}, name=${name})`);
  return out.subarray(0, len[0]);
}

/** getsockopt with no room for a value: the length the kernel answers (SO_GET_FILTER: a filter's instructions). */
export function getsockoptLength(fd: number, level: number, name: number): number {
  const len = new Int32Array([0]);
  check(libc.getsockopt(fd, level, name, Buffer.alloc(8), len), () => `getsockopt(fd=${fd}, level=${level}, name=${name})`);
  return len[0]!;
}

export function setsockoptInt(fd: number, level: number, name: number, value: number): void {
  const buf = Buffer.alloc(4);
  buf.writeInt32LE(value, 0);
  check(libc.setsockopt(fd, level, name, buf, 4), () => `setsockopt(fd=${fd}, level=${level}, name=${name}, ${value})`);
}

/** SO_ATTACH_FILTER of a classic BPF program (its struct sock_filter instructions, 8 bytes each). */
export function attachFilter(fd: number, program: Buffer): void {
  const prog = Buffer.alloc(16); // struct sock_fprog: len, padding, filter
  prog.writeUInt16LE(program.length / 8, 0);
  prog.writeBigUInt64LE(addressOf(program), 8);
  check(libc.setsockopt(fd, SOL_SOCKET, 26, prog, prog.length), () => `setsockopt(fd=${fd}, SO_ATTACH_FILTER)`);
}

/** ioctl(fd, request) answering an int (SIOCINQ, SIOCOUTQ, SIOCOUTQNSD). */
export function ioctlInt(fd: number, request: number, what: string): number {
  const out = Buffer.alloc(4);
  check(libc.ioctlBuf(fd, request, out), () => `ioctl(fd=${fd}, ${what})`);
  return out.readInt32LE(0);
}

/** The address the socket is bound to (struct sockaddr as the kernel wrote it, its length). */
export function getsockname(fd: number): Buffer {
  const out = Buffer.alloc(128);
  const len = new Int32Array([128]);
  check(libc.getsockname(fd, out, len), () => `getsockname(fd=${fd})`);
  return out.subarray(0, len[0]);
}

/** The address of the socket's peer; null when it has none (ENOTCONN). */
export function getpeername(fd: number): Buffer | null {
  const out = Buffer.alloc(128);
  const len = new Int32Array([128]);
  if (libc.getpeername(fd, out, len) === -1) return null;
  return out.subarray(0, len[0]);
}

export interface Received {
  /** bytes copied into buf (a datagram's whole length with MSG_TRUNC) */
  n: number;
  /** msg_flags: MSG_TRUNC, MSG_CTRUNC, ... */
  flags: number;
  /** the control messages' bytes */
  control: Buffer;
}

/** recvmsg(2) into buf with a control buffer of `controlSize`; null on EAGAIN. */
export function recvmsg(fd: number, buf: Buffer, flags: number, controlSize: number): Received | null {
  const control = Buffer.alloc(Math.max(controlSize, 8));
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(addressOf(buf), 0);
  iov.writeBigUInt64LE(BigInt(buf.length), 8);
  // struct msghdr (x86_64): name, namelen (+pad), iov, iovlen, control, controllen, flags.
  const msg = Buffer.alloc(56);
  msg.writeBigUInt64LE(addressOf(iov), 16);
  msg.writeBigUInt64LE(1n, 24);
  if (controlSize > 0) {
    msg.writeBigUInt64LE(addressOf(control), 32);
    msg.writeBigUInt64LE(BigInt(controlSize), 40);
  }
  const n = libc.recvmsg(fd, msg, flags);
  if (n === -1) {
    try {
      check(-1, () => `recvmsg(fd=${fd}, flags=0x${flags.toString(16)})`);
    } catch (err) {
      if ((err as { code?: string }).code === 'EAGAIN') return null;
      throw err;
    }
  }
  return { n, flags: msg.readInt32LE(48), control: control.subarray(0, Number(msg.readBigUInt64LE(40))) };
}

/** bind(2) of cr's own socket to a struct sockaddr. */
export function bind(fd: number, addr: Buffer): void {
  check(libc.bind(fd, addr, addr.length), () => `bind(fd=${fd})`);
}

/** connect(2) of cr's own socket to a struct sockaddr. */
export function connect(fd: number, addr: Buffer): void {
  check(libc.connect(fd, addr, addr.length), () => `connect(fd=${fd})`);
}

/** socket(2) of cr's own, close-on-exec. */
export function socket(domain: number, type: number, protocol: number): number {
  return check(libc.socket(domain, type | SOCK_CLOEXEC, protocol), () => `socket(${domain}, ${type}, ${protocol})`);
}

/** send(2) of a whole buffer (a netlink request). */
export function send(fd: number, buf: Buffer, flags = 0): number {
  return check(libc.send(fd, buf, buf.length, flags), () => `send(fd=${fd}, len=${buf.length})`);
}

/** recv(2) into buf: bytes received. */
export function recv(fd: number, buf: Buffer, flags = 0): number {
  return check(libc.recv(fd, buf, buf.length, flags), () => `recv(fd=${fd}, len=${buf.length})`);
}
