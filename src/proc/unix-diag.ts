// What the kernel's sock_diag (netlink NETLINK_SOCK_DIAG, net/unix/diag.c) says of one unix
// socket, asked by its inode: its type and state, the inode of its peer, its bound name, the
// lengths of its queues and its shutdown bits. The only place that shows the peer's identity.
import { closeFd } from '../../bridge/file.js';
import { AF_NETLINK, AF_UNIX, recv, send, SOCK_DGRAM, socket } from '../../bridge/socket.js';

const NETLINK_SOCK_DIAG = 4;
const SOCK_DIAG_BY_FAMILY = 20;
const NLM_F_REQUEST = 1;
const NLMSG_ERROR = 2;
const UDIAG_SHOW_NAME = 1;
const UDIAG_SHOW_PEER = 4;
const UDIAG_SHOW_RQLEN = 0x10;
const UNIX_DIAG_NAME = 0;
const UNIX_DIAG_PEER = 2;
const UNIX_DIAG_RQLEN = 4;
const UNIX_DIAG_SHUTDOWN = 6;
/** sock_diag's "no cookie": a lookup by inode alone. */
const NO_COOKIE = 0xffffffff;

/** TCP_ESTABLISHED and TCP_LISTEN, the states unix sockets borrow (TCP_CLOSE otherwise). */
export const UNIX_ESTABLISHED = 1;
export const UNIX_LISTEN = 10;

export interface UnixDiag {
  ino: number;
  /** SOCK_STREAM, SOCK_DGRAM or SOCK_SEQPACKET */
  type: number;
  /** UNIX_ESTABLISHED, UNIX_LISTEN, or TCP_CLOSE (7) */
  state: number;
  /** inode of the peer socket; 0 when it has none or the peer was closed */
  peer: number;
  /** the bound name's sun_path bytes (a leading NUL for an abstract name), absent when unbound */
  name?: Buffer;
  /** listening: connections waiting to be accepted, and the backlog; otherwise bytes queued to read and bytes sent not yet read */
  rqueue: number;
  wqueue: number;
  /** sk_shutdown: 1 receiving shut down, 2 sending shut down */
  shutdown: number;
}

const NLM_F_DUMP = 0x300;
const NLMSG_DONE = 3;
const UDIAG_SHOW_VFS = 2;
const UNIX_DIAG_VFS = 1;

/**
 * Is some unix socket of this network namespace bound to the file (dev, ino) (UNIX_DIAG_VFS of
 * every socket)? What tells a live socket file from a stale one without touching either.
 */
export function unixBoundTo(dev: number, ino: number): boolean {
  const fd = socket(AF_NETLINK, SOCK_DGRAM, NETLINK_SOCK_DIAG);
  try {
    const req = Buffer.alloc(40);
    req.writeUInt32LE(40, 0);
    req.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
    req.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
    req.writeUInt32LE(2, 8);
    req.writeUInt8(AF_UNIX, 16);
    req.writeUInt32LE(0xffffffff, 20);
    req.writeUInt32LE(UDIAG_SHOW_VFS, 28);
    send(fd, req);
    const buf = Buffer.alloc(65536);
    let found = false;
    for (;;) {
      const n = recv(fd, buf);
      for (let at = 0; at + 16 <= n; ) {
        const len = buf.readUInt32LE(at);
        const type = buf.readUInt16LE(at + 4);
        if (type === NLMSG_DONE) return found;
        if (type === NLMSG_ERROR) throw new Error(`sock_diag dump of unix sockets: errno ${-buf.readInt32LE(at + 16)}`);
        if (len < 16 || at + len > n) throw new Error('sock_diag dump of unix sockets: a truncated message');
        for (let a = at + 32; a + 4 <= at + len; ) {
          const alen = buf.readUInt16LE(a);
          if (alen < 4) break;
          // struct unix_diag_vfs: ino, dev (the file's, as the kernel encodes dev_t inside)
          if ((buf.readUInt16LE(a + 2) & 0x3fff) === UNIX_DIAG_VFS && buf.readUInt32LE(a + 4) === ino >>> 0 && sameDev(buf.readUInt32LE(a + 8), dev)) found = true;
          a += (alen + 3) & ~3;
        }
        at += (len + 3) & ~3;
      }
    }
  } finally {
    closeFd(fd);
  }
}

/** The kernel's dev_t (major << 20 | minor) against userspace's encoding (what stat gives). */
function sameDev(kernel: number, user: number): boolean {
  const major = kernel >>> 20;
  const minor = kernel & 0xfffff;
  const u = BigInt(user);
  const umajor = Number(((u >> 8n) & 0xfffn) | ((u >> 32n) & ~0xfffn));
  const uminor = Number((u & 0xffn) | ((u >> 12n) & ~0xffn));
  return major === umajor && minor === uminor;
}

/** The diag record of unix socket `ino`; null when the kernel knows no such socket (ENOENT). */
export function unixDiag(ino: number): UnixDiag | null {
  const fd = socket(AF_NETLINK, SOCK_DGRAM, NETLINK_SOCK_DIAG);
  try {
    // struct nlmsghdr (16) + struct unix_diag_req (24).
    const req = Buffer.alloc(40);
    req.writeUInt32LE(40, 0);
    req.writeUInt16LE(SOCK_DIAG_BY_FAMILY, 4);
    req.writeUInt16LE(NLM_F_REQUEST, 6);
    req.writeUInt32LE(1, 8);
    req.writeUInt8(AF_UNIX, 16);
    req.writeUInt32LE(0xffffffff, 20); // udiag_states: any
    req.writeUInt32LE(ino >>> 0, 24);
    req.writeUInt32LE(UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_RQLEN, 28);
    req.writeUInt32LE(NO_COOKIE, 32);
    req.writeUInt32LE(NO_COOKIE, 36);
    send(fd, req);
    const buf = Buffer.alloc(8192);
    const n = recv(fd, buf);
    return parse(buf.subarray(0, n), ino);
  } finally {
    closeFd(fd);
  }
}

function parse(msg: Buffer, ino: number): UnixDiag | null {
  if (msg.length < 16) throw new Error(`sock_diag: a reply of ${msg.length} bytes`);
  const len = msg.readUInt32LE(0);
  const type = msg.readUInt16LE(4);
  if (type === NLMSG_ERROR) {
    const errno = -msg.readInt32LE(16);
    if (errno === 2) return null; // ENOENT
    throw new Error(`sock_diag of unix socket ${ino}: errno ${errno}`);
  }
  if (type !== SOCK_DIAG_BY_FAMILY || len > msg.length || len < 32) throw new Error(`sock_diag of unix socket ${ino}: unexpected reply type ${type}`);
  // struct unix_diag_msg: family, type, state, pad, ino, cookie[2].
  const out: UnixDiag = { ino: msg.readUInt32LE(20), type: msg.readUInt8(17), state: msg.readUInt8(18), peer: 0, rqueue: 0, wqueue: 0, shutdown: 0 };
  for (let at = 32; at + 4 <= len; ) {
    const alen = msg.readUInt16LE(at);
    const atype = msg.readUInt16LE(at + 2) & 0x3fff;
    if (alen < 4 || at + alen > len) break;
    const data = msg.subarray(at + 4, at + alen);
    if (atype === UNIX_DIAG_NAME) out.name = Buffer.from(data);
    else if (atype === UNIX_DIAG_PEER) out.peer = data.readUInt32LE(0);
    else if (atype === UNIX_DIAG_RQLEN) {
      out.rqueue = data.readUInt32LE(0);
      out.wqueue = data.readUInt32LE(4);
    } else if (atype === UNIX_DIAG_SHUTDOWN) out.shutdown = data.readUInt8(0);
    at += (alen + 3) & ~3;
  }
  return out;
}
