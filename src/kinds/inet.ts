// An inet socket (AF_INET, AF_INET6) that holds no connection: a listening TCP socket, a bound
// or connected UDP socket, an unbound one. Read through a dup of cr's own (getsockname,
// getpeername, TCP_INFO, options); made again by one call's worth (CLASS_SINGLE): socket(), the
// options (SO_REUSEADDR and SO_REUSEPORT before the bind, as the program set them), bind() to the
// same address and port, listen() with its backlog, connect() for a connected UDP socket.
// An established TCP connection (or one in any other TCP state) is refused naming it: carrying
// one needs TCP repair, which cr does not do yet. Queued datagrams and connections waiting to be
// accepted are refused too.
import { CLASS_SINGLE } from '../abi.js';
import { badInput } from '../errors.js';
import { getpeername, getsockname, getsockoptBuf, getsockoptInt, SOL_SOCKET } from '../../bridge/socket.js';
import { pipeQueued } from '../../bridge/pipe.js';
import { O_ACCMODE, O_APPEND, O_CLOEXEC, O_NONBLOCK, O_RDWR, type InetDesc } from '../model/fdtable.js';
import { get, integer, object, type Obj } from '../model/json.js';
import { no, oddFlags } from './common.js';
import type { CallQueue, KindModule, Recognised, Unsupported } from './kind.js';
import type { ProcFd } from '../proc/fds.js';
import { withSocket } from './socket-read.js';

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

function sockaddr(family: 4 | 6, address: string, port: number): Buffer {
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
    if (proto === 'tcp') {
      const info = getsockoptBuf(own, IPPROTO_TCP, TCP_INFO, 104);
      const tcpState = info.readUInt8(0);
      if (tcpState === TCP_LISTEN) {
        const waiting = info.readUInt32LE(24);
        if (waiting > 0) return no(e, what, `${e.link}: listening on ${endpoint(family, local.address, local.port)}, ${waiting} connection${waiting === 1 ? '' : 's'} wait${waiting === 1 ? 's' : ''} to be accepted, which cr does not carry`);
        state = 'listening';
        backlog = info.readUInt32LE(28);
      } else if (tcpState !== TCP_CLOSE) {
        const conn = peer ? `${endpoint(family, local.address, local.port)} -> ${endpoint(family, peer.address, peer.port)}` : endpoint(family, local.address, local.port);
        return no(e, 'TCP connection', `${e.link}: the ${TCP_STATES[tcpState] ?? `state ${tcpState}`} connection ${conn} needs TCP repair (TCP_REPAIR, with CAP_NET_ADMIN) to be carried, which cr does not do yet; close it before the dump`);
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
      ...(peer === null || state !== 'connected' ? {} : { peerAddress: peer.address, peerPort: peer.port }),
      options,
    };
    return { kind: 'inet', describe: (id) => ({ id, ...desc }) };
  });
}

const SOCK_TYPES = { tcp: 1, udp: 2 } as const;

function create(d: InetDesc, cloexec: boolean, fd: number, q: CallQueue): void {
  q.call('socket', [BigInt(d.family === 4 ? AF_INET : AF_INET6), BigInt(SOCK_TYPES[d.protocol] | (cloexec ? O_CLOEXEC : 0)), 0n], BigInt(fd));
  for (const [name, value] of Object.entries(d.options)) {
    if (DEFAULTS[name] === value) continue;
    const [level, opt] = INET_OPTIONS[name]!;
    const arg = Buffer.alloc(4);
    arg.writeInt32LE(name === 'sndbuf' || name === 'rcvbuf' ? Math.floor(value / 2) : value, 0);
    q.call('setsockopt', [BigInt(fd), BigInt(level), BigInt(opt), q.put(arg), 4n], 0n, `setsockopt(${fd}, ${name}, ${value})`);
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

const STATES = ['listening', 'bound', 'connected', 'unbound'] as const;

function parseIp(value: unknown, family: 4 | 6, where: string): string {
  const ok = typeof value === 'string' && (family === 4 ? /^(\d{1,3})(\.\d{1,3}){3}$/.test(value) && value.split('.').every((b) => Number(b) <= 255) : /^([0-9a-f]{1,4})(:[0-9a-f]{1,4}){7}$/.test(value));
  if (!ok) badInput(`${where}: expected an IPv${family} address${family === 6 ? ' as eight hex words' : ''}`);
  return value as string;
}

export const inet: KindModule<'inet'> = {
  kind: 'inet',
  recognise,
  fields: ['family', 'protocol', 'state', 'address', 'port', 'backlog', 'peerAddress', 'peerPort', 'options'],
  parse(obj, where, id, flags) {
    if ((flags & O_ACCMODE) !== O_RDWR || (flags & ~INET_FLAGS) !== 0) badInput(`${where}.flags: a socket is O_RDWR with at most O_NONBLOCK and O_APPEND`);
    const family = get(obj, 'family');
    if (family !== 4 && family !== 6) badInput(`${where}.family: expected 4 or 6`);
    const protocol = get(obj, 'protocol');
    if (protocol !== 'tcp' && protocol !== 'udp') badInput(`${where}.protocol: expected tcp or udp`);
    const state = get(obj, 'state');
    if (typeof state !== 'string' || !(STATES as readonly string[]).includes(state)) badInput(`${where}.state: expected one of ${STATES.join(', ')}`);
    if (state === 'listening' && protocol !== 'tcp') badInput(`${where}.state: only a TCP socket listens`);
    if (state === 'connected' && protocol !== 'udp') badInput(`${where}.state: a connected TCP socket is not carried`);
    const desc: InetDesc = { id, kind: 'inet', flags, family, protocol, state: state as InetDesc['state'], options: parseOptions(get(obj, 'options'), `${where}.options`) };
    if (state !== 'unbound') {
      desc.address = parseIp(get(obj, 'address'), family, `${where}.address`);
      desc.port = integer(get(obj, 'port'), `${where}.port`, 1, 65535);
    }
    if (state === 'listening') desc.backlog = integer(get(obj, 'backlog'), `${where}.backlog`, 0, 2 ** 31 - 1);
    if (state === 'connected') {
      desc.peerAddress = parseIp(get(obj, 'peerAddress'), family, `${where}.peerAddress`);
      desc.peerPort = integer(get(obj, 'peerPort'), `${where}.peerPort`, 1, 65535);
    }
    return desc;
  },
  creation: () => ({ cls: CLASS_SINGLE, seek: false, callFlags: 0, after: O_RDWR }),
  create,
  createText: (d, cloexec) =>
    `socket(AF_INET${d.family === 6 ? '6' : ''}, SOCK_${d.protocol === 'tcp' ? 'STREAM' : 'DGRAM'}${cloexec ? '|SOCK_CLOEXEC' : ''})${d.port === undefined ? '' : ` + bind(${endpoint(d.family, d.address!, d.port)})`}${d.state === 'listening' ? ` + listen(${d.backlog})` : ''}${d.state === 'connected' ? ` + connect(${endpoint(d.family, d.peerAddress!, d.peerPort!)})` : ''}`,
  simCreate: (proc, _d, cloexec) => proc.socket('inet', cloexec ? O_CLOEXEC : 0),
  simCheck: () => null,
  detail: (d) =>
    `${d.protocol}${d.family === 6 ? '6' : ''} ${d.state}${d.port === undefined ? '' : ` ${endpoint(d.family, d.address!, d.port)}`}${d.backlog === undefined ? '' : `, backlog ${d.backlog}`}${d.peerPort === undefined ? '' : ` -> ${endpoint(d.family, d.peerAddress!, d.peerPort)}`}`,
  diff(a, b) {
    const out: string[] = [];
    const where = (d: InetDesc): string => `${d.protocol}${d.family === 6 ? '6' : ''} ${d.state} ${d.port === undefined ? '' : endpoint(d.family, d.address!, d.port)}`.trim();
    if (where(a) !== where(b)) out.push(`${where(a)} in A, ${where(b)} in B`);
    if (a.backlog !== b.backlog) out.push(`backlog ${a.backlog} in A, ${b.backlog} in B`);
    for (const name of Object.keys(INET_OPTIONS)) if (a.options[name] !== b.options[name]) out.push(`option ${name} ${a.options[name]} in A, ${b.options[name]} in B`);
    return out;
  },
};

function parseOptions(value: unknown, where: string): Record<string, number> {
  const obj: Obj = object(value, where);
  const out: Record<string, number> = {};
  for (const key of Object.keys(obj)) {
    if (!Object.hasOwn(INET_OPTIONS, key)) badInput(`${where}.${key}: not an option cr carries (${Object.keys(INET_OPTIONS).join(', ')})`);
    out[key] = integer(get(obj, key), `${where}.${key}`, 0, 2 ** 31 - 1);
  }
  return out;
}
