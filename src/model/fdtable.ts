// The fd-table model shared by dump, image, planner, simulator and replay.
// docs/fd-table.md is the reference for every field; keep the two in step.
import { badInput } from '../errors.js';

/** What an open file description is: each kind is one module under src/kinds/ (docs/kinds.md). */
export type DescKind = Desc['kind'];

/** One fd number in the table. */
export interface Fd {
  fd: number;
  /** id of the open file description (Desc.id) this fd refers to */
  desc: number;
  /** FD_CLOEXEC: per fd, not per description */
  cloexec: boolean;
}

/** What every open file description (struct file) has: shared by all fds dup'd from it. */
interface DescBase {
  id: number;
  /**
   * F_GETFL exactly as the kernel reports it: access mode plus status flags,
   * O_LARGEFILE included. For a pipe, O_LARGEFILE tells the description that
   * pipe2() made (never has it) from one reopened through /proc/PID/fd (always has it).
   */
  flags: number;
}

/** An end of an anonymous pipe (src/kinds/pipe.ts). */
export interface PipeDesc extends DescBase {
  kind: 'pipe';
  /** Pipe.id */
  pipe: number;
}

/** An open named FIFO (src/kinds/fifo.ts). */
export interface FifoDesc extends DescBase {
  kind: 'fifo';
  pipe: number;
  /** absolute path */
  path: string;
}

/** A regular file opened by path (src/kinds/file.ts). */
export interface FileDesc extends DescBase {
  kind: 'file';
  path: string;
  /** file position */
  offset: number;
}

/** A character device opened by path (src/kinds/chr.ts). */
export interface ChrDesc extends DescBase {
  kind: 'chr';
  path: string;
  /** position, when the device keeps one */
  offset?: number;
  /**
   * The device number (st_rdev, as the kernel encodes dev_t for userspace). Restore
   * refuses a path that then opens another device; absent (tables written before cr recorded
   * it, hand-written ones), any character device is accepted.
   */
  rdev?: number;
}

/** An eventfd (src/kinds/eventfd.ts): its counter and mode; made again with eventfd2. */
export interface EventfdDesc extends DescBase {
  kind: 'eventfd';
  /** the counter (fdinfo eventfd-count), at most 2^53 - 1 here */
  count: number;
  /** EFD_SEMAPHORE (fdinfo eventfd-semaphore) */
  semaphore: boolean;
}

/** A directory opened with O_DIRECTORY for reading (src/kinds/dir.ts). */
export interface DirDesc extends DescBase {
  kind: 'dir';
  path: string;
  /**
   * getdents position, decimal: a file system's cookie, not a byte count (ext4 gives a 63-bit
   * hash), so it may be above 2^53. Restored with lseek(SEEK_SET).
   */
  offset: string;
}

/** What an O_PATH fd names: it opens no file, so any type but a socket can be one. */
export type PathType = 'regular file' | 'directory' | 'character device' | 'block device' | 'FIFO' | 'symlink';

/** An O_PATH fd (src/kinds/opath.ts): a place in the file system, not an open file. */
export interface OpathDesc extends DescBase {
  kind: 'opath';
  path: string;
  /** the type of what it names (fstat), judged again after the restore's open */
  type: PathType;
}

/**
 * One entry of an epoll's interest list (fdinfo `tfd: events: data:`). The kernel keys it by the
 * watched file and the fd number it was added with: `target` is the description (it may sit at
 * another number now, or be dup'ed), `fd` the number, kept so that the program's later
 * EPOLL_CTL_MOD/DEL on that number find it.
 */
export interface EpollItem {
  /** the fd number it was added with (the key's number, not necessarily an fd of the process now) */
  fd: number;
  /** Desc.id of the watched description */
  target: number;
  /** the event mask as the kernel keeps it (EPOLLERR|EPOLLHUP added by epoll_ctl included) */
  events: number;
  /** the 64-bit user data, 16 hex digits */
  data: string;
}

/** An epoll instance (src/kinds/epoll.ts): made with epoll_create1, its items re-added once every target exists. */
export interface EpollDesc extends DescBase {
  kind: 'epoll';
  items: EpollItem[];
}

/**
 * A timerfd (src/kinds/timerfd.ts). `value`: with TFD_TIMER_ABSTIME in `settime`, the absolute
 * expiry on its clock; otherwise the time left at dump (the time a restore resumes it with); "0"
 * when disarmed. Times are ns as decimal text.
 */
export interface TimerfdDesc extends DescBase {
  kind: 'timerfd';
  /** CLOCK_REALTIME 0, CLOCK_MONOTONIC 1, CLOCK_BOOTTIME 7, the _ALARM ones 8 and 9 */
  clock: number;
  /** TFD_TIMER_ABSTIME 1, TFD_TIMER_CANCEL_ON_SET 2 */
  settime: number;
  value: string;
  interval: string;
  /** expirations counted but not read */
  ticks: number;
}

/** A signalfd (src/kinds/signalfd.ts): the signals it reads, 64 bits as 16 lowercase hex digits. */
export interface SignalfdDesc extends DescBase {
  kind: 'signalfd';
  mask: string;
}

/** A data extent of a file carried in the image: its bytes at an offset (base64 text in JSON, bin in an image file). */
export interface Extent {
  offset: number;
  data: Buffer;
}

/** A memfd (src/kinds/memfd.ts): an anonymous file, its contents carried in the image. */
export interface MemfdDesc extends DescBase {
  kind: 'memfd';
  /** memfd_create's name (the link shows /memfd:NAME) */
  name: string;
  size: number;
  /** file position */
  offset: number;
  /** permission bits (0777, or 0666 made with MFD_NOEXEC_SEAL) */
  mode: number;
  /** F_GET_SEALS */
  seals: number;
  /** the data, sparse: holes are not carried */
  extents: Extent[];
}

/** A regular file open after its last name was removed (src/kinds/deleted.ts): its contents carried in the image. */
export interface DeletedDesc extends DescBase {
  kind: 'deleted';
  /** the path it had (the link without " (deleted)"): restored in that path's directory, unnamed */
  path: string;
  size: number;
  offset: number;
  /** permission bits */
  mode: number;
  extents: Extent[];
}

/** An inotify watch: the number the program holds, the path of its inode, its mask. */
export interface InotifyWatch {
  wd: number;
  path: string;
  mask: number;
}

/** An inotify instance (src/kinds/inotify.ts): its watches, ascending by wd. */
export interface InotifyDesc extends DescBase {
  kind: 'inotify';
  watches: InotifyWatch[];
}

/**
 * A pty master (src/kinds/pty.ts): made again through /dev/ptmx, so its pty gets a new index. The
 * terminal's settings are the pty's (TCGETS2 on a master reads its slave's).
 */
export interface PtmxDesc extends DescBase {
  kind: 'ptmx';
  /** fdinfo tty-index at dump: the old /dev/pts number, for show and diff only */
  index: number;
  /** struct termios2 (TCGETS2), 44 bytes as lowercase hex */
  termios: string;
  /** struct winsize (TIOCGWINSZ), 8 bytes as lowercase hex */
  winsize: string;
  /** TIOCGPTLCK: opening the slave by path fails while locked */
  locked: boolean;
  /** TIOCGPKT: packet mode on the master */
  packet: boolean;
}

/** A slave of a pty whose master is in the image (src/kinds/pty.ts): opened through it (TIOCGPTPEER). */
export interface PtsDesc extends DescBase {
  kind: 'pts';
  /** Desc.id of the master (a ptmx description) */
  master: number;
  /** the old /dev/pts number, for show and diff only */
  index: number;
}

/** The type of a unix socket: SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET. */
export type UnixType = 'stream' | 'dgram' | 'seqpacket';

/**
 * A unix socket (src/kinds/unix.ts): an end of a connected pair, a listener, or a socket connected
 * to nothing. The socket options a program can read back are in `options` (name -> value as
 * getsockopt gives it).
 */
export interface UnixDesc extends DescBase {
  kind: 'unix';
  type: UnixType;
  state: 'connected' | 'listening' | 'unconnected';
  /**
   * connected: the pair it is an end of (ids global to the image, like pipes'): the two ends of
   * a pair are made by one socketpair(); an end alone had its peer closed.
   */
  pair?: number;
  /** the name it is bound to (listening, unconnected): an absolute path, or `@` and an abstract name in base64 */
  address?: string;
  /** listening: listen()'s backlog */
  backlog?: number;
  /** bytes queued to be read at this end, base64 (connected) */
  queue: string;
  /** dgram and seqpacket: the length of each queued message, in order */
  packets?: number[];
  /** sk_shutdown: 1 no more receiving, 2 no more sending */
  shutdown: number;
  options: Record<string, number>;
}

/**
 * An inet socket (src/kinds/inet.ts): a listening TCP socket, a bound or connected UDP socket, an
 * unbound one, an established TCP connection (carried by TCP repair: `tcp`), or one dumped with
 * --tcp-close (`reset`: restored as reset by its peer); addresses as text (dotted IPv4, IPv6 as
 * eight hex words).
 */
export interface InetDesc extends DescBase {
  kind: 'inet';
  family: 4 | 6;
  protocol: 'tcp' | 'udp';
  state: 'listening' | 'bound' | 'connected' | 'unbound' | 'established' | 'reset';
  address?: string;
  port?: number;
  backlog?: number;
  /** a connected UDP socket's peer, a TCP connection's */
  peerAddress?: string;
  peerPort?: number;
  options: Record<string, number>;
  /** established: what TCP repair read (src/kinds/tcp-repair.ts) */
  tcp?: TcpRepair;
}

/**
 * An established TCP connection's state as TCP repair reads it (sequence numbers are the
 * kernel's u32s; queues base64 text in the model and in JSON, bin in an image file).
 */
export interface TcpRepair {
  /** the sequence number of the next byte the program writes (write_seq) */
  sendSeq: number;
  /** the sequence number of the next byte the peer sends (rcv_nxt) */
  recvSeq: number;
  /** bytes written and not acknowledged by the peer, in order, base64 */
  sendQueue: string;
  /** how many at the end of sendQueue were never sent */
  unsent: number;
  /** bytes received and not read by the program, base64 */
  recvQueue: string;
  /** the MSS clamp (TCP_MAXSEG in repair mode) */
  mss: number;
  /** window scaling, when negotiated: the shift we apply to the peer's windows, and the one we send */
  wscale?: [number, number];
  sack: boolean;
  timestamps: boolean;
  /** TCP_TIMESTAMP: the connection's timestamp clock at dump */
  tsval: number;
  /** TCP_REPAIR_WINDOW: snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup */
  window: [number, number, number, number, number];
}

/**
 * A pidfd (src/kinds/pidfd.ts): the process it refers to, by its pid when dumped (a member of the
 * image's tree, whose pid at restore replaces it). O_EXCL in flags: PIDFD_THREAD.
 */
export interface PidfdDesc extends DescBase {
  kind: 'pidfd';
  pid: number;
}

/** One open file description: a union by kind, so every switch over kinds is checked whole. */
export type Desc = PipeDesc | FifoDesc | FileDesc | ChrDesc | EventfdDesc | DirDesc | OpathDesc | EpollDesc | TimerfdDesc | SignalfdDesc | PtmxDesc | PtsDesc | UnixDesc | InetDesc | MemfdDesc | DeletedDesc | InotifyDesc | PidfdDesc;

/** The description's path, for the kinds opened by one. */
export function pathOf(d: Desc): string | undefined {
  return 'path' in d ? d.path : undefined;
}

/** The pipe a description is an end of, for the kinds on one. */
export function pipeOf(d: Desc): number | undefined {
  return 'pipe' in d ? d.pipe : undefined;
}

/** The socket pair a description is an end of, for the kinds made in pairs. */
export function pairOf(d: Desc): number | undefined {
  return 'pair' in d ? d.pair : undefined;
}

/** major:minor of a dev_t as the kernel encodes it for userspace (new_encode_dev), as node's stat gives it. */
export function devName(dev: number): string {
  const d = BigInt(dev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/** A pipe object: an anonymous pipe, or the pipe inside a named FIFO. */
export interface Pipe {
  id: number;
  /** F_GETPIPE_SZ, bytes */
  capacity: number;
  /** bytes queued in the pipe (bin in an image file, base64 text in JSON: tableJson) */
  data: Buffer;
  /**
   * When the queued data is in packet mode (O_DIRECT writes), the length of each
   * packet in order; absent for a byte stream.
   */
  packets?: number[];
}

export interface Rlimit {
  soft: number;
  hard: number;
}

/**
 * One process's entries: its fd numbers (each naming a description of the image by id), its
 * close-on-exec bits and its RLIMIT_NOFILE. Everything shared lives in FdTables.
 */
export interface ProcessFds {
  pid: number;
  /**
   * The pid of its parent when that parent is in the image too (listed before it); absent for a
   * root. Descriptions a parent and its child share are created in the parent and inherited at
   * fork (docs/planner.md).
   */
  parent?: number;
  fds: Fd[];
  /** RLIMIT_NOFILE of the checkpointed process */
  rlimit: Rlimit;
}

/**
 * What a dump checkpointed: the shared objects (descriptions and pipes, ids global to the image)
 * and each process's entries. A description two processes hold (inherited across fork: one
 * offset, one set of flags) is one object both refer to. The `plan` input and `show --json`
 * output (docs/fd-table.md). A single-process dump is the case of one process.
 */
export interface FdTables {
  descs: Desc[];
  pipes: Pipe[];
  processes: ProcessFds[];
}

/**
 * One process's view of FdTables: its fds and limit with the descriptions and pipes they reach
 * (ids as in the image). What the planner plans, the simulator checks and replay runs, one
 * process at a time.
 */
export interface FdTable {
  fds: Fd[];
  descs: Desc[];
  pipes: Pipe[];
  /** RLIMIT_NOFILE of the checkpointed process */
  rlimit: Rlimit;
}

/** Process i's view: only the descriptions its fds name and the pipes those are on, in image order. */
export function viewOf(tables: FdTables, i: number): FdTable {
  const proc = tables.processes[i]!;
  if (tables.processes.length === 1) return { fds: proc.fds, descs: tables.descs, pipes: tables.pipes, rlimit: proc.rlimit };
  const used = new Set(proc.fds.map((f) => f.desc));
  const descs = tables.descs.filter((d) => used.has(d.id));
  const pipeIds = new Set(descs.map(pipeOf).filter((p) => p !== undefined));
  return { fds: proc.fds, descs, pipes: tables.pipes.filter((p) => pipeIds.has(p.id)), rlimit: proc.rlimit };
}

/**
 * The one process of `tables`, for what handles one process at a time (restore -- CMD, --into, a
 * single restart); several are refused in one line (a tree image is restarted by restore IMAGE).
 */
export function onlyProcess(tables: FdTables): FdTable {
  const n = tables.processes.length;
  if (n !== 1) badInput(`the image holds ${n} processes: restoring an fd table takes one (restore IMAGE restarts a tree from a whole-process image)`);
  return viewOf(tables, 0);
}

/** The tables of one process holding `table` (every description and pipe in it must be reached by its fds). */
export function oneProcess(table: FdTable, pid: number): FdTables {
  return { descs: table.descs, pipes: table.pipes, processes: [{ pid, fds: table.fds, rlimit: table.rlimit }] };
}

// x86_64 open flags, SETFL_MASK and the default pipe capacity: one source with the planner
// (scripts/abi.mjs).
export {
  O_ACCMODE, O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_NOCTTY, O_TRUNC, O_APPEND, O_NONBLOCK, O_DSYNC,
  O_ASYNC, O_DIRECT, O_LARGEFILE, O_DIRECTORY, O_NOFOLLOW, O_NOATIME, O_CLOEXEC, O_SYNC, O_PATH, SETFL_MASK,
  DEFAULT_PIPE_CAPACITY,
} from '../abi.js';

/** A description before it has an id (a builder's), kind by kind. */
export type DescFields = Desc extends infer D ? (D extends Desc ? Omit<D, 'id'> : never) : never;
