// An inet socket (AF_INET, AF_INET6) that holds no connection: a listening TCP socket, a bound
// or connected UDP socket, an unbound one. Read through a dup of cr's own (getsockname,
// getpeername, TCP_INFO, options); made again by one call's worth (CLASS_SINGLE): socket(), the
// options (SO_REUSEADDR and SO_REUSEPORT before the bind, as the program set them), bind() to the
// same address and port, listen() with its backlog, connect() for a connected UDP socket.
// An established TCP connection locked by the dump (src/dump/connections.ts: repair mode)
// is read and made again through TCP repair (src/kinds/tcp-repair.ts), with its sequence
// numbers, options, window and both queues; one the dump left unlocked (--tcp-close) is made as
// a connection its peer reset. A TCP socket in any other state (a connection being opened or
// closed), queued datagrams and connections waiting to be accepted are refused.
import { CLASS_SINGLE } from '../abi.js';
import { badInput } from '../errors.js';
import { getpeername, getsockname, getsockoptBuf, getsockoptInt, SOL_SOCKET } from '../../bridge/socket.js';
import { pipeQueued } from '../../bridge/pipe.js';
import { O_ACCMODE, O_APPEND, O_CLOEXEC, O_NONBLOCK, O_RDWR, type InetDesc, type TcpRepair } from '../model/fdtable.js';
import { get, integer, object, type Obj } from '../model/json.js';
import { no, oddFlags } from './common.js';
import type { CallQueue, KindModule, Recognised, Unsupported } from './kind.js';
import type { ProcFd } from '../proc/fds.js';
import { withSocket } from './socket-read.js';
import { connectionText, inRepair, queueRepair, queueRepairOn, readRepair, parseRepair, TCP_ESTABLISHED } from './tcp-repair.js';

const AF_INET = 2;
const AF_INET6 = 10;
const SO_DOMAIN = 39;
const SO_PROTOCOL = 38;
const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;
const IPPROTO_IPV6 = 41;
const TCP_INFO = 11;
const TCP_LISTEN = 10;
const TCP_CLOSE = 7;
const TCP_STATES = ['', 'established', 'SYN sent', 'SYN received', 'FIN wait 1', 'FIN wait 2', 'TIME_WAIT', 'closed', 'CLOSE_WAIT', 'LAST_ACK', 'listening', 'closing'];
/** What F_GETFL can show on a socket cr restores. */
const INET_FLAGS = O_RDWR | O_NONBLOCK | O_APPEND;

/** The options carried, by name: [level, option]; each an int getsockopt reads (the buffer sizes doubled). */
const INET_OPTIONS: Record<string, [number, number]> = {
  reuseaddr: [SOL_SOCKET, 2],
  reuseport: [SOL_SOCKET, 15],
  keepalive: [SOL_SOCKET, 9],
  broadcast: [SOL_SOCKET, 6],
  sndbuf: [SOL_SOCKET, 7],
  rcvbuf: [SOL_SOCKET, 8],
  priority: [SOL_SOCKET, 12],
  rcvlowat: [SOL_SOCKET, 18],
  v6only: [IPPROTO_IPV6, 26],
  nodelay: [IPPROTO_TCP, 1],
};
/** What a new socket has, for options whose default is the same everywhere: those are not set again. */
const DEFAULTS: Record<string, number> = { reuseaddr: 0, reuseport: 0, keepalive: 0, broadcast: 0, priority: 0, rcvlowat: 1, nodelay: 0 };

/** An address and port as the kernel wrote it (struct sockaddr_in or sockaddr_in6). */
function parseSockaddr(buf: Buffer): { address: string; port: number } {
  const family = buf.readUInt16LE(0);
  const port = buf.readUInt16BE(2);
  if (family === AF_INET) return { address: [...buf.subarray(4, 8)].join('.'), port };
  const words: string[] = [];
  for (let i = 0; i < 8; i++) words.push(buf.readUInt16BE(8 + 2 * i).toString(16));
  return { address: words.join(':'), port };
}

/** struct sockaddr_in or sockaddr_in6 of an address as the image keeps it. */
export function sockaddr(family: 4 | 6, address: string, port: number): Buffer {
  if (family === 4) {
    const out = Buffer.alloc(16);
    out.writeUInt16LE(AF_INET, 0);
    out.writeUInt16BE(port, 2);
    address.split('.').forEach((b, i) => out.writeUInt8(Number(b), 4 + i));
    return out;
  }
  const out = Buffer.alloc(28);
  out.writeUInt16LE(AF_INET6, 0);
  out.writeUInt16BE(port, 2);
  address.split(':').forEach((w, i) => out.writeUInt16BE(parseInt(w, 16), 8 + 2 * i));
  return out;
}

const endpoint = (family: 4 | 6, address: string, port: number): string => (family === 4 ? `${address}:${port}` : `[${address}]:${port}`);

function recognise(e: ProcFd): Recognised | Unsupported | null {
  if (!e.stat.isSocket()) return null;
  return withSocket(e.pid, e.fd, (own): Recognised | Unsupported | null => {
    const domain = getsockoptInt(own, SOL_SOCKET, SO_DOMAIN);
    if (domain !== AF_INET && domain !== AF_INET6) return null;
    const family: 4 | 6 = domain === AF_INET ? 4 : 6;
    const protocol = getsockoptInt(own, SOL_SOCKET, SO_PROTOCOL);
    const proto: InetDesc['protocol'] | null = protocol === IPPROTO_TCP ? 'tcp' : protocol === IPPROTO_UDP ? 'udp' : null;
    const what = `${proto ?? 'inet'}${family === 6 ? '6' : ''} socket`;
    if (proto === null) return no(e, what, `${e.link}: an inet socket of protocol ${protocol}, which cr does not carry`);
    const odd = oddFlags(e, INET_FLAGS, what);
    if (odd) return odd;
    const local = parseSockaddr(getsockname(own));
    const peerBuf = getpeername(own);
    const peer = peerBuf === null ? null : parseSockaddr(peerBuf);
    let state: InetDesc['state'] = local.port === 0 ? 'unbound' : 'bound';
    let backlog: number | undefined;
    let tcp: InetDesc['tcp'];
    if (proto === 'tcp') {
      const info = getsockoptBuf(own, IPPROTO_TCP, TCP_INFO, 104);
      const tcpState = info.readUInt8(0);
      if (tcpState === TCP_LISTEN) {
        const waiting = info.readUInt32LE(24);
        if (waiting > 0) return no(e, what, `${e.link}: listening on ${endpoint(family, local.address, local.port)}, ${waiting} connection${waiting === 1 ? '' : 's'} wait${waiting === 1 ? 's' : ''} to be accepted, which cr does not carry`);
        state = 'listening';
        backlog = info.readUInt32LE(28);
      } else if (tcpState === TCP_ESTABLISHED && peer !== null) {
        // Locked by the dump: carried whole; left unlocked (--tcp-close): made again as reset.
        const repair = inRepair(own) ? readRepair(own) : null;
        const conn = `${endpoint(family, local.address, local.port)} -> ${endpoint(family, peer.address, peer.port)}`;
        if (typeof repair === 'string') return no(e, 'TCP connection', `${e.link}: the connection ${conn}: ${repair}`);
        state = repair === null ? 'reset' : 'established';
        tcp = repair ?? undefined;
      } else if (tcpState !== TCP_CLOSE) {
        const conn = peer ? `${endpoint(family, local.address, local.port)} -> ${endpoint(family, peer.address, peer.port)}` : endpoint(family, local.address, local.port);
        return no(e, 'TCP connection', `${e.link}: the ${TCP_STATES[tcpState] ?? `state ${tcpState}`} connection ${conn} is being opened or closed; cr carries established ones only`);
      }
    } else {
      if (peer !== null) state = 'connected';
      const queued = pipeQueued(own);
      if (queued > 0) return no(e, what, `${e.link}: datagrams are queued at ${endpoint(family, local.address, local.port)} (${queued} bytes in the first), whose senders cr does not carry`);
    }
    const options: Record<string, number> = {};
    for (const [name, [level, opt]] of Object.entries(INET_OPTIONS)) {
      if (name === 'v6only' && family === 4) continue;
      if (name === 'nodelay' && proto !== 'tcp') continue;
      options[name] = getsockoptInt(own, level, opt);
    }
    const desc = {
      kind: 'inet' as const, flags: e.flags, family, protocol: proto, state,
      ...(state === 'unbound' ? {} : { address: local.address, port: local.port }),
      ...(backlog === undefined ? {} : { backlog }),
      ...(peer === null || !CONNECTED.has(state) ? {} : { peerAddress: peer.address, peerPort: peer.port }),
      options,
      ...(tcp === undefined ? {} : { tcp }),
    };
    return { kind: 'inet', describe: (id) => ({ id, ...desc }) };
  });
}

const SOCK_TYPES = { tcp: 1, udp: 2 } as const;
/** The states that have a peer. */
const CONNECTED = new Set<InetDesc['state']>(['connected', 'established', 'reset']);
/** shutdown(2) of a socket connected to nothing: it sets the flags and answers ENOTCONN. */
const ENOTCONN = 107n;

function create(d: InetDesc, cloexec: boolean, fd: number, q: CallQueue): void {
  q.call('socket', [BigInt(d.family === 4 ? AF_INET : AF_INET6), BigInt(SOCK_TYPES[d.protocol] | (cloexec ? O_CLOEXEC : 0)), 0n], BigInt(fd));
  if (d.state === 'established') queueRepairOn(fd, q);
  for (const [name, value] of Object.entries(d.options)) {
    if (DEFAULTS[name] === value) continue;
    // An established connection's buffers are sized around its queues (queueRepair).
    if (d.state === 'established' && (name === 'sndbuf' || name === 'rcvbuf')) continue;
    const [level, opt] = INET_OPTIONS[name]!;
    const arg = Buffer.alloc(4);
    arg.writeInt32LE(name === 'sndbuf' || name === 'rcvbuf' ? Math.floor(value / 2) : value, 0);
    q.call('setsockopt', [BigInt(fd), BigInt(level), BigInt(opt), q.put(arg), 4n], 0n, `setsockopt(${fd}, ${name}, ${value})`);
  }
  if (d.state === 'established') {
    queueRepair(d, fd, q, () => {
      const local = sockaddr(d.family, d.address!, d.port!);
      q.call('bind', [BigInt(fd), q.put(local), BigInt(local.length)], 0n, `bind(${fd}, ${endpoint(d.family, d.address!, d.port!)}) in repair mode`);
      const peer = sockaddr(d.family, d.peerAddress!, d.peerPort!);
      q.call('connect', [BigInt(fd), q.put(peer), BigInt(peer.length)], 0n, `connect(${fd}) of ${connectionText(d)} in repair mode (EADDRNOTAVAIL: a socket has that connection already)`);
    });
    return;
  }
  if (d.state === 'reset') {
    // A connection the peer reset, made unprivileged: the socket connects to itself on loopback,
    // then disconnects (connect AF_UNSPEC), which resets it (the next read answers ECONNRESET),
    // and is shut down both ways (then reads see end of file, writes EPIPE).
    const self = sockaddr(d.family, d.family === 4 ? '127.0.0.1' : '0:0:0:0:0:0:0:1', 0);
    const at = q.put(self);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(self.length, 0);
    q.call('bind', [BigInt(fd), at, BigInt(self.length)], 0n, `bind(${fd}, loopback)`);
    q.call('getsockname', [BigInt(fd), at, q.put(len)], 0n, `getsockname(${fd})`);
    q.call('connect', [BigInt(fd), at, BigInt(self.length)], 0n, `connect(${fd}) to itself`);
    q.call('connect', [BigInt(fd), q.put(Buffer.alloc(16)), 16n], 0n, `connect(${fd}, AF_UNSPEC)`);
    q.call('shutdown', [BigInt(fd), 2n], -ENOTCONN, `shutdown(${fd}, SHUT_RDWR)`);
    return;
  }
  if (d.address !== undefined && d.port !== undefined) {
    const addr = sockaddr(d.family, d.address, d.port);
    q.call('bind', [BigInt(fd), q.put(addr), BigInt(addr.length)], 0n, `bind(${fd}, ${endpoint(d.family, d.address, d.port)})`);
  }
  if (d.state === 'listening') q.call('listen', [BigInt(fd), BigInt(d.backlog ?? 0)], 0n);
  if (d.state === 'connected' && d.peerAddress !== undefined && d.peerPort !== undefined) {
    const addr = sockaddr(d.family, d.peerAddress, d.peerPort);
    q.call('connect', [BigInt(fd), q.put(addr), BigInt(addr.length)], 0n, `connect(${fd}, ${endpoint(d.family, d.peerAddress, d.peerPort)})`);
  }
}

const STATES = ['listening', 'bound', 'connected', 'unbound', 'established', 'reset'] as const;

function parseIp(value: unknown, family: 4 | 6, where: string): string {
  const ok = typeof value === 'string' && (family === 4 ? /^(\d{1,3})(\.\d{1,3}){3}$/.test(value) && value.split('.').every((b) => Number(b) <= 255) : /^([0-9a-f]{1,4})(:[0-9a-f]{1,4}){7}$/.test(value));
  if (!ok) badInput(`${where}: expected an IPv${family} address${family === 6 ? ' as eight hex words' : ''}`);
  return value as string;
}

export const inet: KindModule<'inet'> = {
  kind: 'inet',
  recognise,
  fields: ['family', 'protocol', 'state', 'address', 'port', 'backlog', 'peerAddress', 'peerPort', 'options', 'tcp'],
  binary: ['tcp.sendQueue', 'tcp.recvQueue'],
  parse(obj, where, id, flags) {
    if ((flags & O_ACCMODE) !== O_RDWR || (flags & ~INET_FLAGS) !== 0) badInput(`${where}.flags: a socket is O_RDWR with at most O_NONBLOCK and O_APPEND`);
    const family = get(obj, 'family');
    if (family !== 4 && family !== 6) badInput(`${where}.family: expected 4 or 6`);
    const protocol = get(obj, 'protocol');
    if (protocol !== 'tcp' && protocol !== 'udp') badInput(`${where}.protocol: expected tcp or udp`);
    const state = get(obj, 'state');
    if (typeof state !== 'string' || !(STATES as readonly string[]).includes(state)) badInput(`${where}.state: expected one of ${STATES.join(', ')}`);
    if (state === 'listening' && protocol !== 'tcp') badInput(`${where}.state: only a TCP socket listens`);
    if (state === 'connected' && protocol !== 'udp') badInput(`${where}.state: a TCP socket with a peer is established or reset`);
    if ((state === 'established' || state === 'reset') && protocol !== 'tcp') badInput(`${where}.state: only a TCP socket is ${state}`);
    const desc: InetDesc = { id, kind: 'inet', flags, family, protocol, state: state as InetDesc['state'], options: parseOptions(get(obj, 'options'), `${where}.options`) };
    if (state !== 'unbound') {
      desc.address = parseIp(get(obj, 'address'), family, `${where}.address`);
      desc.port = integer(get(obj, 'port'), `${where}.port`, 1, 65535);
    }
    if (state === 'listening') desc.backlog = integer(get(obj, 'backlog'), `${where}.backlog`, 0, 2 ** 31 - 1);
    if (state === 'established') desc.tcp = parseRepair(get(obj, 'tcp'), `${where}.tcp`);
    else if (Object.hasOwn(obj, 'tcp')) badInput(`${where}.tcp: only an established connection has one`);
    if (CONNECTED.has(state as InetDesc['state'])) {
      desc.peerAddress = parseIp(get(obj, 'peerAddress'), family, `${where}.peerAddress`);
      desc.peerPort = integer(get(obj, 'peerPort'), `${where}.peerPort`, 1, 65535);
    }
    return desc;
  },
  creation: () => ({ cls: CLASS_SINGLE, seek: false, callFlags: 0, after: O_RDWR }),
  create,
  createText: (d, cloexec) => {
    const made = `socket(AF_INET${d.family === 6 ? '6' : ''}, SOCK_${d.protocol === 'tcp' ? 'STREAM' : 'DGRAM'}${cloexec ? '|SOCK_CLOEXEC' : ''})`;
    if (d.state === 'established') return `${made} + TCP repair of ${connectionText(d)} (${queuedText(d.tcp!)})`;
    if (d.state === 'reset') return `${made} + reset (was ${connectionText(d)})`;
    return `${made}${d.port === undefined ? '' : ` + bind(${endpoint(d.family, d.address!, d.port)})`}${d.state === 'listening' ? ` + listen(${d.backlog})` : ''}${d.state === 'connected' ? ` + connect(${endpoint(d.family, d.peerAddress!, d.peerPort!)})` : ''}`;
  },
  simCreate: (proc, _d, cloexec) => proc.socket('inet', cloexec ? O_CLOEXEC : 0),
  simCheck: () => null,
  detail: (d) =>
    `${d.protocol}${d.family === 6 ? '6' : ''} ${d.state}${d.port === undefined ? '' : ` ${endpoint(d.family, d.address!, d.port)}`}${d.backlog === undefined ? '' : `, backlog ${d.backlog}`}${d.peerPort === undefined ? '' : ` -> ${endpoint(d.family, d.peerAddress!, d.peerPort)}`}${d.tcp === undefined ? '' : `, ${queuedText(d.tcp)}`}`,
  diff(a, b) {
    const out: string[] = [];
    const where = (d: InetDesc): string => `${d.protocol}${d.family === 6 ? '6' : ''} ${d.state} ${d.port === undefined ? '' : endpoint(d.family, d.address!, d.port)}`.trim();
    if (where(a) !== where(b)) out.push(`${where(a)} in A, ${where(b)} in B`);
    if (a.backlog !== b.backlog) out.push(`backlog ${a.backlog} in A, ${b.backlog} in B`);
    const peer = (d: InetDesc): string => (d.peerPort === undefined ? 'no peer' : `peer ${endpoint(d.family, d.peerAddress!, d.peerPort)}`);
    if (peer(a) !== peer(b)) out.push(`${peer(a)} in A, ${peer(b)} in B`);
    if (a.tcp && b.tcp) {
      for (const key of ['sendSeq', 'recvSeq', 'unsent', 'mss', 'sack', 'timestamps'] as const) if (a.tcp[key] !== b.tcp[key]) out.push(`${key} ${a.tcp[key]} in A, ${b.tcp[key]} in B`);
      if (a.tcp.sendQueue !== b.tcp.sendQueue) out.push(`the send queue differs (${queueBytes(a.tcp.sendQueue)} bytes in A, ${queueBytes(b.tcp.sendQueue)} in B)`);
      if (a.tcp.recvQueue !== b.tcp.recvQueue) out.push(`the receive queue differs (${queueBytes(a.tcp.recvQueue)} bytes in A, ${queueBytes(b.tcp.recvQueue)} in B)`);
      if (String(a.tcp.wscale) !== String(b.tcp.wscale)) out.push(`window scale ${a.tcp.wscale ?? 'none'} in A, ${b.tcp.wscale ?? 'none'} in B`);
      if (String(a.tcp.window) !== String(b.tcp.window)) out.push(`window ${a.tcp.window.join('/')} in A, ${b.tcp.window.join('/')} in B`);
    }
    for (const name of Object.keys(INET_OPTIONS)) if (a.options[name] !== b.options[name]) out.push(`option ${name} ${a.options[name]} in A, ${b.options[name]} in B`);
    return out;
  },
};

const queueBytes = (b64: string): number => Buffer.byteLength(b64, 'base64');

/** `12 bytes to send (3 unsent), 5 to read`. */
const queuedText = (t: TcpRepair): string => `${queueBytes(t.sendQueue)} bytes to send${t.unsent > 0 ? ` (${t.unsent} unsent)` : ''}, ${queueBytes(t.recvQueue)} to read`;

function parseOptions(value: unknown, where: string): Record<string, number> {
  const obj: Obj = object(value, where);
  const out: Record<string, number> = {};
  for (const key of Object.keys(obj)) {
    if (!Object.hasOwn(INET_OPTIONS, key)) badInput(`${where}.${key}: not an option cr carries (${Object.keys(INET_OPTIONS).join(', ')})`);
    out[key] = integer(get(obj, key), `${where}.${key}`, 0, 2 ** 31 - 1);
  }
  return out;
}
