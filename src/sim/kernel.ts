// A simulated process fd table, written from Linux semantics (fs/file.c, fs/fcntl.c,
// fs/pipe.c, fs/open.c) and checked against this machine (docs/simulator.md), never
// from the planner: it is what the planner's output is judged by.
import type { Rlimit } from '../model/fdtable.js';
import {
  O_ACCMODE,
  O_APPEND,
  O_ASYNC,
  O_CLOEXEC,
  O_CREAT,
  O_DIRECT,
  O_DIRECTORY,
  O_DSYNC,
  O_EXCL,
  O_LARGEFILE,
  O_NOATIME,
  O_NOCTTY,
  O_NOFOLLOW,
  O_NONBLOCK,
  O_PATH,
  O_RDONLY,
  O_RDWR,
  O_SYNC,
  O_TRUNC,
  O_WRONLY,
  DEFAULT_PIPE_CAPACITY,
} from '../model/fdtable.js';
import { flagNames } from '../model/flags.js';
import type { NodeType, SimItem, SimMemfd, SimTimer } from '../kinds/kind.js';

export const PAGE_SIZE = 4096;
/** fs.nr_open on this machine: the ceiling for RLIMIT_NOFILE's hard limit. */
export const NR_OPEN = 1 << 20;
/** fs.pipe-max-size on this machine: F_SETPIPE_SZ above it needs CAP_SYS_RESOURCE. */
export const PIPE_MAX_SIZE = 1 << 20;
const O_TMPFILE_BIT = 0o20000000;

/**
 * Why a simulated syscall failed: an errno the kernel would return, `WOULDBLOCK` for a
 * call that would sleep (a plan must never block), or `REFUSED` for something a plan
 * must never do that the simulator does not model (truncating a file, touching a file
 * of the target it knows nothing about).
 */
export type SimErrno =
  | 'EBADF'
  | 'EEXIST'
  | 'EMFILE'
  | 'EINVAL'
  | 'EPERM'
  | 'EBUSY'
  | 'ENXIO'
  | 'ENOENT'
  | 'ENOTDIR'
  | 'ELOOP'
  | 'EPIPE'
  | 'ESPIPE'
  | 'WOULDBLOCK'
  | 'REFUSED';

export class SimError extends Error {
  readonly call: string;
  /** `call` renders the call for the message; a function, so no string is built unless a call fails */
  constructor(
    call: string | (() => string),
    readonly errno: SimErrno,
    detail?: string,
  ) {
    const text = typeof call === 'string' ? call : call();
    super(`${text}: ${errno === 'WOULDBLOCK' ? 'would block' : errno}${detail ? ` (${detail})` : ''}`);
    this.call = text;
    this.name = 'SimError';
  }
}


/** One page of a pipe's ring (struct pipe_buffer): bytes, and whether it is a packet. */
export interface PipeBuffer {
  len: number;
  /** PIPE_BUF_FLAG_PACKET: written through O_DIRECT; such a buffer is never merged into */
  packet: boolean;
  chunks: Uint8Array[];
}

/** A pipe object (struct pipe_inode_info): anonymous, or the pipe of an open FIFO. */
export class SimPipe {
  /** pipe->max_usage: ring slots; F_GETPIPE_SZ is slots * PAGE_SIZE */
  slots = DEFAULT_PIPE_CAPACITY / PAGE_SIZE;
  buffers: PipeBuffer[] = [];
  readers = 0;
  writers = 0;
  /** open descriptions of this pipe (pipe->files); the pipe and its bytes die at 0 */
  files = 0;
  constructor(
    readonly serial: number,
    /** the FIFO node this pipe belongs to, if not anonymous */
    readonly fifo: SimNode | null,
  ) {}

  get capacity(): number {
    return this.slots * PAGE_SIZE;
  }

  get queued(): number {
    let n = 0;
    for (const b of this.buffers) n += b.len;
    return n;
  }

  /** The queued bytes, in order. */
  bytes(): Uint8Array {
    const out = new Uint8Array(this.queued);
    let at = 0;
    for (const b of this.buffers) {
      for (const c of b.chunks) {
        out.set(c, at);
        at += c.length;
      }
    }
    return out;
  }
}

export type SimKind = 'pipe' | 'fifo' | 'file' | 'chr' | 'dir' | 'opath' | 'eventfd' | 'epoll' | 'timerfd' | 'signalfd' | 'ptmx' | 'pts' | 'unix' | 'inet' | 'memfd' | 'deleted' | 'inotify' | 'pidfd' | 'foreign';

/** A watch of a simulated inotify: the path it watches (the simulator has no inodes). */
type SimWatch = { wd: number; path: string; mask: number };

/**
 * The empty lists every description starts with: most never get an epoll item or an inotify watch,
 * and a table of 100,000 would make two arrays each. Frozen, so a push to them throws rather than
 * reaching every description; the first item or watch gives its description a list of its own.
 */
const NO_ITEMS = Object.freeze([]) as unknown as SimItem[];
const NO_WATCHES = Object.freeze([]) as unknown as SimWatch[];

/**
 * What only some kinds of description use: an epoll's items and watchers, an eventfd's counter, a
 * timerfd, a signalfd's mask, a pty, a socket pair, a memfd, an inotify, a pidfd, a file's offset.
 * A description gets one at the first write of any of them: a table of 100,000 pipe ends makes
 * none, and each SimDesc is half the size it would be with these fields of its own.
 */
class SimDescExtra {
  offset = 0n;
  count = 0n;
  semaphore = false;
  items: SimItem[] = NO_ITEMS;
  watchers: Set<SimDesc> | null = null;
  timer: SimTimer | null = null;
  mask = 0n;
  pty: SimDesc | null = null;
  pair: object | null = null;
  memfd: SimMemfd | null = null;
  watches: SimWatch[] = NO_WATCHES;
  nextWd = 1;
  queued = 0;
  target = 0;
}

/** Defaults read from a description without a SimDescExtra. */
const NO_EXTRA: Readonly<SimDescExtra> = Object.freeze(new SimDescExtra());

/** An open file description (struct file). */
export class SimDesc {
  /** fds referring to this description */
  refs = 0;
  /** on the pipe's fasync list: set by F_SETFL O_ASYNC only, never by open() */
  fasync = false;
  /** the fields of the kinds that use them, made at the first write of one */
  private extra: SimDescExtra | null = null;
  constructor(
    readonly serial: number,
    readonly kind: SimKind,
    public flags: number,
    readonly pipe: SimPipe | null,
    readonly node: SimNode | null,
    /** for 'foreign': the target fd it was found at */
    readonly origin = -1,
  ) {}

  private get own(): SimDescExtra {
    return (this.extra ??= new SimDescExtra());
  }

  /** file position (f_pos) for files, character devices and directories (a cookie there) */
  get offset(): bigint {
    return (this.extra ?? NO_EXTRA).offset;
  }
  set offset(v: bigint) {
    this.own.offset = v;
  }

  /** an eventfd's counter and mode */
  get count(): bigint {
    return (this.extra ?? NO_EXTRA).count;
  }
  set count(v: bigint) {
    this.own.count = v;
  }
  get semaphore(): boolean {
    return (this.extra ?? NO_EXTRA).semaphore;
  }
  set semaphore(v: boolean) {
    this.own.semaphore = v;
  }

  /** an epoll's interest list (targets are SimDescs) */
  get items(): SimItem[] {
    return (this.extra ?? NO_EXTRA).items;
  }
  set items(v: SimItem[]) {
    this.own.items = v;
  }

  /**
   * the epolls watching this description: its last close takes it off their lists
   * (eventpoll_release); made by the first epoll_ctl on it, as most descriptions never have one
   */
  get watchers(): Set<SimDesc> | null {
    return (this.extra ?? NO_EXTRA).watchers;
  }
  set watchers(v: Set<SimDesc> | null) {
    this.own.watchers = v;
  }

  /** a timerfd's settings */
  get timer(): SimTimer | null {
    return (this.extra ?? NO_EXTRA).timer;
  }
  set timer(v: SimTimer | null) {
    this.own.timer = v;
  }

  /** a signalfd's mask */
  get mask(): bigint {
    return (this.extra ?? NO_EXTRA).mask;
  }
  set mask(v: bigint) {
    this.own.mask = v;
  }

  /** a pty master's or slave's pty: the master's description */
  get pty(): SimDesc | null {
    return (this.extra ?? NO_EXTRA).pty;
  }
  set pty(v: SimDesc | null) {
    this.own.pty = v;
  }

  /** a socket pair's ends share this object (made by one socketpair()) */
  get pair(): object | null {
    return (this.extra ?? NO_EXTRA).pair;
  }
  set pair(v: object | null) {
    this.own.pair = v;
  }

  /** a memfd's file (one description per memfd here) */
  get memfd(): SimMemfd | null {
    return (this.extra ?? NO_EXTRA).memfd;
  }
  set memfd(v: SimMemfd | null) {
    this.own.memfd = v;
  }

  /** an inotify's watches (one per path here: the simulator has no inodes), the next wd, events queued */
  get watches(): SimWatch[] {
    return (this.extra ?? NO_EXTRA).watches;
  }
  set watches(v: SimWatch[]) {
    this.own.watches = v;
  }
  get nextWd(): number {
    return (this.extra ?? NO_EXTRA).nextWd;
  }
  set nextWd(v: number) {
    this.own.nextWd = v;
  }
  get queued(): number {
    return (this.extra ?? NO_EXTRA).queued;
  }
  set queued(v: number) {
    this.own.queued = v;
  }

  /** a pidfd's process */
  get target(): number {
    return (this.extra ?? NO_EXTRA).target;
  }
  set target(v: number) {
    this.own.target = v;
  }

  get readable(): boolean {
    return (this.flags & O_ACCMODE) !== O_WRONLY;
  }

  get writable(): boolean {
    return (this.flags & O_ACCMODE) !== O_RDONLY;
  }
}

/** A name in the simulated file system. */
export interface SimNode {
  path: string;
  kind: NodeType;
  /** for a FIFO: its pipe while any description of it is open */
  pipe: SimPipe | null;
}

/** The file system the simulated process sees: the paths the image names, nothing else. */
export class SimWorld {
  private readonly nodes = new Map<string, SimNode>();
  private serials = 0;

  constructor(readonly pipeMaxSize = PIPE_MAX_SIZE) {}

  add(path: string, kind: SimNode['kind']): void {
    const seen = this.nodes.get(path);
    if (seen && seen.kind !== kind) throw new Error(`simulated world: ${path} is a ${seen.kind}, not a ${kind}`);
    if (!seen) this.nodes.set(path, { path, kind, pipe: null });
  }

  lookup(path: string): SimNode | undefined {
    return this.nodes.get(path);
  }

  serial(): number {
    return ++this.serials;
  }
}

export interface FdEntry {
  desc: SimDesc;
  cloexec: boolean;
}

const PROC_FD = /^\/proc\/self\/fd\/(0|[1-9][0-9]{0,9})$/;
const OPEN_KNOWN = O_ACCMODE | O_APPEND | O_NONBLOCK | O_DSYNC | O_ASYNC | O_DIRECT | O_LARGEFILE | O_NOATIME | O_CLOEXEC | O_SYNC | O_NOCTTY | O_NOFOLLOW | O_DIRECTORY;
const PIPE2_FLAGS = O_CLOEXEC | O_NONBLOCK | O_DIRECT;
/** uapi/linux/eventpoll.h */
const EPOLLERR = 0x8;
const EPOLLHUP = 0x10;
const EPOLLEXCLUSIVE = 1 << 28;

/** EFD_SEMAPHORE; eventfd2 takes it with O_NONBLOCK and O_CLOEXEC (fs/eventfd.c EFD_FLAGS_SET). */
const EFD_SEMAPHORE = 1;
const EVENTFD_MAX = 0xfffffffffffffffen;
/** What an O_PATH open keeps (fs/open.c O_PATH_FLAGS, O_CLOEXEC aside). */
const O_PATH_KEPT = O_DIRECTORY | O_NOFOLLOW | O_PATH;
/**
 * fs/fcntl.c's SETFL_MASK: what F_SETFL copies from its argument. Not O_ASYNC, which
 * only ->fasync changes (see setfl), unlike model/fdtable.ts's SETFL_MASK.
 */
const SETFL_BITS = O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME;

/**
 * A set of fd numbers answering "lowest free number >= n" quickly. Like the kernel's next_fd
 * (fs/file.c), `firstOpen` is a word below which every word is full: a search from 0 starts
 * there, so filling a table of n fds costs O(n), not O(n^2) word scans.
 */
class FdBitmap {
  private words = new Uint32Array(64);
  private firstOpen = 0;

  set(fd: number, used: boolean): void {
    const w = fd >>> 5;
    if (w >= this.words.length) {
      if (!used) return;
      const grown = new Uint32Array(Math.max(w + 1, this.words.length * 2));
      grown.set(this.words);
      this.words = grown;
    }
    if (used) this.words[w] |= 1 << (fd & 31);
    else {
      this.words[w] &= ~(1 << (fd & 31));
      if (w < this.firstOpen) this.firstOpen = w;
    }
  }

  lowestFree(min: number): number {
    let w = min >>> 5;
    const words = this.words;
    let bits: number;
    if (w < this.firstOpen) {
      w = this.firstOpen;
      bits = w < words.length ? words[w]! : 0;
    } else {
      if (w >= words.length) return min;
      bits = words[w]! | ((1 << (min & 31)) - 1);
    }
    // The search saw every number from firstOpen up (it started below it, or at its first bit).
    const fromStart = min >>> 5 < this.firstOpen || (min & 31) === 0 && min >>> 5 === this.firstOpen;
    while (bits === -1 || bits === 0xffffffff) {
      w++;
      if (w >= words.length) {
        if (fromStart) this.firstOpen = w;
        return w * 32;
      }
      bits = words[w]!;
    }
    // Every word between the search's start and w was full: none below w holds a free number.
    if (fromStart) this.firstOpen = w;
    const inverted = ~bits >>> 0;
    return w * 32 + (31 - Math.clz32(inverted & -inverted));
  }
}

/**
 * fd -> entry, as an array indexed by fd (a process's numbers are dense, the lowest free taken
 * first): a Map of 100,000 fds costs several times more per call.
 */
/** FdEntries fills its array up to numbers below this (the planner plans below 2^21) */
const GROWN_BELOW = 1 << 21;

class FdEntries {
  /** fd -> its description: no object per fd (a plan of 100,000 fds installs 184,000) */
  private readonly descs: Array<SimDesc | undefined> = [];
  /**
   * fd -> its close-on-exec bit, a byte each (grown by doubling): a table of 100,000 fds reads it at
   * random fd numbers, where a JS array of booleans is eight times the memory to miss in; numbers
   * from GROWN_BELOW up in a Map
   */
  private cloexecs = new Uint8Array(64);
  private far: Map<number, boolean> | null = null;
  size = 0;

  desc(fd: number): SimDesc | undefined {
    return this.descs[fd];
  }

  cloexec(fd: number): boolean {
    return fd < this.cloexecs.length ? this.cloexecs[fd] === 1 : this.far?.get(fd) === true;
  }

  has(fd: number): boolean {
    return this.descs[fd] !== undefined;
  }

  set(fd: number, desc: SimDesc, cloexec: boolean): void {
    const descs = this.descs;
    // Grown one slot at a time: a store far past the end (a dup2 to a high number) turns the array
    // into a dictionary, every later access a hash lookup. Numbers beyond any a plan uses (a
    // target's fd may be near 2^30) are stored as they come rather than filled up to.
    if (fd < GROWN_BELOW) for (let i = descs.length; i <= fd; i++) descs.push(undefined);
    if (descs[fd] === undefined) this.size++;
    descs[fd] = desc;
    this.setCloexec(fd, cloexec);
  }

  setCloexec(fd: number, cloexec: boolean): void {
    if (fd >= GROWN_BELOW) {
      (this.far ??= new Map()).set(fd, cloexec);
      return;
    }
    if (fd >= this.cloexecs.length) {
      const grown = new Uint8Array(Math.min(Math.max(fd + 1, 2 * this.cloexecs.length), GROWN_BELOW));
      grown.set(this.cloexecs);
      this.cloexecs = grown;
    }
    this.cloexecs[fd] = cloexec ? 1 : 0;
  }

  delete(fd: number): void {
    if (this.descs[fd] === undefined) return;
    this.descs[fd] = undefined;
    this.size--;
  }

  /** The open fds, ascending. */
  keys(): number[] {
    const out: number[] = [];
    this.descs.forEach((e, fd) => {
      if (e !== undefined) out.push(fd);
    });
    return out;
  }
}

/** One simulated process: its fd table and its RLIMIT_NOFILE. */
export class SimProcess {
  private readonly table = new FdEntries();
  private readonly holds = new Map<number, number>();
  private readonly used = new FdBitmap();
  private limit: Rlimit;

  constructor(
    readonly world: SimWorld,
    rlimit: Rlimit,
    readonly nrOpen = NR_OPEN,
  ) {
    this.limit = { soft: rlimit.soft, hard: rlimit.hard };
  }

  get rlimit(): Rlimit {
    return { soft: this.limit.soft, hard: this.limit.hard };
  }

  /** Open fds in ascending order. */
  fds(): number[] {
    return this.table.keys();
  }

  /** fd's description and close-on-exec bit, as a record made for the caller. */
  get(fd: number): FdEntry | undefined {
    const desc = this.table.desc(fd);
    return desc === undefined ? undefined : { desc, cloexec: this.table.cloexec(fd) };
  }

  /** fd's description, or undefined if it is not open. */
  descAt(fd: number): SimDesc | undefined {
    return this.table.desc(fd);
  }

  /** fd's close-on-exec bit (false if it is not open). */
  cloexecAt(fd: number): boolean {
    return this.table.cloexec(fd);
  }

  get size(): number {
    return this.table.size;
  }

  /** Give the process an fd on a file the simulator knows nothing about (a target's own fd). */
  adoptForeign(fd: number, cloexec = false): SimDesc {
    if (this.table.has(fd)) throw new Error(`simulated process: fd ${fd} is already open`);
    const desc = new SimDesc(this.world.serial(), 'foreign', 0, null, null, fd);
    this.install(fd, desc, cloexec);
    return desc;
  }

  // ---- syscalls ----

  /**
   * fork(): a new process with a copy of this fd table (each fd a new reference to the same
   * description, close-on-exec kept) and the same RLIMIT_NOFILE, in the same world.
   */
  fork(): SimProcess {
    const child = new SimProcess(this.world, this.limit, this.nrOpen);
    for (const fd of this.fds()) child.install(fd, this.table.desc(fd)!, this.table.cloexec(fd));
    return child;
  }

  pipe2(flags: number): [number, number] {
    if ((flags & ~PIPE2_FLAGS) !== 0) throw new SimError(pipe2Call(flags), 'EINVAL');
    const r = this.lowestFree(0);
    if (r < 0) throw new SimError(pipe2Call(flags), 'EMFILE');
    this.used.set(r, true); // reserved, as get_unused_fd_flags does, until both are found
    const w = this.lowestFree(0);
    this.used.set(r, false);
    if (w < 0) throw new SimError(pipe2Call(flags), 'EMFILE');
    const pipe = new SimPipe(this.world.serial(), null);
    // create_pipe_files: O_DIRECT (packet mode) goes to the write end only.
    const read = this.describe('pipe', O_RDONLY | (flags & O_NONBLOCK), pipe, null);
    const write = this.describe('pipe', O_WRONLY | (flags & (O_NONBLOCK | O_DIRECT)), pipe, null);
    const cloexec = (flags & O_CLOEXEC) !== 0;
    this.install(r, read, cloexec);
    this.install(w, write, cloexec);
    return [r, w];
  }

  open(path: string, flags: number): number {
    const call = (): string => `open(${JSON.stringify(path)}, ${flagNames(flags)})`;
    if ((flags & (O_CREAT | O_EXCL | O_TRUNC | O_TMPFILE_BIT)) !== 0) {
      throw new SimError(call, 'REFUSED', 'a restore never creates or truncates');
    }
    if ((flags & O_PATH) !== 0) return this.openPath(path, flags, call);
    if ((flags & ~OPEN_KNOWN) !== 0) throw new SimError(call, 'REFUSED', `flag bits 0o${((flags & ~OPEN_KNOWN) >>> 0).toString(8)} not modelled`);
    // do_sys_openat2 takes the fd number before it looks at the path.
    const fd = this.allocate(0, call);
    let pipe: SimPipe | null = null;
    let node: SimNode | null = null;
    const via = PROC_FD.exec(path);
    if (via) {
      const desc = this.table.desc(Number(via[1]));
      if (!desc) throw new SimError(call, 'ENOENT');
      if ((flags & O_NOFOLLOW) !== 0) throw new SimError(call, 'ELOOP');
      if (desc.kind === 'foreign') throw new SimError(call, 'REFUSED', `fd ${via[1]} is a file of the target the simulator knows nothing of`);
      node = desc.node;
      pipe = desc.kind === 'pipe' ? desc.pipe : null;
    } else {
      if (path === '/proc' || path.startsWith('/proc/')) throw new SimError(call, 'REFUSED', 'only /proc/self/fd/N is modelled');
      node = this.world.lookup(path) ?? null;
      if (!node) throw new SimError(call, 'ENOENT');
    }
    if ((flags & O_DIRECTORY) !== 0 && node?.kind !== 'dir') throw new SimError(call, 'ENOTDIR');
    const mode = flags & O_ACCMODE;
    if (node?.kind === 'dir' && mode !== O_RDONLY) throw new SimError(call, 'REFUSED', 'a directory opened for writing (EISDIR) is not modelled');
    if (node !== null && (node.kind === 'blk' || node.kind === 'symlink')) throw new SimError(call, 'REFUSED', `opening a ${node.kind} is not modelled`);
    // Access mode 3 (ioctl only): fifo_open refuses it; files would take it, but no
    // table has it and no restore needs it.
    if (mode === O_ACCMODE) {
      if (pipe !== null || node?.kind === 'fifo') throw new SimError(call, 'EINVAL');
      throw new SimError(call, 'REFUSED', 'access mode 3 is not modelled');
    }
    if (node?.kind === 'fifo') {
      // fifo_open: only named FIFOs wait for a partner; O_RDWR never waits.
      const current = node.pipe;
      if (mode === O_RDONLY && (current?.writers ?? 0) === 0 && (flags & O_NONBLOCK) === 0) {
        throw new SimError(call, 'WOULDBLOCK', 'FIFO has no writer');
      }
      if (mode === O_WRONLY && (current?.readers ?? 0) === 0) {
        if ((flags & O_NONBLOCK) !== 0) throw new SimError(call, 'ENXIO', 'FIFO has no reader');
        throw new SimError(call, 'WOULDBLOCK', 'FIFO has no reader');
      }
    }
    // Pipes, FIFOs and the character devices modelled (/dev/null and kin) lack
    // FMODE_CAN_ODIRECT, checked after ->open (so after fifo_open's waiting): a
    // pipe's packet mode is set with F_SETFL only.
    if ((flags & O_DIRECT) !== 0 && (pipe !== null || node?.kind !== 'file')) throw new SimError(call, 'EINVAL');
    if (node?.kind === 'fifo') {
      node.pipe ??= new SimPipe(this.world.serial(), node);
      pipe = node.pipe;
    }
    const descFlags = ((flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC)) | O_LARGEFILE) >>> 0;
    const kind = (pipe ? (pipe.fifo ? 'fifo' : 'pipe') : (node as SimNode).kind) as SimKind;
    const desc = this.describe(kind, descFlags, pipe, node);
    this.install(fd, desc, (flags & O_CLOEXEC) !== 0);
    return fd;
  }

  /**
   * open(path, O_PATH | ...): no ->open, nothing but the place; f_flags keeps O_PATH, O_DIRECTORY
   * and O_NOFOLLOW (no O_LARGEFILE). A symlink's own place needs O_NOFOLLOW.
   */
  private openPath(path: string, flags: number, call: () => string): number {
    if (PROC_FD.test(path) || path === '/proc' || path.startsWith('/proc/')) throw new SimError(call, 'REFUSED', 'an O_PATH open under /proc is not modelled');
    const fd = this.allocate(0, call);
    const node = this.world.lookup(path);
    if (!node) throw new SimError(call, 'ENOENT');
    if (node.kind === 'symlink' && (flags & O_NOFOLLOW) === 0) throw new SimError(call, 'REFUSED', 'following a symlink is not modelled');
    if ((flags & O_DIRECTORY) !== 0 && node.kind !== 'dir') throw new SimError(call, 'ENOTDIR');
    const desc = this.describe('opath', flags & O_PATH_KEPT, null, node);
    this.install(fd, desc, (flags & O_CLOEXEC) !== 0);
    return fd;
  }

  /** open("/dev/ptmx", flags): a new pty's master, its flags as asked plus O_LARGEFILE. */
  ptmxOpen(flags: number): number {
    const call = (): string => `open("/dev/ptmx", ${flagNames(flags)})`;
    const fd = this.allocate(0, call);
    const desc = this.describe('ptmx', (flags & ~(O_CLOEXEC | O_NOCTTY)) | O_LARGEFILE, null, null);
    desc.pty = desc;
    this.install(fd, desc, (flags & O_CLOEXEC) !== 0);
    return fd;
  }

  /** ioctl(fd, TIOCGPTPEER, flags): a new description of the pty's slave, flags as given (drivers/tty/pty.c ptm_open_peer). */
  ptyPeer(fd: number, flags: number): number {
    const call = (): string => `ioctl(${fd}, TIOCGPTPEER, ${flagNames(flags)})`;
    const master = this.lookup(fd, call);
    if (master.kind !== 'ptmx') throw new SimError(call, master.kind === 'foreign' ? 'REFUSED' : 'EINVAL', 'not a pty master (ENOTTY)');
    const slave = this.allocate(0, call);
    const desc = this.describe('pts', flags & ~(O_CLOEXEC | O_NOCTTY), null, null);
    desc.pty = master;
    this.install(slave, desc, (flags & O_CLOEXEC) !== 0);
    return slave;
  }

  /** Note where a `pty` op holds the object made for description `desc` (the plan's spare fd). */
  hold(desc: number, fd: number): void {
    this.holds.set(desc, fd);
  }

  held(desc: number): number {
    const fd = this.holds.get(desc);
    if (fd === undefined) throw new SimError(() => `<pty of description ${desc}>`, 'REFUSED', 'no pty op made it first');
    return fd;
  }

  /** eventfd2(initval, flags): a new counter, O_RDWR plus O_NONBLOCK as asked. */
  eventfd2(initval: number, flags: number): number {
    const call = (): string => `eventfd2(${initval}, ${flags})`;
    if ((flags & ~(EFD_SEMAPHORE | O_NONBLOCK | O_CLOEXEC)) !== 0) throw new SimError(call, 'EINVAL');
    const fd = this.allocate(0, call);
    const desc = this.describe('eventfd', O_RDWR | (flags & O_NONBLOCK), null, null);
    desc.count = BigInt(initval >>> 0);
    desc.semaphore = (flags & EFD_SEMAPHORE) !== 0;
    this.install(fd, desc, (flags & O_CLOEXEC) !== 0);
    return fd;
  }

  /** pidfd_open(pid, flags): O_RDWR plus PIDFD_NONBLOCK (O_NONBLOCK) and PIDFD_THREAD (O_EXCL) as asked, always close-on-exec. */
  pidfdOpen(pid: number, flags: number): number {
    const call = (): string => `pidfd_open(${pid}, ${flags})`;
    if ((flags & ~(O_NONBLOCK | O_EXCL)) !== 0 || pid <= 0) throw new SimError(call, 'EINVAL');
    const fd = this.allocate(0, call);
    const desc = this.describe('pidfd', O_RDWR | flags, null, null);
    desc.target = pid;
    this.install(fd, desc, true);
    return fd;
  }

  /** socketpair(AF_UNIX, type | flags): two O_RDWR ends of one pair (net/socket.c: SOCK_NONBLOCK and SOCK_CLOEXEC only). */
  socketpair(flags: number): [number, number] {
    const call = (): string => `socketpair(${flagNames(flags)})`;
    if ((flags & ~(O_NONBLOCK | O_CLOEXEC)) !== 0) throw new SimError(call, 'EINVAL');
    const a = this.allocate(0, call);
    this.used.set(a, true); // both numbers are taken before either is installed
    let b: number;
    try {
      b = this.allocate(0, call);
    } finally {
      this.used.set(a, false);
    }
    const pair = {};
    const cloexec = (flags & O_CLOEXEC) !== 0;
    for (const fd of [a, b]) {
      const desc = this.describe('unix', O_RDWR | (flags & O_NONBLOCK), null, null);
      desc.pair = pair;
      this.install(fd, desc, cloexec);
    }
    return [a, b];
  }

  /** socket(domain, type | flags): one O_RDWR socket. */
  socket(kind: 'unix' | 'inet', flags: number): number {
    const call = (): string => `socket(${flagNames(flags)})`;
    if ((flags & ~(O_NONBLOCK | O_CLOEXEC)) !== 0) throw new SimError(call, 'EINVAL');
    const fd = this.allocate(0, call);
    this.install(fd, this.describe(kind, O_RDWR | (flags & O_NONBLOCK), null, null), (flags & O_CLOEXEC) !== 0);
    return fd;
  }

  /** write(fd, <8 bytes: value>) on an eventfd: adds to the counter, or would block past its maximum. */
  eventfdWrite(fd: number, value: bigint): number {
    const call = (): string => `write(${fd}, <eventfd ${value}>)`;
    const desc = this.lookup(fd, call);
    if (desc.kind !== 'eventfd') throw new SimError(call, desc.kind === 'foreign' ? 'REFUSED' : 'EINVAL', 'not an eventfd');
    if (value < 0n || value > EVENTFD_MAX) throw new SimError(call, 'EINVAL');
    if (desc.count + value > EVENTFD_MAX) throw new SimError(call, 'WOULDBLOCK', 'the counter would pass its maximum');
    desc.count += value;
    return 8;
  }

  /** epoll_create1(flags): an empty interest list, O_RDWR. */
  epollCreate1(flags: number): number {
    const call = (): string => `epoll_create1(${flags})`;
    if ((flags & ~O_CLOEXEC) !== 0) throw new SimError(call, 'EINVAL');
    const fd = this.allocate(0, call);
    this.install(fd, this.describe('epoll', O_RDWR, null, null), (flags & O_CLOEXEC) !== 0);
    return fd;
  }

  /**
   * epoll_ctl(epfd, EPOLL_CTL_ADD, fd, {events, data}): the item is keyed by the file at `fd` and
   * the number `fd`; EPOLLERR|EPOLLHUP are always added. Regular files and directories cannot be
   * polled (EPERM), an O_PATH fd is no file to epoll (EBADF).
   */
  epollCtlAdd(epfd: number, fd: number, events: number, data: bigint): void {
    const call = (): string => `epoll_ctl(${epfd}, EPOLL_CTL_ADD, ${fd}, {${events >>> 0}, ${data}})`;
    const ep = this.lookup(epfd, call);
    const target = this.lookup(fd, call);
    if (target.kind === 'opath' || ep.kind === 'opath') throw new SimError(call, 'EBADF');
    if (ep.kind === 'foreign' || target.kind === 'foreign') throw new SimError(call, 'REFUSED', 'a file of the target the simulator knows nothing of');
    if (ep.kind !== 'epoll' || ep === target) throw new SimError(call, 'EINVAL');
    if (target.kind === 'file' || target.kind === 'dir') throw new SimError(call, 'EPERM');
    if ((events & EPOLLEXCLUSIVE) !== 0 && target.kind === 'epoll') throw new SimError(call, 'EINVAL');
    if (ep.items.some((i) => i.target === target && i.fd === fd)) throw new SimError(call, 'EEXIST');
    if (ep.items === NO_ITEMS) ep.items = [];
    ep.items.push({ fd, target, events: (events | EPOLLERR | EPOLLHUP) >>> 0, data });
    (target.watchers ??= new Set()).add(ep);
  }

  /** timerfd_create(clock, flags): a disarmed timer, O_RDWR plus O_NONBLOCK as asked. */
  timerfdCreate(clock: number, flags: number): number {
    const call = (): string => `timerfd_create(${clock}, ${flags})`;
    if ((flags & ~(O_NONBLOCK | O_CLOEXEC)) !== 0 || ![0, 1, 7, 8, 9].includes(clock)) throw new SimError(call, 'EINVAL');
    const fd = this.allocate(0, call);
    const desc = this.describe('timerfd', O_RDWR | (flags & O_NONBLOCK), null, null);
    desc.timer = { clock, settime: 0, value: '0', interval: '0', ticks: 0 };
    this.install(fd, desc, (flags & O_CLOEXEC) !== 0);
    return fd;
  }

  /** timerfd_settime(fd, flags, {interval, value}): arms or disarms; the ticks go back to 0 (timerfd_setup). */
  timerfdSettime(fd: number, flags: number, value: bigint, interval: bigint): void {
    const call = (): string => `timerfd_settime(${fd}, ${flags}, {${value}, ${interval}})`;
    const desc = this.lookup(fd, call);
    if (desc.timer === null) throw new SimError(call, 'EINVAL');
    if ((flags & ~3) !== 0 || value < 0n || interval < 0n) throw new SimError(call, 'EINVAL');
    desc.timer = { ...desc.timer, settime: flags, value: String(value), interval: String(interval), ticks: 0 };
  }

  /** ioctl(fd, TFD_IOC_SET_TICKS, &ticks): EINVAL for 0. */
  timerfdSetTicks(fd: number, ticks: bigint): void {
    const call = (): string => `ioctl(${fd}, TFD_IOC_SET_TICKS, ${ticks})`;
    const desc = this.lookup(fd, call);
    if (desc.timer === null) throw new SimError(call, 'EINVAL');
    if (ticks === 0n) throw new SimError(call, 'EINVAL');
    desc.timer = { ...desc.timer, ticks: Number(ticks) };
  }

  /** signalfd4(-1, mask, 8, flags): a new signalfd; SIGKILL and SIGSTOP never in its mask. */
  signalfd4(mask: bigint, flags: number): number {
    const call = (): string => `signalfd4(-1, ${mask.toString(16)}, 8, ${flags})`;
    if ((flags & ~(O_NONBLOCK | O_CLOEXEC)) !== 0) throw new SimError(call, 'EINVAL');
    const fd = this.allocate(0, call);
    const desc = this.describe('signalfd', O_RDWR | (flags & O_NONBLOCK), null, null);
    desc.mask = mask & ~((1n << 8n) | (1n << 18n));
    this.install(fd, desc, (flags & O_CLOEXEC) !== 0);
    return fd;
  }

  /** memfd_create(name, flags): O_RDWR|O_LARGEFILE; seals F_SEAL_SEAL without MFD_ALLOW_SEALING, F_SEAL_EXEC and mode 0666 with MFD_NOEXEC_SEAL. */
  memfdCreate(name: string, flags: number): number {
    const call = (): string => `memfd_create(${JSON.stringify(name)}, ${flags})`;
    if ((flags & ~0x1f) !== 0 || (flags & 0x18) === 0x18 || Buffer.byteLength(name) > 249) throw new SimError(call, 'EINVAL');
    const fd = this.allocate(0, call);
    const desc = this.describe('memfd', O_RDWR | O_LARGEFILE, null, null);
    const noexec = (flags & 8) !== 0;
    desc.memfd = { name, size: 0, mode: noexec ? 0o666 : 0o777, seals: noexec ? 0x20 : (flags & 2) !== 0 ? 0 : 1, writes: [] };
    this.install(fd, desc, (flags & 1) !== 0);
    return fd;
  }

  /** open(dir, O_TMPFILE | flags, mode): an unnamed file in dir's file system, mode 0 until fchmod (the umask is the target's). */
  tmpfile(dir: string, flags: number, cloexec: boolean): number {
    const call = (): string => `open(${JSON.stringify(dir)}, O_TMPFILE|${flagNames(flags)})`;
    if ((flags & O_ACCMODE) === O_RDONLY) throw new SimError(call, 'EINVAL');
    const fd = this.allocate(0, call);
    // The description keeps O_TMPFILE (__O_TMPFILE|O_DIRECTORY) in its flags.
    const desc = this.describe('deleted', (flags & (O_ACCMODE | O_DSYNC | O_SYNC)) | O_LARGEFILE | 0o20200000, null, null);
    desc.memfd = { name: dir, size: 0, mode: 0, seals: 0, writes: [] };
    this.install(fd, desc, cloexec);
    return fd;
  }

  /**
   * Such a file given a temporary name, its fd closed, the name opened with `flags` (at the lowest
   * free number) and unlinked: a new description of the same file.
   */
  reopenAfterClose(fd: number, flags: number, cloexec: boolean): number {
    const call = (): string => `open(<temporary name of fd ${fd}>, ${flagNames(flags)})`;
    const from = this.lookup(fd, call);
    if (from.memfd === null) throw new SimError(call, 'REFUSED', 'the simulator names only files it made');
    this.close(fd);
    const at = this.allocate(0, call);
    const desc = this.describe(from.kind, (flags & (O_ACCMODE | O_DSYNC | O_SYNC)) | O_LARGEFILE, null, null);
    desc.memfd = from.memfd;
    this.install(at, desc, cloexec);
    return at;
  }

  /** inotify_init1(flags): O_RDONLY plus O_NONBLOCK as asked. */
  inotifyInit1(flags: number): number {
    const call = (): string => `inotify_init1(${flags})`;
    if ((flags & ~(O_NONBLOCK | O_CLOEXEC)) !== 0) throw new SimError(call, 'EINVAL');
    const fd = this.allocate(0, call);
    this.install(fd, this.describe('inotify', O_RDONLY | (flags & O_NONBLOCK), null, null), (flags & O_CLOEXEC) !== 0);
    return fd;
  }

  /** inotify_add_watch: the path's watch if it has one (its mask replaced), else a new one at the next wd (cyclic from 1). */
  inotifyAddWatch(fd: number, path: string, mask: number): number {
    const call = (): string => `inotify_add_watch(${fd}, ${JSON.stringify(path)}, ${mask})`;
    const d = this.lookup(fd, call);
    if (d.kind !== 'inotify') throw new SimError(call, 'EINVAL');
    const have = d.watches.find((w) => w.path === path);
    if (have) {
      have.mask = mask >>> 0;
      return have.wd;
    }
    const wd = d.nextWd++;
    if (d.watches === NO_WATCHES) d.watches = [];
    d.watches.push({ wd, path, mask: mask >>> 0 });
    d.watches.sort((a, b) => a.wd - b.wd);
    return wd;
  }

  /** inotify_rm_watch: the watch goes, an IN_IGNORED is queued. */
  inotifyRmWatch(fd: number, wd: number): void {
    const call = (): string => `inotify_rm_watch(${fd}, ${wd})`;
    const d = this.lookup(fd, call);
    if (d.kind !== 'inotify' || !d.watches.some((w) => w.wd === wd)) throw new SimError(call, 'EINVAL');
    d.watches = d.watches.filter((w) => w.wd !== wd);
    d.queued++;
  }

  /** read the events queued (those removals queued), all of them. */
  inotifyDrain(fd: number): void {
    const d = this.lookup(fd, () => `read(${fd})`);
    d.queued = 0;
  }

  private memfdAt(fd: number, call: () => string): SimMemfd {
    const m = this.lookup(fd, call).memfd;
    if (m === null) throw new SimError(call, 'REFUSED', 'not a memfd (the simulator knows no other file to change)');
    return m;
  }

  /** fchmod(fd, mode): F_SEAL_EXEC forbids changing an exec bit. */
  fchmod(fd: number, mode: number): void {
    const call = (): string => `fchmod(${fd}, 0${mode.toString(8)})`;
    const m = this.memfdAt(fd, call);
    if ((m.seals & 0x20) !== 0 && ((m.mode ^ mode) & 0o111) !== 0) throw new SimError(call, 'EPERM');
    m.mode = mode & 0o7777;
  }

  /** ftruncate(fd, size): F_SEAL_SHRINK and F_SEAL_GROW forbid what they name. */
  ftruncate(fd: number, size: number): void {
    const call = (): string => `ftruncate(${fd}, ${size})`;
    const m = this.memfdAt(fd, call);
    if ((size < m.size && (m.seals & 2) !== 0) || (size > m.size && (m.seals & 4) !== 0)) throw new SimError(call, 'EPERM');
    m.size = size;
  }

  /** pwrite64(fd, bytes, offset): F_SEAL_WRITE and F_SEAL_FUTURE_WRITE forbid it, F_SEAL_GROW past the end. */
  pwrite(fd: number, bytes: Buffer, offset: number): void {
    const call = (): string => `pwrite64(${fd}, <${bytes.length} bytes>, ${offset})`;
    const m = this.memfdAt(fd, call);
    if ((m.seals & 0x18) !== 0) throw new SimError(call, 'EPERM');
    if (offset + bytes.length > m.size && (m.seals & 4) !== 0) throw new SimError(call, 'EPERM');
    m.writes.push({ offset, bytes });
    m.size = Math.max(m.size, offset + bytes.length);
  }

  /** fcntl(fd, F_ADD_SEALS, seals): EPERM once F_SEAL_SEAL is set. */
  addSeals(fd: number, seals: number): void {
    const call = (): string => `fcntl(${fd}, F_ADD_SEALS, ${seals})`;
    const m = this.memfdAt(fd, call);
    if ((seals & ~0x3f) !== 0) throw new SimError(call, 'EINVAL');
    if ((m.seals & 1) !== 0) throw new SimError(call, 'EPERM');
    m.seals |= seals;
  }

  /** dup2(from, to) */
  dup2(from: number, to: number): number {
    if (from === to) {
      if (!this.table.has(from)) throw new SimError(dupCall(from, to, false, true), 'EBADF');
      return to;
    }
    return this.dup3Common(from, to, false, true);
  }

  /** dup3(from, to, cloexec ? O_CLOEXEC : 0) */
  dup3(from: number, to: number, cloexec: boolean): number {
    if (from === to) throw new SimError(dupCall(from, to, cloexec, false), 'EINVAL');
    return this.dup3Common(from, to, cloexec, false);
  }

  /** dup2 (`two`) or dup3 from `from` to `to` once they differ. */
  private dup3Common(from: number, to: number, cloexec: boolean, two: boolean): number {
    if (!isFdArg(to) || to >= this.limit.soft) throw new SimError(dupCall(from, to, cloexec, two), 'EBADF');
    const desc = this.table.desc(from);
    if (!desc) throw new SimError(dupCall(from, to, cloexec, two), 'EBADF');
    desc.refs++; // held across the close of `to`, which may be its last other fd
    if (this.table.has(to)) this.remove(to);
    desc.refs--;
    this.install(to, desc, cloexec);
    return to;
  }

  /** fcntl(from, cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, min) */
  dupfd(from: number, min: number, cloexec: boolean): number {
    const call = (): string => `fcntl(${from}, ${cloexec ? 'F_DUPFD_CLOEXEC' : 'F_DUPFD'}, ${min})`;
    const desc = this.table.desc(from);
    if (!desc) throw new SimError(call, 'EBADF');
    if (!isFdArg(min) || min >= this.limit.soft) throw new SimError(call, 'EINVAL');
    const fd = this.allocate(min, call);
    this.install(fd, desc, cloexec);
    return fd;
  }

  close(fd: number): void {
    if (!this.table.has(fd)) throw new SimError(`close(${fd})`, 'EBADF');
    this.remove(fd);
  }

  /** fcntl(fd, F_SETFL, flags): only the SETFL_MASK bits change. */
  setfl(fd: number, flags: number): void {
    const call = (): string => `fcntl(${fd}, F_SETFL, ${flagNames(flags)})`;
    const desc = this.lookup(fd, call);
    if (desc.kind === 'foreign') throw new SimError(call, 'REFUSED', `fd ${fd} is a file of the target the simulator knows nothing of`);
    // fcntl on an O_PATH fd knows only F_DUPFD*, F_GETFD, F_SETFD and F_GETFL.
    if (desc.kind === 'opath') throw new SimError(call, 'EBADF');
    // An eventfd (anon inode) and a directory cannot do direct I/O.
    if ((flags & O_DIRECT) !== 0 && (desc.kind === 'eventfd' || desc.kind === 'epoll' || desc.kind === 'timerfd' || desc.kind === 'signalfd' || desc.kind === 'dir' || desc.kind === 'unix' || desc.kind === 'inet')) throw new SimError(call, 'EINVAL');
    // setfl lets O_DIRECT through for FIFOs and pipes (packet mode) and for files
    // whose file system does direct I/O; character devices refuse it.
    if ((flags & O_DIRECT) !== 0 && desc.kind === 'chr') throw new SimError(call, 'EINVAL');
    // O_ASYNC is not in the kernel's SETFL_MASK: the file's ->fasync sets it when it
    // joins the fasync list and clears it only when it leaves that list. Pipes have
    // ->fasync; the files and devices modelled do not, so for them F_SETFL leaves
    // O_ASYNC as open() left it, and a description opened with O_ASYNC (never on
    // the list) keeps it for good.
    if (((flags ^ desc.flags) & O_ASYNC) !== 0 && desc.pipe) {
      if ((flags & O_ASYNC) !== 0) {
        desc.fasync = true;
        desc.flags |= O_ASYNC;
      } else if (desc.fasync) {
        desc.fasync = false;
        desc.flags &= ~O_ASYNC;
      }
    }
    desc.flags = ((flags & SETFL_BITS) | (desc.flags & ~SETFL_BITS)) >>> 0;
  }

  setfd(fd: number, cloexec: boolean): void {
    if (!this.table.has(fd)) throw new SimError(`fcntl(${fd}, F_SETFD, ${cloexec ? 'FD_CLOEXEC' : '0'})`, 'EBADF');
    this.table.setCloexec(fd, cloexec);
  }

  /** fcntl(fd, F_SETPIPE_SZ, size): returns the size the pipe now has. */
  setPipeSize(fd: number, size: number): number {
    const call = (): string => `fcntl(${fd}, F_SETPIPE_SZ, ${size})`;
    const desc = this.lookup(fd, call);
    if (!desc.pipe) throw new SimError(call, desc.kind === 'foreign' ? 'REFUSED' : 'EBADF');
    const pipe = desc.pipe;
    if (!Number.isInteger(size)) throw new SimError(call, 'EINVAL');
    // pipe_fcntl takes the size as an unsigned int; round_pipe_size makes it at least a
    // page, a power of two, and refuses anything above 2^31.
    const arg = size >>> 0;
    if (arg > 2 ** 31) throw new SimError(call, 'EINVAL');
    const rounded = arg <= PAGE_SIZE ? PAGE_SIZE : 2 ** Math.ceil(Math.log2(arg));
    const slots = rounded / PAGE_SIZE;
    if (slots > pipe.slots && rounded > this.world.pipeMaxSize) throw new SimError(call, 'EPERM', `above pipe-max-size ${this.world.pipeMaxSize}`);
    if (slots < pipe.buffers.length) throw new SimError(call, 'EBUSY', `${pipe.buffers.length} buffers queued`);
    pipe.slots = slots;
    return rounded;
  }

  /** lseek(fd, offset, SEEK_SET); a directory takes its file system's cookie, up to 2^63 - 1. */
  lseek(fd: number, offset: number | bigint): bigint {
    const call = (): string => `lseek(${fd}, ${offset}, SEEK_SET)`;
    const desc = this.lookup(fd, call);
    if (desc.kind === 'foreign') throw new SimError(call, 'REFUSED', `fd ${fd} is a file of the target the simulator knows nothing of`);
    if (desc.kind === 'opath') throw new SimError(call, 'EBADF');
    if (desc.pipe) throw new SimError(call, 'ESPIPE');
    if (desc.kind === 'eventfd') return 0n; // noop_llseek: the position stays 0
    if (typeof offset === 'number' && !Number.isSafeInteger(offset)) throw new SimError(call, 'EINVAL');
    const at = BigInt(offset);
    if (at < 0n || at >= 2n ** 63n) throw new SimError(call, 'EINVAL');
    desc.offset = at;
    return at;
  }

  /** write(fd, bytes) into a pipe: the whole write or an error, never a short write. */
  write(fd: number, bytes: Uint8Array): number {
    const call = (): string => `write(${fd}, <${bytes.length} bytes>)`;
    const desc = this.lookup(fd, call);
    if (desc.kind === 'foreign') throw new SimError(call, 'REFUSED', `fd ${fd} is a file of the target the simulator knows nothing of`);
    if (!desc.writable) throw new SimError(call, 'EBADF');
    if (desc.kind === 'eventfd') {
      if (bytes.length < 8) throw new SimError(call, 'EINVAL');
      return this.eventfdWrite(fd, Buffer.from(bytes.buffer, bytes.byteOffset, 8).readBigUInt64LE(0));
    }
    const pipe = desc.pipe;
    if (!pipe) throw new SimError(call, 'REFUSED', 'a restore writes only into pipes');
    if (bytes.length === 0) return 0; // pipe_write returns before it looks for readers
    if (pipe.readers === 0) throw new SimError(call, 'EPIPE');
    const packet = (desc.flags & O_DIRECT) !== 0;
    // pipe_write: the tail (length mod PAGE_SIZE) first merges into the last buffer if
    // that one is not a packet and the tail fits; the rest goes page by page into new
    // buffers, each a packet when the writer has O_DIRECT.
    let rest = bytes.length;
    let mergeTail = false;
    const tail = rest % PAGE_SIZE;
    const last = pipe.buffers[pipe.buffers.length - 1];
    if (tail !== 0 && last && !last.packet && last.len + tail <= PAGE_SIZE) {
      mergeTail = true;
      rest -= tail;
    }
    const needed = Math.ceil(rest / PAGE_SIZE);
    if (pipe.buffers.length + needed > pipe.slots) {
      throw new SimError(call, 'WOULDBLOCK', `pipe full: ${pipe.buffers.length} of ${pipe.slots} buffers used, ${needed} more needed`);
    }
    let at = 0;
    if (mergeTail) {
      last.chunks.push(bytes.subarray(0, tail));
      last.len += tail;
      at = tail;
    }
    while (at < bytes.length) {
      const n = Math.min(PAGE_SIZE, bytes.length - at);
      pipe.buffers.push({ len: n, packet, chunks: [bytes.subarray(at, at + n)] });
      at += n;
    }
    return bytes.length;
  }

  /** prlimit(0, RLIMIT_NOFILE, {soft, hard}) without CAP_SYS_RESOURCE; returns the old limit. */
  prlimit(soft: number, hard: number): Rlimit {
    const call = (): string => `prlimit(0, RLIMIT_NOFILE, {${soft}, ${hard}})`;
    if (!Number.isSafeInteger(soft) || !Number.isSafeInteger(hard) || soft < 0 || hard < 0 || soft > hard) {
      throw new SimError(call, 'EINVAL');
    }
    if (hard > this.nrOpen) throw new SimError(call, 'EPERM', `above fs.nr_open ${this.nrOpen}`);
    if (hard > this.limit.hard) throw new SimError(call, 'EPERM', `raises the hard limit ${this.limit.hard}`);
    const old = this.rlimit;
    this.limit = { soft, hard };
    return old;
  }

  // ---- internals ----

  private lookup(fd: number, call: () => string): SimDesc {
    const desc = this.table.desc(fd);
    if (!desc) throw new SimError(call, 'EBADF');
    return desc;
  }

  /** alloc_fd: the lowest free number >= min, EMFILE if it is not below the soft limit. */
  private allocate(min: number, call: () => string): number {
    const fd = this.lowestFree(min);
    if (fd < 0) throw new SimError(call, 'EMFILE');
    return fd;
  }

  /** allocate without a call to name: -1 for EMFILE (the caller names the call it fails). */
  private lowestFree(min: number): number {
    const fd = this.used.lowestFree(min);
    return fd >= this.limit.soft ? -1 : fd;
  }

  private describe(kind: SimKind, flags: number, pipe: SimPipe | null, node: SimNode | null): SimDesc {
    const desc = new SimDesc(this.world.serial(), kind, flags >>> 0, pipe, node);
    if (pipe) {
      pipe.files++;
      if (desc.readable) pipe.readers++;
      if (desc.writable) pipe.writers++;
    }
    return desc;
  }

  private install(fd: number, desc: SimDesc, cloexec: boolean): void {
    desc.refs++;
    this.table.set(fd, desc, cloexec);
    this.used.set(fd, true);
  }

  private remove(fd: number): void {
    const desc = this.table.desc(fd)!;
    this.table.delete(fd);
    this.used.set(fd, false);
    if (--desc.refs > 0) return;
    // A file's last close takes its items off every epoll; an epoll's, its place among its targets' watchers.
    for (const ep of desc.watchers ?? []) ep.items = ep.items.filter((i) => i.target !== desc);
    for (const i of desc.items) (i.target as SimDesc).watchers?.delete(desc);
    const pipe = desc.pipe;
    if (!pipe) return;
    if (desc.readable) pipe.readers--;
    if (desc.writable) pipe.writers--;
    if (--pipe.files > 0) return;
    // The last description of a pipe frees it and any bytes still queued; a FIFO's
    // next open makes a fresh, empty pipe.
    pipe.buffers = [];
    if (pipe.fifo) pipe.fifo.pipe = null;
  }
}

// How the calls made most often (a plan of 100,000 fds makes 100,000 dups and 25,000 pipes) are
// named in a failure: built only when one fails, no closure made for each call.
function pipe2Call(flags: number): string {
  return `pipe2(${flags === 0 ? '0' : flagNames(flags).replace(/^O_RDONLY\|/, '')})`;
}

function dupCall(from: number, to: number, cloexec: boolean, two: boolean): string {
  return two ? `dup2(${from}, ${to})` : `dup3(${from}, ${to}, ${cloexec ? 'O_CLOEXEC' : '0'})`;
}

function isFdArg(n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0x7fffffff;
}
