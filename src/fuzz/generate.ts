// Random restore problems: an fd table as a real process could have it, and a target
// to restore it into. One seed, one case, on every machine.
import { type Desc, type DescFields, type Fd, type FdTable, type Pipe, type Rlimit } from '../model/fdtable.js';
import {
  O_APPEND,
  O_ASYNC,
  O_DIRECT,
  O_DIRECTORY,
  O_NOFOLLOW,
  O_PATH,
  O_DSYNC,
  O_LARGEFILE,
  O_NOATIME,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  O_SYNC,
  O_WRONLY,
} from '../model/fdtable.js';
import type { PlanTarget, TargetMode } from '../model/restore-target.js';
import { kindOf } from '../kinds/registry.js';
import { Rng } from './random.js';

export interface FuzzCase {
  table: FdTable;
  target: PlanTarget;
  /** when set, the table is also split over a tree of processes from this seed (fuzz/tree.ts) */
  tree?: number;
}

const PAGE = 4096;
/** The highest hard RLIMIT_NOFILE a case uses: fs.nr_open here. */
const NR_OPEN = 1 << 20;
const CHR_PATHS = ['/dev/null', '/dev/zero', '/dev/full', '/dev/urandom'];

interface Builder {
  rng: Rng;
  descs: Array<DescFields>;
  pipes: Array<Omit<Pipe, 'id'>>;
  /** fds per desc (index into descs): cloexec bits */
  fds: Array<{ desc: number; cloexec: boolean }>;
  dataLeft: number;
  files: string[];
  dirs: string[];
  fifos: number;
  /** socket pairs made so far (their ids) and listening sockets (their paths) */
  pairs: number;
  listeners: number;
}

/** How many fds a case has: mostly small, now and then up to 20,000. */
function pickSize(rng: Rng, maxFds: number): number {
  const size = rng.weighted<[number, number]>([
    [55, [1, 8]],
    [30, [9, 64]],
    [10, [65, 400]],
    [3, [401, 1000]],
    [1.2, [1001, 5000]],
    [0.12, [5001, 20000]],
  ]);
  return Math.min(maxFds, rng.int(size[0], size[1]));
}

function someOf(rng: Rng, p: number, bits: number[]): number {
  let flags = 0;
  for (const b of bits) if (rng.chance(p)) flags |= b;
  return flags;
}

/** Status flags a pipe end can carry: O_DIRECT (packet mode) and the F_SETFL ones. */
function pipeStatus(rng: Rng): number {
  return someOf(rng, 0.3, [O_NONBLOCK]) | someOf(rng, 0.08, [O_DIRECT, O_APPEND, O_ASYNC, O_NOATIME]);
}

/** Status flags open() can also give: O_DSYNC, O_SYNC. */
function openStatus(rng: Rng): number {
  return rng.chance(0.05) ? rng.pick([O_DSYNC, O_SYNC]) : 0;
}

function accessMode(rng: Rng): number {
  return rng.weighted([[4, O_RDONLY], [4, O_WRONLY], [2, O_RDWR]]);
}

/** Queued bytes for a new pipe of `capacity`: often none, sometimes full, maybe packets. */
function fillPipe(b: Builder, capacity: number): Omit<Pipe, 'id'> {
  const rng = b.rng;
  const pipe: Omit<Pipe, 'id'> = { capacity, data: Buffer.alloc(0) };
  if (!rng.chance(0.45) || b.dataLeft <= 0) return pipe;
  const room = Math.min(capacity, b.dataLeft);
  if (rng.chance(0.2)) {
    const slots = Math.min(capacity / PAGE, Math.max(1, Math.floor(room / PAGE)));
    const count = rng.int(1, Math.min(slots, rng.pick([1, 3, 16, slots])));
    const packets = Array.from({ length: count }, () => rng.weighted([[6, () => rng.int(1, 64)], [3, () => rng.int(1, PAGE)], [1, () => PAGE]])());
    const total = packets.reduce((a, n) => a + n, 0);
    if (total <= room) {
      pipe.packets = packets;
      pipe.data = Buffer.from(rng.bytes(total));
      b.dataLeft -= total;
      return pipe;
    }
  }
  const length = rng.weighted([[6, () => rng.int(1, 100)], [3, () => rng.int(1, Math.min(room, 20000))], [1, () => room]])();
  pipe.data = Buffer.from(rng.bytes(Math.min(length, room)));
  b.dataLeft -= length;
  return pipe;
}

function newPipe(b: Builder): number {
  const rng = b.rng;
  const capacity = PAGE << rng.weighted([[2, 0], [1, 1], [1, 2], [1, 3], [8, 4], [1, 5], [1, 6], [1, 7], [1, 8]]);
  b.pipes.push(fillPipe(b, capacity));
  return b.pipes.length - 1;
}

/** A description and its fds (one, or a few dups with mixed close-on-exec). */
function addDesc(b: Builder, desc: DescFields): void {
  b.descs.push(desc);
  const index = b.descs.length - 1;
  let count = 1;
  while (b.rng.chance(0.25) && count < 6) count++;
  for (let i = 0; i < count; i++) b.fds.push({ desc: index, cloexec: b.rng.chance(0.4) });
}

function addAnonymousPipe(b: Builder): void {
  const rng = b.rng;
  const pipe = newPipe(b);
  // Which pipe2() ends survive: both, one (the other closed), or none (only reopened ends).
  const [read, write] = rng.weighted<[boolean, boolean]>([[10, [true, true]], [3, [true, false]], [3, [false, true]], [2, [false, false]]]);
  if (read) addDesc(b, { kind: 'pipe', flags: O_RDONLY | pipeStatus(rng), pipe });
  if (write) addDesc(b, { kind: 'pipe', flags: O_WRONLY | pipeStatus(rng), pipe });
  let reopened = read || write ? 0 : 1;
  while (rng.chance(0.2) && reopened < 5) reopened++;
  for (let i = 0; i < reopened; i++) {
    addDesc(b, { kind: 'pipe', flags: accessMode(rng) | O_LARGEFILE | pipeStatus(rng) | openStatus(rng), pipe });
  }
}

function addFifo(b: Builder): void {
  const rng = b.rng;
  const pipe = newPipe(b);
  const path = `/tmp/cr-fuzz/fifo${b.fifos++}`;
  const count = rng.weighted([[5, 1], [3, 2], [1, 3], [1, 4]]);
  for (let i = 0; i < count; i++) {
    addDesc(b, { kind: 'fifo', flags: accessMode(rng) | O_LARGEFILE | pipeStatus(rng) | openStatus(rng), pipe, path });
  }
}

function addFile(b: Builder): void {
  const rng = b.rng;
  let path: string;
  if (b.files.length > 0 && rng.chance(0.25)) path = rng.pick(b.files);
  else {
    path = `/tmp/cr-fuzz/file${b.files.length}`;
    b.files.push(path);
  }
  const flags = accessMode(rng) | O_LARGEFILE | someOf(rng, 0.1, [O_APPEND, O_NONBLOCK, O_DIRECT, O_ASYNC, O_NOATIME]) | openStatus(rng);
  const offset = rng.weighted([[6, () => 0], [3, () => rng.int(1, 100000)], [1, () => rng.int(0, 2 ** 40)]])();
  addDesc(b, { kind: 'file', flags, path, offset });
}

function addChr(b: Builder): void {
  const rng = b.rng;
  // The devices modelled refuse O_DIRECT and keep no file position.
  const flags = accessMode(rng) | O_LARGEFILE | someOf(rng, 0.1, [O_APPEND, O_NONBLOCK, O_ASYNC]) | openStatus(rng);
  const desc: DescFields = { kind: 'chr', flags, path: rng.pick(CHR_PATHS) };
  if (rng.chance(0.5)) desc.offset = 0;
  addDesc(b, desc);
}

/** An eventfd: its counter (0, small, or up to 2^53 - 1 as cr keeps it) and mode. */
function addEventfd(b: Builder): void {
  const rng = b.rng;
  const count = rng.weighted([[3, () => 0], [4, () => rng.int(1, 1000)], [1, () => rng.int(0, 2 ** 53 - 1)]])();
  addDesc(b, { kind: 'eventfd', flags: O_RDWR | someOf(rng, 0.3, [O_NONBLOCK]), count, semaphore: rng.chance(0.3) });
}

/** A timerfd on each clock: disarmed, relative or absolute, periodic or not, with unread expirations or none. */
function addTimerfd(b: Builder): void {
  const rng = b.rng;
  const clock = rng.pick([0, 1, 7, 8, 9]);
  const abs = rng.chance(0.3);
  const settime = abs ? 1 | ((clock === 0 || clock === 8) && rng.chance(0.3) ? 2 : 0) : 0;
  const ns = (): string => String(BigInt(rng.int(0, 2 ** 31)) * BigInt(rng.pick([1, 1000, 1_000_000, 1_000_000_000])));
  const armed = rng.chance(0.7);
  const value = armed ? ns() : '0';
  const interval = rng.chance(0.5) ? ns() : '0';
  const ticks = rng.weighted([[5, () => 0], [3, () => rng.int(1, 100)], [1, () => rng.int(0, 2 ** 53 - 1)]])();
  addDesc(b, { kind: 'timerfd', flags: O_RDWR | someOf(rng, 0.3, [O_NONBLOCK]), clock, settime, value, interval, ticks });
}

/** A signalfd: any mask of the 64 signals but SIGKILL and SIGSTOP. */
function addSignalfd(b: Builder): void {
  const rng = b.rng;
  let mask = 0n;
  for (let s = 1; s <= 64; s++) if (s !== 9 && s !== 19 && rng.chance(0.15)) mask |= 1n << BigInt(s - 1);
  addDesc(b, { kind: 'signalfd', flags: O_RDWR | someOf(rng, 0.3, [O_NONBLOCK]), mask: mask.toString(16).padStart(16, '0') });
}

/** A memfd: a name, a size up to 2^40, a few extents of data, a position, seals as memfd_create and F_ADD_SEALS allow. */
function addMemfd(b: Builder): void {
  const rng = b.rng;
  const size = rng.weighted([[2, () => 0], [4, () => rng.int(1, 1 << 20)], [1, () => rng.int(0, 2 ** 40)]])();
  const extents: Array<{ offset: number; data: Buffer }> = [];
  let at = 0;
  for (let n = rng.int(0, 3); n > 0 && at < size; n--) {
    const offset = rng.int(at, Math.min(size - 1, at + (1 << 20)));
    const len = Math.min(size - offset, rng.pick([1, 17, 4096, 300000]));
    if (len <= 0) break;
    extents.push({ offset, data: Buffer.alloc(len, rng.int(1, 255)) });
    at = offset + len + 1;
  }
  const noexec = rng.chance(0.3);
  const seals = someOf(rng, 0.3, [1, 2, 4, 8, 0x10]) | (noexec ? 0x20 : someOf(rng, 0.1, [0x20]));
  const mode = noexec ? 0o666 : rng.pick([0o777, 0o777, 0o700, 0o644]);
  const name = rng.pick(['', 'x', 'cr fuzz', 'wayland-shm', 'a'.repeat(249)]);
  addDesc(b, { kind: 'memfd', flags: O_RDWR | O_LARGEFILE | someOf(rng, 0.2, [O_NONBLOCK, O_APPEND]), name, size, offset: rng.int(0, Math.min(size + 10, 2 ** 40)), mode, seals, extents });
}

/** A deleted file: a path it had, any access mode, a size, a few extents, a position. */
function addDeleted(b: Builder): void {
  const rng = b.rng;
  const size = rng.weighted([[2, () => 0], [4, () => rng.int(1, 1 << 20)], [1, () => rng.int(0, 2 ** 40)]])();
  const extents: Array<{ offset: number; data: Buffer }> = [];
  if (size > 0 && rng.chance(0.7)) {
    const offset = rng.int(0, size - 1);
    extents.push({ offset, data: Buffer.alloc(Math.min(size - offset, rng.pick([1, 100, 4096])), 7) });
  }
  const flags = accessMode(rng) | O_LARGEFILE | someOf(rng, 0.1, [O_APPEND, O_NONBLOCK, O_NOATIME]) | openStatus(rng);
  addDesc(b, { kind: 'deleted', flags, path: `/tmp/cr-fuzz/gone${rng.int(0, 9)}`, size, offset: rng.int(0, size + 10), mode: rng.pick([0o600, 0o644, 0o400, 0o755]), extents });
}

/** An inotify: up to 4 watches on distinct paths, wds ascending from 1 with some skipped (watches removed). */
function addInotify(b: Builder): void {
  const rng = b.rng;
  const watches: Array<{ wd: number; path: string; mask: number }> = [];
  let wd = 0;
  for (let n = rng.int(0, 4); n > 0; n--) {
    wd += rng.weighted([[4, () => 1], [1, () => rng.int(2, 40)]])();
    watches.push({ wd, path: `/tmp/cr-fuzz/watched${watches.length}`, mask: rng.pick([0x2, 0x100, 0x200, 0xfff, 0x40000100, 0x80000002]) });
  }
  addDesc(b, { kind: 'inotify', flags: O_RDONLY | someOf(rng, 0.5, [O_NONBLOCK]), watches });
}

/**
 * A pty pair a process made: its master (any number, termios, window, lock, packet mode) and up to
 * 3 slave descriptions of it. The master's fds come first, so trimming the table's tail never
 * leaves a slave without its master.
 */
function addPty(b: Builder): void {
  const rng = b.rng;
  const hex = (bytes: number): string => Buffer.from(rng.bytes(bytes)).toString('hex');
  const master = b.descs.length;
  const index = rng.int(0, 4095);
  const locked = rng.chance(0.15);
  addDesc(b, { kind: 'ptmx', flags: O_RDWR | O_LARGEFILE | someOf(rng, 0.3, [O_NONBLOCK]), index, termios: hex(44), winsize: hex(8), locked, packet: rng.chance(0.2) });
  for (let n = locked ? 0 : rng.weighted([[2, 0], [4, 1], [2, 2], [1, 3]]); n > 0; n--) {
    addDesc(b, { kind: 'pts', flags: O_RDWR | someOf(rng, 0.5, [O_LARGEFILE]) | someOf(rng, 0.2, [O_NONBLOCK]), master, index });
  }
}

/**
 * Unix sockets: a connected pair of one type (both ends, or one whose peer was closed) with bytes
 * queued at each end (messages for datagram and seqpacket) and shutdown bits, an unconnected
 * socket, or a listener on a path of its own.
 */
function addUnix(b: Builder): void {
  const rng = b.rng;
  const flags = (): number => O_RDWR | someOf(rng, 0.3, [O_NONBLOCK]);
  const options = (): Record<string, number> => (rng.chance(0.7) ? {} : { sndbuf: rng.int(4608, 1 << 20), rcvbuf: rng.int(2304, 1 << 20), passcred: rng.int(0, 1) });
  const type = rng.weighted([[4, 'stream'], [2, 'dgram'], [2, 'seqpacket']] as const);
  const kind = rng.weighted([[6, 'pair'], [2, 'unconnected'], [1, 'listening']] as const);
  if (kind === 'unconnected') {
    addDesc(b, { kind: 'unix', flags: flags(), type, state: 'unconnected', queue: '', shutdown: 0, options: options() });
    return;
  }
  if (kind === 'listening') {
    const address = `/tmp/cr-fuzz/sock${b.listeners++}`;
    addDesc(b, { kind: 'unix', flags: flags(), type: type === 'dgram' ? 'stream' : type, state: 'listening', address, backlog: rng.int(0, 4096), queue: '', shutdown: 0, options: options() });
    return;
  }
  const pair = b.pairs++;
  for (let end = rng.chance(0.15) ? 1 : 2; end > 0; end--) {
    const desc: DescFields = { kind: 'unix', flags: flags(), type, state: 'connected', pair, queue: '', shutdown: rng.weighted([[6, 0], [1, 1], [1, 2], [1, 3]]), options: options() };
    if (rng.chance(0.5) && b.dataLeft > 0) {
      const packets = Array.from({ length: rng.int(1, 4) }, () => rng.int(1, Math.min(2000, b.dataLeft)));
      const total = packets.reduce((a, n) => a + n, 0);
      b.dataLeft -= total;
      desc.queue = Buffer.from(rng.bytes(total)).toString('base64');
      if (type !== 'stream') desc.packets = packets;
    }
    addDesc(b, desc);
  }
}

/** An epoll: its items are chosen once every description has its id and numbers (linkEpolls). */
function addEpoll(b: Builder): void {
  addDesc(b, { kind: 'epoll', flags: O_RDWR | someOf(b.rng, 0.3, [O_NONBLOCK]), items: [] });
}

const EPOLL_EVENTS = [0x19, 0x1c, 0x1d, 0x80000019, 0x8000001d, 0x40000019, 0x40000000, 0xc0000019, 0x2019];
const EPOLLEXCLUSIVE_EVENTS = 0x10000019;

/**
 * Each epoll's items: up to 5 descriptions a real epoll can watch (pipes, FIFOs, eventfds, and
 * epolls that watch no epoll, so there is no loop), each mostly under one of its own numbers,
 * sometimes under a number it has left (closed, or held by another description since).
 */
function linkEpolls(rng: Rng, descs: Desc[], fds: Fd[], soft: number): void {
  const numbers = new Map<number, number[]>();
  for (const f of fds) numbers.set(f.desc, [...(numbers.get(f.desc) ?? []), f.fd]);
  const epolls = descs.filter((d): d is Extract<Desc, { kind: 'epoll' }> => d.kind === 'epoll');
  const flat = new Set(epolls.filter(() => rng.chance(0.6)).map((d) => d.id));
  for (const ep of epolls) {
    const watchable = descs.filter((d) => d.kind === 'pipe' || d.kind === 'fifo' || d.kind === 'eventfd' || d.kind === 'timerfd' || d.kind === 'signalfd' || d.kind === 'inotify' || (d.kind === 'epoll' && d.id !== ep.id && flat.has(d.id) && !flat.has(ep.id)));
    if (watchable.length === 0) continue;
    const seen = new Set<string>();
    for (let n = rng.int(0, 5); n > 0; n--) {
      const target = rng.pick(watchable);
      const fd = rng.chance(0.75) ? rng.pick(numbers.get(target.id)!) : rng.below(Math.max(1, Math.min(soft, 4096)));
      if (seen.has(`${target.id}:${fd}`)) continue;
      seen.add(`${target.id}:${fd}`);
      const events = target.kind !== 'epoll' && rng.chance(0.1) ? EPOLLEXCLUSIVE_EVENTS : rng.pick(EPOLL_EVENTS);
      const data = Array.from({ length: 16 }, () => rng.pick([...'0123456789abcdef'])).join('');
      ep.items.push({ fd, target: target.id, events, data });
    }
  }
}

/** A directory open for reading, at a getdents position (a cookie: 0, small, or a 63-bit hash). */
function addDir(b: Builder): void {
  const rng = b.rng;
  let path: string;
  if (b.dirs.length > 0 && rng.chance(0.25)) path = rng.pick(b.dirs);
  else {
    path = `/tmp/cr-fuzz/dir${b.dirs.length}`;
    b.dirs.push(path);
  }
  const flags = O_RDONLY | O_LARGEFILE | someOf(rng, 0.5, [O_DIRECTORY]) | someOf(rng, 0.1, [O_NONBLOCK, O_NOATIME]);
  const offset = rng.weighted([[3, () => '0'], [2, () => String(rng.int(1, 100000))], [1, () => `${rng.int(1, 9_000_000)}${String(rng.int(0, 999_999_999)).padStart(9, '0')}`]])();
  addDesc(b, { kind: 'dir', flags, path, offset });
}

/** An O_PATH fd naming a file, a directory or a device the table may also open. */
function addOpath(b: Builder): void {
  const rng = b.rng;
  const nofollow = someOf(rng, 0.2, [O_NOFOLLOW]);
  const pick = rng.weighted([[2, 'file'], [2, 'dir'], [1, 'chr']] as const);
  if (pick === 'dir') {
    const path = b.dirs.length > 0 && rng.chance(0.5) ? rng.pick(b.dirs) : `/tmp/cr-fuzz/dir${b.dirs.push(`/tmp/cr-fuzz/dir${b.dirs.length}`) - 1}`;
    addDesc(b, { kind: 'opath', flags: O_PATH | nofollow | someOf(rng, 0.5, [O_DIRECTORY]), path, type: 'directory' });
  } else if (pick === 'file') {
    const path = b.files.length > 0 && rng.chance(0.5) ? rng.pick(b.files) : `/tmp/cr-fuzz/file${b.files.push(`/tmp/cr-fuzz/file${b.files.length}`) - 1}`;
    addDesc(b, { kind: 'opath', flags: O_PATH | nofollow, path, type: 'regular file' });
  } else {
    addDesc(b, { kind: 'opath', flags: O_PATH | nofollow, path: rng.pick(CHR_PATHS), type: 'character device' });
  }
}

/** `count` distinct fd numbers below `soft`, laid out one of several ways. */
function pickNumbers(rng: Rng, count: number, soft: number): number[] {
  const layout = rng.weighted([[4, 'dense'], [3, 'sparse'], [2, 'high'], [3, 'mixed']] as const);
  if (layout === 'dense' || count === soft) return Array.from({ length: count }, (_, i) => i);
  if (layout === 'high') return Array.from({ length: count }, (_, i) => soft - count + i);
  if (layout === 'sparse') return rng.sample(soft, count);
  const low = rng.int(0, count);
  const set = new Set<number>(Array.from({ length: low }, (_, i) => i));
  set.add(soft - 1);
  while (set.size < count) set.add(rng.below(soft));
  return [...set].slice(0, count);
}

/** The image's RLIMIT_NOFILE for `count` fds: from exactly full to roomy. */
function pickImageLimit(rng: Rng, count: number): Rlimit {
  const soft = rng.weighted<() => number>([
    [2, () => count],
    [2, () => count + rng.int(1, 3)],
    [4, () => Math.max(count, 1024)],
    [2, () => Math.max(count, rng.pick([64, 256, 4096, 20000]))],
    [1, () => count + rng.int(0, 100000)],
  ])();
  const hard = rng.weighted<() => number>([
    [4, () => soft],
    [3, () => Math.max(soft, 20000)],
    [2, () => soft + rng.int(0, 1000)],
    [1, () => Math.max(soft, NR_OPEN)],
  ])();
  return { soft: Math.min(soft, NR_OPEN), hard: Math.min(Math.max(hard, soft), NR_OPEN) };
}

function makeTable(rng: Rng, maxFds: number): FdTable {
  const wanted = Math.max(1, pickSize(rng, maxFds));
  // Bytes of pipe data the case may queue in all: mostly little, so big tables stay quick.
  const dataLeft = rng.weighted([[80, 4096], [17, 65536], [3, 1280 << 10]]);
  const b: Builder = { rng, descs: [], pipes: [], fds: [], dataLeft, files: [], dirs: [], fifos: 0, pairs: 0, listeners: 0 };
  const mix = rng.weighted<Array<[number, (b: Builder) => void]>>([
    [5, [[55, addAnonymousPipe], [15, addFifo], [20, addFile], [10, addChr], [4, addEventfd], [4, addDir], [3, addOpath], [3, addEpoll], [2, addTimerfd], [2, addSignalfd], [2, addMemfd], [2, addDeleted], [2, addInotify], [2, addPty], [4, addUnix]]],
    [1, [[1, addEventfd], [1, addDir], [1, addOpath], [1, addFile], [1, addEpoll], [1, addTimerfd], [1, addSignalfd], [1, addMemfd], [1, addDeleted], [1, addInotify], [1, addPty], [1, addUnix]]],
    [2, [[1, addAnonymousPipe]]],
    [1, [[1, addFifo]]],
    [1, [[3, addFile], [1, addChr], [1, addAnonymousPipe]]],
  ]);
  while (b.fds.length < wanted) rng.weighted(mix)(b);
  // Trim to the size wanted: drop trailing fds, then anything left without one.
  b.fds.length = wanted;
  const usedDescs = [...new Set(b.fds.map((f) => f.desc))].sort((x, y) => x - y);
  const rlimit = pickImageLimit(rng, wanted);
  const numbers = rng.shuffle(pickNumbers(rng, wanted, rlimit.soft));
  // Ids are sparse and shuffled so nothing can confuse an id with an index.
  const descIds = rng.sample(wanted * 4 + 16, usedDescs.length);
  const descId = new Map<number, number>(usedDescs.map((d, i) => [d, descIds[i]]));
  const usedPipes = [...new Set(usedDescs.map((d) => ('pipe' in b.descs[d] ? (b.descs[d] as { pipe: number }).pipe : undefined)).filter((p): p is number => p !== undefined))].sort((x, y) => x - y);
  const pipeIds = rng.sample(usedPipes.length * 3 + 8, usedPipes.length);
  const pipeId = new Map<number, number>(usedPipes.map((p, i) => [p, pipeIds[i]]));
  const fds: Fd[] = b.fds.map((f, i) => ({ fd: numbers[i], desc: descId.get(f.desc)!, cloexec: f.cloexec }));
  const descs: Desc[] = usedDescs.map((d) => {
    const src = b.descs[d];
    const desc = { ...src, id: descId.get(d)! } as Desc;
    if ('pipe' in desc) desc.pipe = pipeId.get(desc.pipe)!;
    if (desc.kind === 'pts') desc.master = descId.get(desc.master)!;
    return desc;
  });
  const pipes: Pipe[] = usedPipes.map((p) => ({ id: pipeId.get(p)!, ...b.pipes[p] }));
  linkEpolls(rng, descs, fds, rlimit.soft);
  if (rng.chance(0.5)) fds.sort((x, y) => x.fd - y.fd);
  if (rng.chance(0.3)) rng.shuffle(descs);
  return { fds, descs, pipes, rlimit };
}

function makeTarget(rng: Rng, table: FdTable): PlanTarget {
  const image = table.fds.map((f) => f.fd);
  const maxFd = Math.max(...image);
  const mode = rng.weighted<TargetMode>([[4, 'fresh'], [3, 'into'], [3, 'into-exact']]);
  const rlimit = rng.weighted<() => Rlimit>([
    [4, () => ({ ...table.rlimit })],
    [3, () => ({ soft: table.rlimit.soft, hard: table.rlimit.soft })],
    [2, () => ({ soft: 1024, hard: Math.max(20000, maxFd + 1) })],
    [2, () => {
      const hard = maxFd + 1 + rng.int(0, 4);
      return { soft: rng.int(Math.min(3, hard), hard), hard };
    }],
    [1, () => ({ soft: rng.int(0, 64), hard: rng.int(64, 40000) })], // maybe below an image fd: no plan
  ])();
  if (rlimit.soft > rlimit.hard) rlimit.soft = rlimit.hard;
  const hard = rlimit.hard;
  const fds = rng.weighted<() => number[]>([
    [4, () => [0, 1, 2].filter((fd) => fd < hard)],
    [2, () => []],
    [3, () => {
      // Collisions: some image numbers, some others.
      const set = new Set<number>();
      for (const fd of image) if (rng.chance(0.3)) set.add(fd);
      const others = rng.int(0, 5);
      for (let i = 0; i < others; i++) set.add(rng.below(Math.max(1, hard)));
      return [...set];
    }],
    [2, () => image.map((fd) => fd + rng.pick([1, -1, 2])).filter((fd) => fd >= 0 && fd < hard)],
    [1, () => [...image]],
    [2, () => {
      // Crowded: leave only a few numbers below the hard limit free (rarely when that
      // means tens of thousands of target fds: they cost time, not new paths).
      if (hard > 20000 || (hard > 1100 && !rng.chance(0.01))) return [0, 1, 2];
      const taken = new Set(image);
      const free: number[] = [];
      for (let fd = 0; fd < hard; fd++) if (!taken.has(fd)) free.push(fd);
      const keep = rng.int(0, 4);
      return rng.shuffle(free).slice(keep).concat(image.filter(() => rng.chance(0.5)));
    }],
  ])();
  return { fds: [...new Set(fds)], rlimit, mode };
}

/** The case for one seed; at most maxFds fds. */
export function generateCase(seed: number, maxFds = 20000): FuzzCase {
  const rng = new Rng(seed);
  const table = makeTable(rng, maxFds);
  const target = makeTarget(rng, table);
  // One case in three of up to 400 fds is planned as a tree of processes too.
  return seed % 3 === 0 && table.fds.length <= 400 ? { table, target, tree: seed } : { table, target };
}

/**
 * Whether the planner promises a plan: every image fd below the target's hard limit,
 * and at least 2 numbers below it that are neither image nor target fds, plus (in the
 * 'into' modes) one per description all of whose fds are taken by target fds; with a pty,
 * room for it above all of those below the target's soft limit.
 */
export function planGuaranteed(table: FdTable, target: PlanTarget): boolean {
  const hard = target.rlimit.hard;
  const image = new Set<number>();
  for (const f of table.fds) {
    if (f.fd >= hard) return false;
    image.add(f.fd);
  }
  const targetFds = new Set(target.fds);
  // An epoll item kept under a number that does not hold its target at the end is made with the
  // target put there for the call (src/plan/links.ts): the number must be below the soft limit and
  // not the live target's own, and one number above all must be free to hold its occupant aside.
  const at = new Map(table.fds.map((f) => [f.fd, f.desc]));
  const spare = Math.max(-1, ...image, ...(target.mode === 'into' ? targetFds : [])) + 1;
  for (const d of table.descs) {
    if (d.kind !== 'epoll') continue;
    for (const item of d.items) {
      if (at.get(item.fd) === item.target) continue;
      if (item.fd >= target.rlimit.soft || (target.mode === 'into' && targetFds.has(item.fd) && !image.has(item.fd))) return false;
      if (at.has(item.fd) && spare >= target.rlimit.soft) return false;
    }
  }
  let taken = image.size;
  for (const fd of targetFds) if (fd < hard && !image.has(fd)) taken++;
  const free = hard - taken;
  let needed = 2;
  if (target.mode !== 'fresh') {
    const blocked = new Map<number, boolean>();
    for (const f of table.fds) blocked.set(f.desc, (blocked.get(f.desc) ?? true) && targetFds.has(f.fd));
    for (const all of blocked.values()) if (all) needed++;
  }
  if (free < needed) return false;
  // An object made before the plan (a pty) is held at a spare number above every number the plan
  // uses (src/plan/ptys.ts), below the soft limit the plan runs with (at least the target's).
  const prepared = table.descs.filter((d) => kindOf(d).prepare !== undefined).length;
  if (prepared === 0) return true;
  // Every number the plan names: the image's, the target's, those an epoll's items are made at.
  const linked = table.descs.flatMap((d) => kindOf(d).links?.(d).map((l) => l.fd) ?? []);
  const top = Math.max(-1, ...image, ...[...targetFds].filter((fd) => fd < hard), ...linked);
  return top + 1 + needed + prepared <= target.rlimit.soft;
}
