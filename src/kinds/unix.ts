// A unix socket (AF_UNIX: stream, datagram, seqpacket). Recognised by its inode, which the
// kernel's sock_diag knows (src/proc/unix-diag.ts: type, state, peer, name, queue lengths).
// - An end of a connected pair (both ends in the image, or one whose peer was closed): made again
//   by one socketpair() (CLASS_PAIR_END, its pair the planner's object), each end's queued bytes
//   sent through the other (one send per message for datagrams and seqpacket), then shutdowns.
//   A connection made by connect()/accept() comes back as such a pair: its names are not kept.
// - A listener: socket(), bind() to its path or abstract name, listen() with its backlog.
// - A socket connected to nothing: socket(), and bind() when it had a name.
// Options a program can read back (src/kinds/socket-read.ts OPTIONS) are set again on each.
// A peer outside the image, fds in flight, connections waiting to be accepted: refused at dump.
import { lstatSync } from 'node:fs';
import { CLASS_PAIR_END, CLASS_SINGLE } from '../abi.js';
import { badInput } from '../errors.js';
import { O_ACCMODE, O_APPEND, O_CLOEXEC, O_NONBLOCK, O_RDWR, type UnixDesc, type UnixType } from '../model/fdtable.js';
import { array, get, integer, object, type Obj } from '../model/json.js';
import { printable } from '../printable.js';
import { unixBoundTo, unixDiag, UNIX_ESTABLISHED, UNIX_LISTEN } from '../proc/unix-diag.js';
import type { ProcFd } from '../proc/fds.js';
import { no, oddFlags, quoted } from './common.js';
import type { CallQueue, KindModule, Recognised, Unsupported } from './kind.js';
import { OPTIONS, peekQueue, readOptions, TIMEOUTS, withSocket } from './socket-read.js';

const AF_UNIX = 1n;
const SOL_SOCKET = 1n;
const MSG_DONTWAIT = 0x40n;
const SOCK_CLOEXEC = O_CLOEXEC;
const TYPES: Record<UnixType, number> = { stream: 1, dgram: 2, seqpacket: 5 };
const TYPE_NAMES = new Map<number, UnixType>(Object.entries(TYPES).map(([name, n]) => [n, name as UnixType]));
const STATES = ['connected', 'listening', 'unconnected'] as const;
/** What F_GETFL can show on a socket cr restores: socket() gives O_RDWR, F_SETFL O_NONBLOCK and O_APPEND. */
const UNIX_FLAGS = O_RDWR | O_NONBLOCK | O_APPEND;
/** sun_path's size: a name is at most 107 bytes and a NUL, an abstract one 107 after its NUL. */
const SUN_PATH = 108;
/** The most bytes one send stages: a stream's queue goes in pieces a batch always has room for. */
const SEND_CHUNK = 256 * 1024;
const MAX_QUEUE = 64 << 20;

/** The name a socket is bound to, as the image keeps it: a path, or `@` and base64 of an abstract one. */
function addressOf(name: Buffer | undefined): string | undefined | { refuse: string } {
  if (name === undefined || name.length === 0) return undefined;
  if (name[0] === 0) return `@${name.subarray(1).toString('base64')}`;
  const end = name.indexOf(0);
  const path = name.subarray(0, end < 0 ? name.length : end).toString();
  if (!path.startsWith('/')) return { refuse: `it is bound to the relative path ${quoted(path)}, whose directory cr cannot know` };
  return path;
}

/** The sockaddr_un of an address and its length. */
function sockaddr(address: string): Buffer {
  const name = address.startsWith('@') ? Buffer.concat([Buffer.from([0]), Buffer.from(address.slice(1), 'base64')]) : Buffer.from(`${address}\0`);
  const out = Buffer.alloc(2 + name.length);
  out.writeUInt16LE(Number(AF_UNIX), 0);
  name.copy(out, 2);
  return out;
}

/** An address in words: a path quoted, an abstract name with its `@`. */
export function addressText(address: string): string {
  return address.startsWith('@') ? `@${printable(Buffer.from(address.slice(1), 'base64').toString('latin1'))}` : quoted(address);
}

function socketName(type: UnixType): string {
  return `unix ${type} socket`;
}

function recognise(e: ProcFd): Recognised | Unsupported | null {
  if (!e.stat.isSocket()) return null;
  const diag = unixDiag(e.stat.ino);
  if (diag === null) return null;
  const type = TYPE_NAMES.get(diag.type);
  if (type === undefined) return no(e, 'unix socket', `${e.link}: a unix socket of type ${diag.type}`);
  const what = socketName(type);
  const odd = oddFlags(e, UNIX_FLAGS, what);
  if (odd) return odd;
  const state: UnixDesc['state'] = diag.state === UNIX_LISTEN ? 'listening' : diag.state === UNIX_ESTABLISHED ? 'connected' : 'unconnected';
  const address = addressOf(diag.name);
  if (typeof address === 'object') return no(e, what, `${e.link}: ${address.refuse}`);
  if (state === 'listening' && diag.rqueue > 0) {
    return no(e, what, `${e.link}: ${diag.rqueue} connection${diag.rqueue === 1 ? '' : 's'} wait${diag.rqueue === 1 ? 's' : ''} to be accepted, which cr does not carry`);
  }
  return withSocket(e.pid, e.fd, (own) => {
    const options = readOptions(own);
    if (typeof options === 'string') return no(e, what, `${e.link}: ${options}`);
    const base = { kind: 'unix' as const, flags: e.flags, type, state, shutdown: diag.shutdown, options };
    if (state === 'listening') {
      return { kind: 'unix', describe: (id) => ({ id, ...base, address: address!, backlog: diag.wqueue, queue: '' }) };
    }
    const queued = peekQueue(own, type !== 'stream', (diag.shutdown & 1) !== 0, type === 'dgram' ? undefined : diag.rqueue);
    if (typeof queued === 'string') return no(e, what, `${e.link}: ${queued}`);
    if (queued.data.length > MAX_QUEUE) return no(e, what, `${e.link}: ${queued.data.length} bytes are queued, more than cr keeps (${MAX_QUEUE})`);
    if (type !== 'dgram' && queued.data.length !== diag.rqueue) {
      return no(e, what, `${e.link}: ${queued.data.length} bytes peeked but the kernel counts ${diag.rqueue} queued (another process is using it?)`);
    }
    const queue = queued.data.toString('base64');
    const packets = queued.packets && queued.packets.length > 0 ? { packets: queued.packets } : {};
    if (state === 'unconnected') {
      // Datagrams sent to a named socket came from others: their senders cannot be put back.
      if (queued.data.length > 0) return no(e, what, `${e.link}: datagrams from other sockets are queued at it, and their senders cannot be restored`);
      return { kind: 'unix', describe: (id) => ({ id, ...base, ...(address === undefined ? {} : { address }), queue: '' }) };
    }
    const ino = e.stat.ino;
    const key = diag.peer === 0 ? `${ino}` : `${Math.min(ino, diag.peer)}:${Math.max(ino, diag.peer)}`;
    return {
      kind: 'unix',
      pair: { key, peer: diag.peer, what: `${e.link} (a ${what})` },
      describe: (id, _pipe, pair) => ({ id, ...base, pair: pair!, queue, ...packets }),
    };
  });
}

/** setsockopt calls for a description's options (the buffer sizes halved: the kernel doubles them). */
/** What a new socket has, for the options whose default is the same on every machine (the buffer sizes are sysctls). */
const DEFAULTS: Record<string, number> = { priority: 0, passcred: 0, passsec: 0, rcvlowat: 1, timestamp: 0, timestampns: 0, rcvtimeo: 0, sndtimeo: 0, peekOff: -1 };

function setOptions(d: UnixDesc, fd: number, q: CallQueue): void {
  for (const [name, value] of Object.entries(d.options)) {
    if (DEFAULTS[name] === value) continue;
    const opt = BigInt(OPTIONS[name]!);
    let arg: Buffer;
    if (TIMEOUTS.has(name)) {
      arg = Buffer.alloc(16);
      arg.writeBigInt64LE(BigInt(Math.floor(value / 1e6)), 0);
      arg.writeBigInt64LE(BigInt(value % 1e6), 8);
    } else {
      arg = Buffer.alloc(4);
      arg.writeInt32LE(name === 'sndbuf' || name === 'rcvbuf' ? Math.floor(value / 2) : value, 0);
    }
    q.call('setsockopt', [BigInt(fd), SOL_SOCKET, opt, q.put(arg), BigInt(arg.length)], 0n, `setsockopt(${fd}, SOL_SOCKET, ${name}, ${value})`);
  }
}

/** The messages (or the stream, in pieces) queued at `to`, sent through `through`. */
function sendQueue(to: UnixDesc, through: number, q: CallQueue): void {
  const bytes = Buffer.from(to.queue, 'base64');
  const lengths = to.packets ?? [];
  let at = 0;
  const send = (chunk: Buffer): void => {
    q.call('sendto', [BigInt(through), q.put(chunk), BigInt(chunk.length), MSG_DONTWAIT, 0n, 0n], BigInt(chunk.length), `sendto(${through}, <${chunk.length} bytes>)`);
  };
  if (to.type === 'stream') {
    for (; at < bytes.length; at += SEND_CHUNK) send(bytes.subarray(at, Math.min(bytes.length, at + SEND_CHUNK)));
    return;
  }
  for (const n of lengths) {
    send(bytes.subarray(at, at + n));
    at += n;
  }
}

/** shutdown(2)'s `how` for sk_shutdown bits: 1 SHUT_RD, 2 SHUT_WR, 3 SHUT_RDWR. */
const SHUT_HOW = [-1, 0, 1, 2];

function createSingle(d: UnixDesc, cloexec: boolean, fd: number, q: CallQueue): void {
  const flags = TYPES[d.type] | (cloexec ? SOCK_CLOEXEC : 0);
  q.call('socket', [AF_UNIX, BigInt(flags), 0n], BigInt(fd));
  setOptions(d, fd, q);
  if (d.address !== undefined) {
    if (!d.address.startsWith('@') && clearStale(d.address)) q.call('unlink', [q.put(Buffer.from(`${d.address}\0`))], 0n, `unlink(${quoted(d.address)})`);
    const addr = sockaddr(d.address);
    q.call('bind', [BigInt(fd), q.put(addr), BigInt(addr.length)], 0n, `bind(${fd}, ${addressText(d.address)})`);
  }
  if (d.state === 'listening') q.call('listen', [BigInt(fd), BigInt(d.backlog ?? 0)], 0n);
  if (d.shutdown !== 0) q.call('shutdown', [BigInt(fd), BigInt(SHUT_HOW[d.shutdown]!)], 0n);
}

/**
 * What is at the path a socket is bound to again. Nothing: bind makes it. A socket file no socket
 * is bound to any more (its listener gone: the dumped process killed): stale, unlinked before
 * the bind, as the program would when it starts (and as CRIU does). A socket file a live socket
 * is bound to, or anything but a socket: refused; cr never unlinks anything else.
 */
function clearStale(path: string): boolean {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return false;
  }
  if (!st.isSocket()) badInput(`${quoted(path)} exists and is not a socket: the unix socket bound there cannot be bound again (cr removes only a stale socket file)`);
  if (unixBoundTo(st.dev, st.ino)) {
    badInput(`${quoted(path)} is bound to a live socket (is the dumped process still running?): the unix socket bound there cannot be bound again`);
  }
  return true;
}

export const unix: KindModule<'unix'> = {
  kind: 'unix',
  recognise,
  fields: ['type', 'state', 'pair', 'address', 'backlog', 'queue', 'packets', 'shutdown', 'options'],
  binary: ['queue'],
  parse(obj, where, id, flags) {
    if ((flags & O_ACCMODE) !== O_RDWR || (flags & ~UNIX_FLAGS) !== 0) badInput(`${where}.flags: a socket is O_RDWR with at most O_NONBLOCK and O_APPEND`);
    const type = get(obj, 'type');
    if (typeof type !== 'string' || !Object.hasOwn(TYPES, type)) badInput(`${where}.type: expected one of ${Object.keys(TYPES).join(', ')}`);
    const state = get(obj, 'state');
    if (typeof state !== 'string' || !(STATES as readonly string[]).includes(state)) badInput(`${where}.state: expected one of ${STATES.join(', ')}`);
    const desc: UnixDesc = {
      id, kind: 'unix', flags, type: type as UnixType, state: state as UnixDesc['state'], queue: '',
      shutdown: integer(get(obj, 'shutdown'), `${where}.shutdown`, 0, 3), options: parseOptions(get(obj, 'options'), `${where}.options`),
    };
    const pair = get(obj, 'pair');
    if ((pair !== undefined) !== (state === 'connected')) badInput(`${where}.pair: a connected socket has a pair, no other has one`);
    if (pair !== undefined) desc.pair = integer(pair, `${where}.pair`, 0, 2 ** 31 - 1);
    const address = get(obj, 'address');
    if (address !== undefined) {
      if (state === 'connected') badInput(`${where}.address: a connected socket's name is not kept`);
      desc.address = parseAddress(address, `${where}.address`);
    } else if (state === 'listening') badInput(`${where}.address: a listening socket is bound to a name`);
    const backlog = get(obj, 'backlog');
    if ((backlog !== undefined) !== (state === 'listening')) badInput(`${where}.backlog: a listening socket has a backlog, no other has one`);
    if (backlog !== undefined) desc.backlog = integer(backlog, `${where}.backlog`, 0, 2 ** 31 - 1);
    // bin in an image file (src/image/format.ts), base64 text in JSON and in the model
    const raw = get(obj, 'queue');
    const queue = raw instanceof Uint8Array ? Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') : raw;
    if (typeof queue !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(queue) || queue.length % 4 !== 0) badInput(`${where}.queue: expected base64`);
    const bytes = Buffer.byteLength(queue, 'base64');
    if (bytes > MAX_QUEUE) badInput(`${where}.queue: ${bytes} bytes, more than ${MAX_QUEUE}`);
    if (bytes > 0 && state !== 'connected') badInput(`${where}.queue: only a connected socket keeps queued bytes`);
    desc.queue = queue;
    const packets = get(obj, 'packets');
    if (packets !== undefined) {
      if (type === 'stream') badInput(`${where}.packets: a stream socket has no message boundaries`);
      const list = array(packets, `${where}.packets`).map((n, i) => integer(n, `${where}.packets[${i}]`, 1, MAX_QUEUE));
      if (list.reduce((a, b) => a + b, 0) !== bytes) badInput(`${where}.packets: they add up to ${list.reduce((a, b) => a + b, 0)} bytes, the queue holds ${bytes}`);
      desc.packets = list;
    } else if (bytes > 0 && type !== 'stream') badInput(`${where}.packets: a ${type} socket's queued bytes need their message lengths`);
    return desc;
  },
  creation: (d) => ({ cls: d.state === 'connected' ? CLASS_PAIR_END : CLASS_SINGLE, seek: false, callFlags: 0, after: O_RDWR }),
  create: createSingle,
  createText: (d, cloexec) =>
    `socket(AF_UNIX, SOCK_${d.type.toUpperCase()}${cloexec ? '|SOCK_CLOEXEC' : ''})${d.address === undefined ? '' : ` + bind(${addressText(d.address)})`}${d.state === 'listening' ? ` + listen(${d.backlog})` : ''}`,
  createPair(ends, cloexec, fds, q) {
    const type = (ends[0] ?? ends[1])!.type;
    const sv = q.put(Buffer.alloc(8));
    q.call('socketpair', [AF_UNIX, BigInt(TYPES[type] | (cloexec ? SOCK_CLOEXEC : 0)), 0n, sv], 0n);
    q.load(sv, (BigInt(fds[1]) << 32n) | BigInt(fds[0]), (got) => `the kernel made fds [${Number(BigInt.asIntN(32, got))}, ${Number(BigInt.asIntN(32, got >> 32n))}], the plan expects [${fds.join(', ')}]`);
    ends.forEach((d, i) => d && setOptions(d, fds[i]!, q));
    // Every end's bytes before any shutdown: a shut down end sends nothing, nor takes anything.
    ends.forEach((d, i) => d && sendQueue(d, fds[1 - i]!, q));
    ends.forEach((d, i) => d && d.shutdown !== 0 && q.call('shutdown', [BigInt(fds[i]!), BigInt(SHUT_HOW[d.shutdown]!)], 0n));
  },
  pairText(ends, cloexec) {
    const d = (ends[0] ?? ends[1])!;
    const bytes = ends.map((e) => (e ? Buffer.byteLength(e.queue, 'base64') : 0));
    return `socketpair(AF_UNIX, SOCK_${d.type.toUpperCase()}${cloexec ? '|SOCK_CLOEXEC' : ''})${bytes.some((b) => b > 0) ? ` + send(${bytes.join(', ')} bytes)` : ''}`;
  },
  simCreate: (proc, d, cloexec) => proc.socket('unix', cloexec ? O_CLOEXEC : 0),
  simCreatePair: (proc, _ends, cloexec) => proc.socketpair(cloexec ? O_CLOEXEC : 0),
  simCheck: () => null,
  detail(d) {
    const bytes = Buffer.byteLength(d.queue, 'base64');
    const where = d.state === 'connected' ? `pair ${d.pair}` : d.address === undefined ? 'unbound' : addressText(d.address);
    const parts = [`${d.type} ${d.state === 'connected' ? 'end' : d.state}`, where];
    if (d.backlog !== undefined) parts.push(`backlog ${d.backlog}`);
    if (bytes > 0) parts.push(`${bytes} bytes queued${d.packets ? ` in ${d.packets.length} messages` : ''}`);
    if (d.shutdown !== 0) parts.push(`shut down ${['', 'for reading', 'for writing', 'both ways'][d.shutdown]}`);
    return parts.join(', ');
  },
  diff(a, b) {
    const out: string[] = [];
    if (a.type !== b.type) out.push(`${a.type} in A, ${b.type} in B`);
    if (a.state !== b.state) out.push(`${a.state} in A, ${b.state} in B`);
    if (a.address !== b.address) out.push(`bound to ${a.address === undefined ? 'nothing' : addressText(a.address)} in A, ${b.address === undefined ? 'nothing' : addressText(b.address)} in B`);
    if (a.backlog !== b.backlog) out.push(`backlog ${a.backlog} in A, ${b.backlog} in B`);
    if (a.queue !== b.queue || (a.packets ?? []).join() !== (b.packets ?? []).join()) {
      out.push(`queued ${Buffer.byteLength(a.queue, 'base64')} bytes in A, ${Buffer.byteLength(b.queue, 'base64')} in B${a.queue === b.queue ? ' (other message lengths)' : ''}`);
    }
    if (a.shutdown !== b.shutdown) out.push(`shutdown ${a.shutdown} in A, ${b.shutdown} in B`);
    for (const name of Object.keys(OPTIONS)) if (a.options[name] !== b.options[name]) out.push(`option ${name} ${a.options[name]} in A, ${b.options[name]} in B`);
    return out;
  },
};

function parseOptions(value: unknown, where: string): Record<string, number> {
  const obj: Obj = object(value, where);
  const out: Record<string, number> = {};
  for (const key of Object.keys(obj)) {
    if (!Object.hasOwn(OPTIONS, key)) badInput(`${where}.${key}: not an option cr carries (${Object.keys(OPTIONS).join(', ')})`);
    out[key] = integer(get(obj, key), `${where}.${key}`, key === 'peekOff' ? -1 : 0, TIMEOUTS.has(key) ? Number.MAX_SAFE_INTEGER : 2 ** 31 - 1);
  }
  return out;
}

function parseAddress(value: unknown, where: string): string {
  if (typeof value !== 'string') badInput(`${where}: expected a path or @ and base64`);
  if (value.startsWith('@')) {
    const name = value.slice(1);
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(name) || name.length % 4 !== 0 || Buffer.byteLength(name, 'base64') > SUN_PATH - 1) {
      badInput(`${where}: an abstract name is @ and base64 of at most ${SUN_PATH - 1} bytes`);
    }
    return value;
  }
  if (!value.startsWith('/') || value.includes('\0') || Buffer.byteLength(value) > SUN_PATH - 1) badInput(`${where}: expected an absolute path of at most ${SUN_PATH - 1} bytes`);
  return value;
}

