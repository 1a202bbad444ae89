// An established TCP connection through TCP repair mode (Linux's TCP_REPAIR, CAP_NET_ADMIN; man 7
// tcp, the kernel's tcp_repair code): what the inet kind reads of one at dump, the calls that make
// it again at restore, and cr's own handling of a socket from outside (a dup from pidfd_getfd is
// the same socket: repair mode, queues and options are the socket's, not the fd's).
// - lock (dump, while the process is frozen): repair on, and a socket filter that drops every
//   segment (nothing the peer sends is acknowledged, so it sends it again to whichever socket
//   has the connection next: CRIU locks the network with netfilter for the same reason). A socket
//   closed in repair mode sends nothing (no FIN, no RST): a killed original goes silently.
// - read: the sequence numbers (TCP_QUEUE_SEQ of each queue), both queues peeked (MSG_PEEK in
//   repair mode reads the chosen queue, the send queue whole), the options the handshake agreed
//   (TCP_INFO, TCP_MAXSEG in repair mode is the MSS clamp), TCP_TIMESTAMP, TCP_REPAIR_WINDOW.
// - restore (queued in the target): socket, repair on, sequence numbers, bind and connect (in
//   repair mode connect makes the connection without a packet, and fails with EADDRNOTAVAIL
//   when the 4-tuple is in use), the options, the queues' bytes, the window; left in repair mode.
// - release (cr, once every process of the restore holds its sockets, so neither end of a
//   loopback connection hears from the other before both exist): repair off, the unsent tail
//   written, the buffer size.
import { badInput } from '../errors.js';
import {
  attachFilter, getsockoptBuf, getsockoptInt, getsockoptLength, ioctlInt, MSG_DONTWAIT, MSG_PEEK, recvmsg, send, setsockoptInt, SOL_SOCKET,
} from '../../bridge/socket.js';
import { SyscallError } from '../../bridge/errno.js';
import type { InetDesc, TcpRepair } from '../model/fdtable.js';
import { array, get, integer, object, type Obj } from '../model/json.js';
import type { CallQueue } from './kind.js';
import { peekQueue } from './socket-read.js';

export const SOL_TCP = 6;
const TCP_MAXSEG = 2;
const TCP_INFO = 11;
const TCP_REPAIR = 19;
const TCP_REPAIR_QUEUE = 20;
const TCP_QUEUE_SEQ = 21;
const TCP_REPAIR_OPTIONS = 22;
const TCP_TIMESTAMP = 24;
const TCP_REPAIR_WINDOW = 29;
const TCP_NO_QUEUE = 0;
const TCP_RECV_QUEUE = 1;
const TCP_SEND_QUEUE = 2;
const REPAIR_ON = 1;
const REPAIR_OFF = 0;
const SIOCINQ = 0x541b;
const SIOCOUTQ = 0x5411;
const SIOCOUTQNSD = 0x894b;
const SO_REUSEADDR = 2;
const SO_ATTACH_FILTER = 26;
const SO_DETACH_FILTER = 27;
const SO_SNDBUFFORCE = 32;
const SO_RCVBUFFORCE = 33;
const TCPOPT_MSS = 2;
const TCPOPT_WINDOW = 3;
const TCPOPT_SACK_PERM = 4;
const TCPOPT_TIMESTAMP = 8;
const TCPI_OPT_TIMESTAMPS = 1;
const TCPI_OPT_SACK = 2;
const TCPI_OPT_WSCALE = 4;
/** The most TCP_MAXSEG takes (the kernel's MAX_TCP_WINDOW). */
const MAX_USER_MSS = 32767;
/** The kernel's TCP_MAX_WSCALE. */
const MAX_WSCALE = 14;
export const TCP_ESTABLISHED = 1;
/** How long the holder of a killed process's connections (src/dump/connections.ts) keeps them for a restore. */
export const HOLD_SECONDS = 600;
/** The environment variable that marks such a holder (a `sleep` holding the sockets at fds 3 on). */
export const HOLDER_MARK = 'CR_TCP_HOLD';
/** Bytes a queue may hold in an image (each way). */
export const MAX_TCP_QUEUE = 64 << 20;
/**
 * Bytes one repair-mode send puts in the receive queue: the kernel takes at most MAX_SKB_FRAGS
 * (17) pages a call there, so 16 pages is always taken whole.
 */
const CHUNK = 64 * 1024;

/** A classic BPF program of one instruction, `ret #0`: every segment dropped. */
const DROP_ALL = Buffer.from([0x06, 0x00, 0, 0, 0, 0, 0, 0]);

/** The state TCP_INFO gives (tcpi_state). */
export const tcpState = (own: number): number => getsockoptBuf(own, SOL_TCP, TCP_INFO, 104).readUInt8(0);

/** Whether the socket is in repair mode (TCP_REPAIR_QUEUE is taken only then). */
export function inRepair(own: number): boolean {
  try {
    setsockoptInt(own, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
    return true;
  } catch (err) {
    if (err instanceof SyscallError && err.code === 'EPERM') return false;
    throw err;
  }
}

/** A program's own socket filter is on it (cr's lock would replace it, and cr does not carry one). */
export const hasFilter = (own: number): boolean => getsockoptLength(own, SOL_SOCKET, SO_ATTACH_FILTER) > 0;

/**
 * Lock the connection for the dump: repair on (false without CAP_NET_ADMIN: nothing changed),
 * SO_REUSEADDR put back as the program had it (repair mode forces reuse), every segment dropped.
 */
export function lock(own: number): boolean {
  const reuse = getsockoptInt(own, SOL_SOCKET, SO_REUSEADDR);
  if (!repairOn(own)) return false;
  setsockoptInt(own, SOL_SOCKET, SO_REUSEADDR, reuse);
  attachFilter(own, DROP_ALL);
  return true;
}

/** Repair on at cr's own socket: false without CAP_NET_ADMIN. */
export function repairOn(own: number): boolean {
  try {
    setsockoptInt(own, SOL_TCP, TCP_REPAIR, REPAIR_ON);
    return true;
  } catch (err) {
    if (err instanceof SyscallError && err.code === 'EPERM') return false;
    throw err;
  }
}

/**
 * Undo lock: the filter off, repair off (which clears SO_REUSEADDR), SO_REUSEADDR as it was. A
 * socket that may not be locked (`maybeUnlocked`: the dump's watchdog does not know how far cr
 * got) goes through the same steps, its missing filter no error; repair off on a socket out of
 * repair only sends a window probe.
 */
export function unlock(own: number, maybeUnlocked = false): void {
  const reuse = getsockoptInt(own, SOL_SOCKET, SO_REUSEADDR);
  try {
    setsockoptInt(own, SOL_SOCKET, SO_DETACH_FILTER, 0);
  } catch (err) {
    if (!(maybeUnlocked && err instanceof SyscallError && err.code === 'ENOENT')) throw err;
  }
  setsockoptInt(own, SOL_TCP, TCP_REPAIR, REPAIR_OFF);
  if (reuse !== 0) setsockoptInt(own, SOL_SOCKET, SO_REUSEADDR, reuse);
}

const u32 = (n: number): number => n >>> 0;

/** Read a locked connection (in repair mode): a reason instead when it holds what cr cannot carry. */
export function readRepair(own: number): TcpRepair | string {
  setsockoptInt(own, SOL_TCP, TCP_REPAIR_QUEUE, TCP_RECV_QUEUE);
  const recvSeq = u32(getsockoptInt(own, SOL_TCP, TCP_QUEUE_SEQ));
  const inq = ioctlInt(own, SIOCINQ, 'SIOCINQ');
  if (inq > MAX_TCP_QUEUE) return `${inq} bytes are queued to be read, more than cr keeps (${MAX_TCP_QUEUE})`;
  const received = inq === 0 ? { data: Buffer.alloc(0) } : peekQueue(own, false, false, inq);
  if (typeof received === 'string') return received;
  if (received.data.length !== inq) return `${received.data.length} bytes peeked but the kernel counts ${inq} to be read`;
  setsockoptInt(own, SOL_TCP, TCP_REPAIR_QUEUE, TCP_SEND_QUEUE);
  const sendSeq = u32(getsockoptInt(own, SOL_TCP, TCP_QUEUE_SEQ));
  const outq = ioctlInt(own, SIOCOUTQ, 'SIOCOUTQ');
  const unsent = ioctlInt(own, SIOCOUTQNSD, 'SIOCOUTQNSD');
  if (outq > MAX_TCP_QUEUE) return `${outq} bytes are queued to be sent, more than cr keeps (${MAX_TCP_QUEUE})`;
  let sendQueue = Buffer.alloc(0);
  if (outq > 0) {
    // In repair mode a peek of the send queue copies it from its start, whole.
    const buf = Buffer.alloc(outq);
    const r = recvmsg(own, buf, MSG_PEEK | MSG_DONTWAIT, 0);
    if (r === null || r.n !== outq) return `${r?.n ?? 0} bytes of the send queue peeked but the kernel counts ${outq}`;
    sendQueue = buf;
  }
  setsockoptInt(own, SOL_TCP, TCP_REPAIR_QUEUE, TCP_NO_QUEUE);
  const info = getsockoptBuf(own, SOL_TCP, TCP_INFO, 104);
  const opts = info.readUInt8(5);
  const scales = info.readUInt8(6);
  const win = getsockoptBuf(own, SOL_TCP, TCP_REPAIR_WINDOW, 20);
  return {
    sendSeq, recvSeq, sendQueue: sendQueue.toString('base64'), unsent: Math.min(unsent, outq), recvQueue: received.data.toString('base64'),
    mss: getsockoptInt(own, SOL_TCP, TCP_MAXSEG),
    ...((opts & TCPI_OPT_WSCALE) !== 0 ? { wscale: [scales & 0xf, scales >> 4] as [number, number] } : {}),
    sack: (opts & TCPI_OPT_SACK) !== 0,
    timestamps: (opts & TCPI_OPT_TIMESTAMPS) !== 0,
    tsval: u32(getsockoptInt(own, SOL_TCP, TCP_TIMESTAMP)),
    window: [0, 4, 8, 12, 16].map((at) => win.readUInt32LE(at)) as TcpRepair['window'],
  };
}

const intArg = (value: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(u32(value), 0);
  return b;
};

/** A buffer big enough for `bytes` queued, as SO_*BUFFORCE takes it (the kernel doubles it). */
const roomFor = (image: number | undefined, bytes: number): number => Math.ceil(Math.max(image ?? 0, 2 * bytes + (1 << 20)) / 2);

/**
 * Queue the calls that make the connection at `fd` (its socket made and its options set by the
 * caller, repair on first), left in repair mode for release. `bind` and `connect` are the
 * caller's to queue where they say.
 */
export function queueRepair(d: InetDesc, fd: number, q: CallQueue, connect: () => void): void {
  const t = d.tcp!;
  const set = (name: number, value: Buffer, what: string, level = SOL_TCP): void =>
    q.call('setsockopt', [BigInt(fd), BigInt(level), BigInt(name), q.put(value), BigInt(value.length)], 0n, `setsockopt(${fd}, ${what})`);
  const sendQueue = Buffer.from(t.sendQueue, 'base64');
  const recvQueue = Buffer.from(t.recvQueue, 'base64');
  // Room for both queues while they are filled (the image's sizes are set once they are in).
  set(SO_SNDBUFFORCE, intArg(roomFor(d.options.sndbuf, sendQueue.length)), 'SO_SNDBUFFORCE', SOL_SOCKET);
  set(SO_RCVBUFFORCE, intArg(roomFor(d.options.rcvbuf, recvQueue.length)), 'SO_RCVBUFFORCE', SOL_SOCKET);
  set(TCP_REPAIR_QUEUE, intArg(TCP_SEND_QUEUE), 'TCP_REPAIR_QUEUE, send');
  set(TCP_QUEUE_SEQ, intArg(t.sendSeq - sendQueue.length), `TCP_QUEUE_SEQ, ${u32(t.sendSeq - sendQueue.length)}`);
  set(TCP_REPAIR_QUEUE, intArg(TCP_RECV_QUEUE), 'TCP_REPAIR_QUEUE, receive');
  set(TCP_QUEUE_SEQ, intArg(t.recvSeq - recvQueue.length), `TCP_QUEUE_SEQ, ${u32(t.recvSeq - recvQueue.length)}`);
  // The segment size is worked out at connect, from the MSS clamp TCP_REPAIR_OPTIONS sets only
  // after: without a TCP_MAXSEG before it the connection goes on in 536-byte segments. The
  // option takes at most 32767 (loopback's MSS is 65483: its segments are halved).
  const mss = Math.min(t.mss, MAX_USER_MSS);
  set(TCP_MAXSEG, intArg(mss), `TCP_MAXSEG, ${mss}`);
  connect();
  const options = [[TCPOPT_MSS, t.mss], ...(t.wscale ? [[TCPOPT_WINDOW, t.wscale[0] | (t.wscale[1] << 16)]] : []), ...(t.sack ? [[TCPOPT_SACK_PERM, 0]] : []), ...(t.timestamps ? [[TCPOPT_TIMESTAMP, 0]] : [])];
  const opts = Buffer.alloc(8 * options.length);
  options.forEach(([code, value], i) => {
    opts.writeUInt32LE(code!, 8 * i);
    opts.writeUInt32LE(value!, 8 * i + 4);
  });
  set(TCP_REPAIR_OPTIONS, opts, 'TCP_REPAIR_OPTIONS');
  if (t.timestamps) set(TCP_TIMESTAMP, intArg(t.tsval), 'TCP_TIMESTAMP');
  const fill = (queue: number, bytes: Buffer, what: string): void => {
    if (bytes.length === 0) return;
    set(TCP_REPAIR_QUEUE, intArg(queue), `TCP_REPAIR_QUEUE, ${what}`);
    for (let at = 0; at < bytes.length; at += CHUNK) {
      const chunk = bytes.subarray(at, Math.min(bytes.length, at + CHUNK));
      q.call('sendto', [BigInt(fd), q.put(chunk), BigInt(chunk.length), BigInt(MSG_DONTWAIT), 0n, 0n], BigInt(chunk.length), `sendto(${fd}, <${chunk.length} bytes> to the ${what} queue)`);
    }
  };
  fill(TCP_RECV_QUEUE, recvQueue, 'receive');
  // Bytes sent before the dump go in as sent (the peer may acknowledge them); the unsent tail is
  // written at release, out of repair mode, to be sent as any write is.
  fill(TCP_SEND_QUEUE, sendQueue.subarray(0, sendQueue.length - t.unsent), 'send');
  set(TCP_REPAIR_QUEUE, intArg(TCP_NO_QUEUE), 'TCP_REPAIR_QUEUE, none');
  const win = Buffer.alloc(20);
  t.window.forEach((v, i) => win.writeUInt32LE(v, 4 * i));
  set(TCP_REPAIR_WINDOW, win, 'TCP_REPAIR_WINDOW');
  if (d.options.rcvbuf !== undefined) set(SO_RCVBUFFORCE, intArg(Math.floor(d.options.rcvbuf / 2)), 'SO_RCVBUFFORCE', SOL_SOCKET);
}

/** The calls that turn repair mode on at `fd` (first, before any option a restore sets). */
export function queueRepairOn(fd: number, q: CallQueue): void {
  q.call('setsockopt', [BigInt(fd), BigInt(SOL_TCP), BigInt(TCP_REPAIR), q.put(intArg(REPAIR_ON)), 4n], 0n, `setsockopt(${fd}, TCP_REPAIR, on): TCP repair needs CAP_NET_ADMIN`);
}

/**
 * cr's end of a restore, on its own dup of a restored connection: repair off (the kernel sends a
 * window probe, which wakes the peer), SO_REUSEADDR as the image has it (repair off clears it),
 * the unsent tail written, the send buffer's size set.
 */
export function release(own: number, d: InetDesc): void {
  const t = d.tcp!;
  setsockoptInt(own, SOL_TCP, TCP_REPAIR, REPAIR_OFF);
  if ((d.options.reuseaddr ?? 0) !== 0) setsockoptInt(own, SOL_SOCKET, SO_REUSEADDR, d.options.reuseaddr!);
  const queue = Buffer.from(t.sendQueue, 'base64');
  for (let at = queue.length - t.unsent; at < queue.length; ) {
    const n = send(own, queue.subarray(at, Math.min(queue.length, at + CHUNK)), MSG_DONTWAIT);
    if (n <= 0) throw new Error(`the unsent tail of the send queue did not fit (${queue.length - at} bytes left)`);
    at += n;
  }
  if (d.options.sndbuf !== undefined) setsockoptInt(own, SOL_SOCKET, SO_SNDBUFFORCE, Math.floor(d.options.sndbuf / 2));
}

/** A connection as `local -> remote`. */
export const connectionText = (d: Pick<InetDesc, 'family' | 'address' | 'port' | 'peerAddress' | 'peerPort'>): string => {
  const at = (a: string | undefined, p: number | undefined): string => (d.family === 4 ? `${a}:${p}` : `[${a}]:${p}`);
  return `${at(d.address, d.port)} -> ${at(d.peerAddress, d.peerPort)}`;
};

// ---- image

/** `after(a, b)` of the kernel's sequence numbers: a is later than b, modulo 2^32. */
const after = (a: number, b: number): boolean => ((b - a) | 0) < 0;

/** A queue: bin in an image file (src/image/format.ts), base64 text in JSON and in the model. */
function queue(raw: unknown, where: string): string {
  const value = raw instanceof Uint8Array ? Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') : raw;
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) badInput(`${where}: expected base64`);
  const bytes = Buffer.byteLength(value as string, 'base64');
  if (bytes > MAX_TCP_QUEUE) badInput(`${where}: ${bytes} bytes, more than ${MAX_TCP_QUEUE}`);
  return value as string;
}

const boolean = (value: unknown, where: string): boolean => {
  if (typeof value !== 'boolean') badInput(`${where}: expected true or false`);
  return value as boolean;
};

export const TCP_FIELDS = ['sendSeq', 'recvSeq', 'sendQueue', 'unsent', 'recvQueue', 'mss', 'wscale', 'sack', 'timestamps', 'tsval', 'window'];

/** An image's `tcp`, checked as the kernel would check it at restore (one-line errors). */
export function parseRepair(value: unknown, where: string): TcpRepair {
  const obj: Obj = object(value, where);
  for (const key of Object.keys(obj)) if (!TCP_FIELDS.includes(key)) badInput(`${where}.${key}: not a field of a TCP connection (${TCP_FIELDS.join(', ')})`);
  const seq = (key: string): number => integer(get(obj, key), `${where}.${key}`, 0, 2 ** 32 - 1);
  const sendQueue = queue(get(obj, 'sendQueue'), `${where}.sendQueue`);
  const out: TcpRepair = {
    sendSeq: seq('sendSeq'), recvSeq: seq('recvSeq'), sendQueue,
    unsent: integer(get(obj, 'unsent'), `${where}.unsent`, 0, Buffer.byteLength(sendQueue, 'base64')), recvQueue: queue(get(obj, 'recvQueue'), `${where}.recvQueue`),
    mss: integer(get(obj, 'mss'), `${where}.mss`, 1, 65535),
    sack: boolean(get(obj, 'sack'), `${where}.sack`), timestamps: boolean(get(obj, 'timestamps'), `${where}.timestamps`),
    tsval: seq('tsval'), window: [0, 0, 0, 0, 0],
  };
  if (Object.hasOwn(obj, 'wscale')) {
    const w = array(get(obj, 'wscale'), `${where}.wscale`);
    if (w.length !== 2) badInput(`${where}.wscale: expected [sent, received]`);
    out.wscale = [integer(w[0], `${where}.wscale[0]`, 0, MAX_WSCALE), integer(w[1], `${where}.wscale[1]`, 0, MAX_WSCALE)];
  }
  const w = array(get(obj, 'window'), `${where}.window`);
  if (w.length !== 5) badInput(`${where}.window: expected [snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup]`);
  out.window = w.map((v, i) => integer(v, `${where}.window[${i}]`, 0, 2 ** 32 - 1)) as TcpRepair['window'];
  // What TCP_REPAIR_WINDOW refuses (tcp_repair_set_window), said before a restore starts.
  const [sndWl1, , , rcvWnd, rcvWup] = out.window;
  if (after(sndWl1, out.recvSeq + rcvWnd)) badInput(`${where}.window: snd_wl1 ${sndWl1} is beyond what the peer may send (recvSeq + rcv_wnd)`);
  if (after(rcvWup, out.recvSeq)) badInput(`${where}.window: rcv_wup ${rcvWup} is beyond recvSeq ${out.recvSeq}`);
  return out;
}
