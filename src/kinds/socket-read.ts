// Reading a target's socket at dump without changing it, through a dup of cr's own (pidfd_getfd:
// the same socket, so its queue, options and peek offset are the target's): the options a
// program can read back, and the bytes queued to be read, peeked (MSG_PEEK from offset 0 with
// SO_PEEK_OFF, then SO_PEEK_OFF put back), never taken.
import { closeFd } from '../../bridge/file.js';
import { pidfdGetfd, pidfdOpen } from '../../bridge/pidfd.js';
import {
  getsockoptBuf, getsockoptInt, getsockoptLength, MSG_CMSG_CLOEXEC, MSG_DONTWAIT, MSG_PEEK, MSG_TRUNC, recvmsg, setsockoptInt, SOL_SOCKET,
} from '../../bridge/socket.js';

export const SO_SNDBUF = 7;
export const SO_RCVBUF = 8;
export const SO_PRIORITY = 12;
export const SO_PASSCRED = 16;
export const SO_RCVLOWAT = 18;
export const SO_RCVTIMEO = 20;
export const SO_SNDTIMEO = 21;
export const SO_ATTACH_FILTER = 26;
export const SO_TIMESTAMP = 29;
export const SO_PASSSEC = 34;
export const SO_TIMESTAMPNS = 35;
export const SO_PEEK_OFF = 42;
const SCM_RIGHTS = 1;

/**
 * The socket options cr carries, by the name the image gives them: each an int getsockopt reads
 * and setsockopt takes (SO_SNDBUF and SO_RCVBUF read back doubled: set half), but the timeouts,
 * a struct timeval kept in microseconds.
 */
export const OPTIONS: Record<string, number> = {
  sndbuf: SO_SNDBUF,
  rcvbuf: SO_RCVBUF,
  priority: SO_PRIORITY,
  passcred: SO_PASSCRED,
  passsec: SO_PASSSEC,
  rcvlowat: SO_RCVLOWAT,
  timestamp: SO_TIMESTAMP,
  timestampns: SO_TIMESTAMPNS,
  rcvtimeo: SO_RCVTIMEO,
  sndtimeo: SO_SNDTIMEO,
  peekOff: SO_PEEK_OFF,
};

export const TIMEOUTS = new Set(['rcvtimeo', 'sndtimeo']);

/** Run `body` with a dup of the target's fd in cr; closed after. */
export function withSocket<T>(pid: number, fd: number, body: (own: number) => T): T {
  const pidfd = pidfdOpen(pid);
  let own: number;
  try {
    own = pidfdGetfd(pidfd, fd);
  } finally {
    closeFd(pidfd);
  }
  try {
    return body(own);
  } finally {
    closeFd(own);
  }
}

/** The carried options' values; a reason instead when the socket has one cr cannot carry. */
export function readOptions(own: number): Record<string, number> | string {
  // A classic BPF filter (SO_ATTACH_FILTER): getsockopt gives its length in instructions.
  if (getsockoptLength(own, SOL_SOCKET, SO_ATTACH_FILTER) > 0) return 'a socket filter (SO_ATTACH_FILTER) is attached';
  const out: Record<string, number> = {};
  for (const [name, opt] of Object.entries(OPTIONS)) {
    if (TIMEOUTS.has(name)) {
      const tv = getsockoptBuf(own, SOL_SOCKET, opt, 16);
      out[name] = Number(tv.readBigInt64LE(0)) * 1e6 + Number(tv.readBigInt64LE(8));
    } else {
      out[name] = getsockoptInt(own, SOL_SOCKET, opt);
    }
  }
  return out;
}

export interface Queued {
  data: Buffer;
  /** message boundaries: each datagram's (or seqpacket record's) length */
  packets?: number[];
}

/** Largest message cr reads in one peek: a unix datagram is at most the sender's SO_SNDBUF. */
const PEEK_BUFFER = 4 << 20;

/**
 * The bytes queued to be read at the socket, in order, peeked from offset 0 on: each peek with
 * SO_PEEK_OFF moves the offset on by what it returned, so the next returns what follows (a
 * message-oriented socket returns one message a peek), until `total` bytes when the kernel
 * counts them (a stream, seqpacket), or nothing more comes. A reason instead when the queue holds
 * what cr cannot carry: fds in flight (SCM_RIGHTS), an empty datagram, a message too large.
 */
export function peekQueue(own: number, messages: boolean, readShut: boolean, total: number | undefined): Queued | string {
  const before = getsockoptInt(own, SOL_SOCKET, SO_PEEK_OFF);
  setsockoptInt(own, SOL_SOCKET, SO_PEEK_OFF, 0);
  try {
    const buf = Buffer.allocUnsafe(PEEK_BUFFER);
    const chunks: Buffer[] = [];
    const packets: number[] = [];
    for (let got = 0; total === undefined || got < total; ) {
      const r = recvmsg(own, buf, MSG_PEEK | MSG_DONTWAIT | MSG_CMSG_CLOEXEC | (messages ? MSG_TRUNC : 0), 4096);
      if (r === null) break; // EAGAIN: nothing more queued
      const fds = rightsIn(r.control);
      if (fds.length > 0) {
        for (const fd of fds) closeFd(fd); // the peek's copies in cr, never the target's
        return `it has ${fds.length} fd${fds.length === 1 ? '' : 's'} in flight (an SCM_RIGHTS message queued), which cr does not carry`;
      }
      // An empty read is the end of what is queued once reading is shut down (or the peer is gone).
      if (r.n === 0 && (!messages || readShut)) break;
      if (messages) {
        if (r.n === 0) return 'an empty datagram is queued, which a peek cannot step over';
        if ((r.flags & MSG_TRUNC) !== 0 || r.n > buf.length) return `a message of ${r.n} bytes is queued, more than cr reads (${PEEK_BUFFER})`;
        packets.push(r.n);
      }
      chunks.push(Buffer.from(buf.subarray(0, r.n)));
      got += r.n;
    }
    const data = Buffer.concat(chunks);
    return messages ? { data, packets } : { data };
  } finally {
    setsockoptInt(own, SOL_SOCKET, SO_PEEK_OFF, before);
  }
}

/** The fds an SCM_RIGHTS control message of the peek put into cr. */
function rightsIn(control: Buffer): number[] {
  const fds: number[] = [];
  for (let at = 0; at + 16 <= control.length; ) {
    const len = Number(control.readBigUInt64LE(at));
    const level = control.readInt32LE(at + 8);
    const type = control.readInt32LE(at + 12);
    if (len < 16 || at + len > control.length) break;
    if (level === SOL_SOCKET && type === SCM_RIGHTS) for (let p = at + 16; p + 4 <= at + len; p += 4) fds.push(control.readInt32LE(p));
    at += (len + 7) & ~7;
  }
  return fds;
}
