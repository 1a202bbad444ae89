// What one kind of open file description is to cr, in one place: how dump recognises it in /proc
// and what it gathers, its image form's validation, how a restore creates it (its creation class,
// the planner never sees kinds), how replay and the simulator make and judge it, and how show and
// diff print it. Each kind is one module implementing KindModule; registry.ts lists them.
// docs/kinds.md is the recipe for adding one.
// Kinds sit just above the model and /proc readers: the image, the planner's input, the simulator
// and replay all ask them. What they need of the simulator and of replay is said here, as the
// few calls and fields they use, so nothing here reaches up.
import type { Obj } from '../model/json.js';
import type { Desc, DescKind, PathType } from '../model/fdtable.js';
import type { ProcFd } from '../proc/fds.js';

export type DescOf<K extends DescKind> = Extract<Desc, { kind: K }>;

/** What an open by path must have opened: its type, and for a device, which one (st_rdev). */
export interface Opens {
  type: PathType;
  rdev?: number;
}

/** The nodes the simulated file system has (src/sim/kernel.ts SimNode). */
export type NodeType = 'file' | 'chr' | 'fifo' | 'dir' | 'blk' | 'symlink';

/** An epoll item in the simulation: the watched description is the simulator's own object. */
export interface SimItem {
  fd: number;
  target: object;
  events: number;
  data: bigint;
}

/** A simulated description's state a kind judges (src/sim/kernel.ts SimDesc). */
export interface SimState {
  offset: bigint;
  count: bigint;
  semaphore: boolean;
  /** an epoll's interest list */
  items: SimItem[];
  /** a timerfd's settings */
  timer: SimTimer | null;
  /** a signalfd's mask */
  mask: bigint;
  /** a pty master's or slave's pty: the master's simulated description; null for other kinds */
  pty: object | null;
  /** a memfd's file */
  memfd: SimMemfd | null;
  /** an inotify's watches, ascending by wd, and the events it holds */
  watches: Array<{ wd: number; path: string; mask: number }>;
  queued: number;
  /** a pidfd's process: the pid it was opened for */
  target: number;
}

/** A memfd or a file cr made unnamed (O_TMPFILE) in the simulation: what its calls left (the writes as made, compared merged). */
export interface SimMemfd {
  /** a memfd's name; the directory of an O_TMPFILE file */
  name: string;
  size: number;
  mode: number;
  seals: number;
  writes: Array<{ offset: number; bytes: Buffer }>;
}

/** A timerfd in the simulation: what timerfd_settime and TFD_IOC_SET_TICKS left. */
export interface SimTimer {
  clock: number;
  settime: number;
  value: string;
  interval: string;
  ticks: number;
}

/** The simulated calls a kind that makes its own descriptions uses (src/sim/kernel.ts SimProcess). */
export interface SimCalls {
  eventfd2(initval: number, flags: number): number;
  eventfdWrite(fd: number, value: bigint): number;
  epollCreate1(flags: number): number;
  epollCtlAdd(epfd: number, fd: number, events: number, data: bigint): void;
  timerfdCreate(clock: number, flags: number): number;
  timerfdSettime(fd: number, flags: number, value: bigint, interval: bigint): void;
  timerfdSetTicks(fd: number, ticks: bigint): void;
  signalfd4(mask: bigint, flags: number): number;
  /** open("/dev/ptmx", flags): a new pty's master */
  ptmxOpen(flags: number): number;
  /** ioctl(fd, TIOCGPTPEER, flags): a new description of the pty's slave */
  ptyPeer(fd: number, flags: number): number;
  dupfd(fd: number, min: number, cloexec: boolean): number;
  close(fd: number): void;
  /** where the object a `pty` op prepared for description `desc` is held */
  held(desc: number): number;
  /** socketpair(AF_UNIX, type | flags): two alike ends */
  socketpair(flags: number): [number, number];
  /** socket(): one socket of a kind's */
  socket(kind: 'unix' | 'inet', flags: number): number;
  memfdCreate(name: string, flags: number): number;
  fchmod(fd: number, mode: number): void;
  ftruncate(fd: number, size: number): void;
  pwrite(fd: number, bytes: Buffer, offset: number): void;
  addSeals(fd: number, seals: number): void;
  tmpfile(dir: string, flags: number, cloexec: boolean): number;
  reopenAfterClose(fd: number, flags: number, cloexec: boolean): number;
  inotifyInit1(flags: number): number;
  inotifyAddWatch(fd: number, path: string, mask: number): number;
  inotifyRmWatch(fd: number, wd: number): void;
  inotifyDrain(fd: number): void;
  /** pidfd_open(pid, flags): a pidfd of pid, close-on-exec */
  pidfdOpen(pid: number, flags: number): number;
  /** fcntl(fd, F_SETFD, cloexec) */
  setfd(fd: number, cloexec: boolean): void;
}

/** The calls such a kind queues in the target, by name (replay turns names into numbers). */
export type CallName =
  | 'eventfd2'
  | 'write'
  | 'epoll_create1'
  | 'epoll_ctl'
  | 'timerfd_create'
  | 'timerfd_settime'
  | 'ioctl'
  | 'signalfd4'
  | 'openat'
  | 'fcntl'
  | 'close'
  | 'socket'
  | 'socketpair'
  | 'setsockopt'
  | 'sendto'
  | 'shutdown'
  | 'bind'
  | 'listen'
  | 'getsockname'
  | 'unlink'
  | 'connect'
  | 'memfd_create'
  | 'fchmod'
  | 'ftruncate'
  | 'pwrite64'
  | 'linkat'
  | 'unlinkat'
  | 'inotify_init1'
  | 'inotify_add_watch'
  | 'inotify_rm_watch'
  | 'read'
  | 'pidfd_open';

/** An fd cr cannot dump: a short name for what it is, and why. */
export interface Unsupported {
  fd: number;
  /** a short name: socket, epoll, deleted file, ... */
  kind: string;
  reason: string;
}

/** What dump recognised an fd as: enough to build its description once its fds are grouped. */
export interface Recognised {
  kind: DescKind;
  /** kinds on a pipe: the pipe's key (its inode), so ends of one pipe share one Pipe */
  pipeKey?: string;
  /**
   * The description. `pipe`: for kinds on a pipe, its id and the path the pipe's first
   * description was opened by (a FIFO with several links opens by one of them).
   */
  describe(id: number, pipe: { id: number; path?: string } | undefined, pair?: number): Desc;
  /**
   * kinds made in pairs (a unix socket's end): the pair's key, the same at both ends, so the two
   * share one pair id; `peer` is the other end's inode (0 when it was closed), which must be in
   * the image too, `what` names this end in a refusal.
   */
  pair?: { key: string; peer: number; what: string };
  /**
   * Kinds whose description names others (an epoll's watched descriptions): fill them in once
   * every fd of the process has its description's id (`fds`); an Unsupported when one cannot be.
   */
  resolve?(d: Desc, ctx: ResolveContext): Unsupported | null;
}

/** What a kind that reads more than /proc (another description, the contents of a file) is given at dump. */
export interface ResolveContext {
  pid: number;
  /** every fd of the process with its description's id */
  fds: ReadonlyArray<{ proc: ProcFd; desc: number }>;
  /** every fd of every process of the dump (a tree's members) with its description's id */
  dumped: ReadonlyArray<{ proc: ProcFd; desc: number }>;
  /** bytes of contents a dump may carry per file (--max-deleted-size) */
  maxContents: number;
}

/** A reference from a description to another that must exist first (an epoll item to its target), kept under fd number `fd`. */
export interface Link {
  target: number;
  fd: number;
}

/** How the planner creates a description: its class (scripts/abi.mjs CLASS_) and its flags. */
export interface Creation {
  cls: number;
  /** a position to lseek to after creation */
  seek: boolean;
  /** the flags the creating call takes (open's flags without O_CLOEXEC) */
  callFlags: number;
  /** F_GETFL right after the creating call; F_SETFL fixes what differs from the image's flags */
  after: number;
}

/** The calls replay queues for a kind that makes its own descriptions (CLASS_SINGLE). */
export interface CallQueue {
  /** queue a syscall with the result it must return */
  call(name: CallName, args: bigint[], want: bigint, call?: string): void;
  /** stage bytes in the target; their address there */
  put(data: Buffer): bigint;
  /** the fd at which a `pty` op (prepare) holds the object made for description `desc` */
  held(desc: number): number;
  /** check, in the batch, the 8 bytes at `addr` an earlier call wrote (socketpair's fds); `what` says what they were if not */
  load(addr: bigint, want: bigint, what: (got: bigint) => string): void;
  /** the pid of the process the calls run in (a pidfd is made of it first: src/kinds/pidfd.ts) */
  self: number;
}

export interface KindModule<K extends DescKind> {
  kind: K;
  /** dump: this kind's reading of the fd, an Unsupported with the reason, or null when it is not this kind */
  recognise(e: ProcFd): Recognised | Unsupported | null;
  /** image: flag bits beyond the common status flags its F_GETFL may show (O_DIRECTORY, O_PATH) */
  flagBits?: number;
  /** image: the fields a description has besides id, kind and flags */
  fields: readonly string[];
  /**
   * image: the fields that hold bytes, base64 text in the model and in JSON, msgpack bin in an
   * image file: `name` for a field, `name[].sub` for a field of each entry of a list, `name.sub`
   * for a field of an object field
   */
  binary?: readonly string[];
  /** image: the description from checked id and flags and the object's other fields (one-line badInput) */
  parse(obj: Obj, where: string, id: number, flags: number): DescOf<K>;
  /** plan: how it is created */
  creation(d: DescOf<K>): Creation;
  /** replay, kinds opened by path: what the open must have opened (judged before any use) */
  opens?(d: DescOf<K>): Opens;
  /** replay, CLASS_SINGLE: queue the calls that make it; the first returns `fd` */
  create?(d: DescOf<K>, cloexec: boolean, fd: number, q: CallQueue): void;
  /**
   * replay, kinds whose object must exist before the planner's creations (a pty, which a master
   * and its slaves are each made from): queue the calls that make it at `fd`, a number above every
   * other the plan uses, through `lowest`, the lowest free number then (a `pty` op, src/plan/ptys.ts)
   */
  prepare?(d: DescOf<K>, lowest: number, fd: number, q: CallQueue): void;
  /** replay: after every description exists, what is left to set on the object at `fd`, and its close */
  finish?(d: DescOf<K>, fd: number, q: CallQueue): void;
  /** plan text of prepare (done false) or finish (done true) */
  prepareText?(d: DescOf<K>, lowest: number, fd: number, done: boolean): string;
  /** simulator: prepare (done false) or finish (done true) */
  simPrepare?(proc: SimCalls, d: DescOf<K>, lowest: number, fd: number, done: boolean): void;
  /**
   * replay, CLASS_PAIR_END kinds other than pipes (a socket pair): queue the calls that make the
   * pair at `fds`, its ends the descriptions `ends` (undefined: a temporary the plan closes), with
   * what is queued in each
   */
  createPair?(ends: [DescOf<K> | undefined, DescOf<K> | undefined], cloexec: boolean, fds: [number, number], q: CallQueue): void;
  /** plan text of createPair's calls */
  pairText?(ends: [DescOf<K> | undefined, DescOf<K> | undefined], cloexec: boolean): string;
  /** simulator, createPair: make the pair in the simulated process; its two fds */
  simCreatePair?(proc: SimCalls, ends: [DescOf<K> | undefined, DescOf<K> | undefined], cloexec: boolean): [number, number];
  /** plan text of the creating call, CLASS_SINGLE */
  createText?(d: DescOf<K>, cloexec: boolean): string;
  /** simulator, kinds opened by path: the node the world needs at the path */
  node?(d: DescOf<K>): { path: string; type: NodeType };
  /** simulator, CLASS_SINGLE: make it in the simulated process; the fd */
  simCreate?(proc: SimCalls, d: DescOf<K>, cloexec: boolean): number;
  /** links: what it refers to, made after every description exists (src/plan/links.ts) */
  links?(d: DescOf<K>): Link[];
  /** replay: queue the call that makes link `index`, the description at `fd`, its target at the link's fd */
  link?(d: DescOf<K>, index: number, fd: number, q: CallQueue): void;
  /** plan text of that call */
  linkText?(d: DescOf<K>, index: number, fd: number): string;
  /** simulator: make link `index` */
  simLink?(proc: SimCalls, d: DescOf<K>, index: number, fd: number): void;
  /**
   * simulator: what differs between the simulated description and the image's (kind and flags
   * are compared already), or null; `idOf` names a simulated description by its image id
   */
  simCheck(d: DescOf<K>, sim: SimState, idOf: (sim: object) => number | undefined): string | null;
  /** show: the path, position or state column */
  detail(d: DescOf<K>): string;
  /** diff: one clause per field of this kind that differs (A first), for descriptions of this kind on both sides */
  diff(a: DescOf<K>, b: DescOf<K>): string[];
}
