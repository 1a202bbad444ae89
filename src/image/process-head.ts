// What a whole-process image holds besides its pages and fd table: the head's types (mappings,
// memory-descriptor fields, signals, limits, timers, registers). Its own module so that the
// encoding (process-format.ts) and the check of what a head means (process-check.ts) both build on
// it without importing each other.
import type { DeletedDesc, MemfdDesc } from '../model/fdtable.js';
import type { ProcessIdentity } from '../proc/process.js';

/** What backs a mapping, and so how restart recreates it. */
export type MappingKind =
  /** anonymous memory (MAP_PRIVATE|MAP_ANONYMOUS), [stack] and [heap] included: pages in the image */
  | 'anon'
  /** a private file mapping: re-mapped from the file; pages changed since (copied on write) in the image */
  | 'file'
  /** a shared file mapping: re-mapped from the file, which holds its contents */
  | 'shared-file'
  /**
   * shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS, /dev/zero, or a System V segment attached
   * with shmat: `shm.sysv`): one object per `shm.object`, made again once and mapped at each of
   * its mappings' places; pages in the image
   */
  | 'shared-anon'
  /**
   * a shared mapping of a file with no name (a memfd, a deleted file): the file is a description
   * of the fd table (`unnamed.desc`, which carries its contents once), mapped again from the fd
   * the restored process holds it at; no pages in the image
   */
  | 'shared-unnamed'
  /**
   * an aio context's ring (io_setup), its address the context id: made again by io_setup with as
   * many events as its size holds, moved here with mremap; no pages in the image (the kernel's)
   */
  | 'aio'
  /** kernel-provided: moved into place from the restarted process's own, never written */
  | 'vdso'
  | 'vvar'
  | 'vvar_vclock';

export interface MappedFile {
  path: string;
  /** file offset of the mapping's first page */
  offset: number;
  /** identity of the file at dump time: restart refuses a file that is not the same any more */
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
}

/** A page-aligned address range [start, end). */
export interface AddressRange {
  start: number;
  end: number;
}

/** Kinds whose pages can hold guard regions (the kernel refuses MADV_GUARD_INSTALL on the vdso pages). */
export const GUARDED_KINDS: readonly MappingKind[] = ['anon', 'file', 'shared-file', 'shared-anon', 'shared-unnamed'];

/**
 * A System V shared memory segment (shmget), as /proc/sysvipc/shm shows it at dump: what restart
 * needs to attach the same segment, when it is still there, or to make one like it.
 */
export interface SysvSegment {
  /** its key; 0 (IPC_PRIVATE) for a private segment, and for one marked for removal */
  key: number;
  /** its id at dump (shmid: the inode /proc/PID/maps shows) */
  id: number;
  /** bytes asked of shmget (the mappings cover it in whole pages) */
  size: number;
  /** permission bits (0777) */
  mode: number;
  /** owner */
  uid: number;
  gid: number;
  /** marked for removal (shmctl IPC_RMID, SHM_DEST): it goes when its last attachment does */
  removed: boolean;
}

export interface Mapping {
  start: number;
  end: number;
  /** PROT_READ 1 | PROT_WRITE 2 | PROT_EXEC 4 */
  prot: number;
  kind: MappingKind;
  /** the name /proc shows: '[stack]', '[heap]', '[anon:NAME]', '[vdso]', ...; '' for none */
  name: string;
  file: MappedFile | null;
  /**
   * For a shared-anon mapping: which shared object of the process it maps (numbered from 0 in
   * the order the mappings first meet them) and at what offset in it; mappings of one object
   * share their pages, after the restart as before.
   */
  shm: { object: number; offset: number; sysv: SysvSegment | null } | null;
  /**
   * For a shared-unnamed mapping: the description of the file it maps (an fd table id, a memfd or
   * deleted file the process holds; or one of the head's `unheld`), and the file offset of its first page.
   */
  unnamed: { desc: number; offset: number } | null;
  /** smaps VmFlags (two-letter codes: 'gd' grows down, 'dd' don't dump, 'nr' no reserve, ...) */
  vmflags: string[];
  /**
   * Guard regions (madvise MADV_GUARD_INSTALL) inside the mapping, in address order, apart:
   * touching one faults; their pages are never read nor in the image.
   */
  guards: AddressRange[];
}

/** struct aio_ring's header (fs/aio.c): id, nr, head, tail, magic, compat and incompat features, header length (u32 each). */
export const AIO_HEADER_BYTES = 32;
/** How many events (struct io_event, 32 bytes) an aio ring of `bytes` holds: the kernel fills its pages with them. */
export const ringEvents = (bytes: number): number => Math.floor((bytes - AIO_HEADER_BYTES) / 32);

/** The guard regions of mappings in address order, adjacent ones joined. */
export function guardRegions(mappings: Mapping[]): AddressRange[] {
  const out: AddressRange[] = [];
  for (const g of mappings.flatMap((m) => m.guards)) {
    const last = out[out.length - 1];
    if (last && last.end === g.start) last.end = g.end;
    else out.push({ ...g });
  }
  return out;
}

/** Memory-descriptor fields, as prctl(PR_SET_MM, PR_SET_MM_MAP) takes them. */
export interface MmFields {
  startCode: number;
  endCode: number;
  startData: number;
  endData: number;
  startBrk: number;
  brk: number;
  startStack: number;
  argStart: number;
  argEnd: number;
  envStart: number;
  envEnd: number;
}

export interface PendingSignal {
  /** on the process's shared queue (kill) rather than the thread's own (tgkill) */
  shared: boolean;
  /** the 128-byte siginfo_t */
  info: Buffer;
}

export interface Signals {
  /** struct kernel_sigaction (handler, flags, restorer, mask: 4 x u64 LE) of signals 1..64 */
  actions: Buffer;
  /** blocked mask, u64 LE (bit n-1 is signal n) */
  blocked: Buffer;
  pending: PendingSignal[];
  altstack: { sp: number; flags: number; size: number };
}

export interface Rlimit64 {
  resource: number;
  /** null: RLIM_INFINITY */
  soft: number | null;
  hard: number | null;
}

export interface Itimer {
  intervalUs: number;
  valueUs: number;
}

/**
 * Per-process attributes a program can read back (docs/state.md), carried so that it finds them
 * unchanged. Each is what its getter returned at dump time.
 */
export interface ProcessAttributes {
  /** /proc/PID/oom_score_adj, -1000..1000 */
  oomScoreAdj: number;
  /** PR_GET_PDEATHSIG: 0 or a signal */
  pdeathsig: number;
  /** PR_GET_DUMPABLE: 0 or 1 */
  dumpable: number;
  /** PR_GET_KEEPCAPS */
  keepCaps: boolean;
  /** PR_GET_TIMERSLACK, nanoseconds */
  timerSlackNs: number;
  /** PR_GET_THP_DISABLE: 0, or 1 with PR_THP_DISABLE_EXCEPT_ADVISED (2) as it may be */
  thpDisable: number;
  /** PR_GET_CHILD_SUBREAPER */
  childSubreaper: boolean;
  /** PR_MCE_KILL_GET: PR_MCE_KILL_DEFAULT (2), _EARLY (1) or _LATE (0) */
  mceKill: number;
  /** PR_GET_TSC: PR_TSC_ENABLE (1) or PR_TSC_SIGSEGV (2) */
  tsc: number;
  /** PR_GET_MDWE flags */
  mdwe: number;
  /** PR_GET_MEMORY_MERGE (KSM for the whole process) */
  memoryMerge: boolean;
  /** arch_prctl ARCH_GET_CPUID: 1 cpuid runs, 0 it faults */
  cpuid: number;
  /** /proc/PID/coredump_filter */
  coredumpFilter: number;
  /** getpriority(PRIO_PROCESS): -20..19 */
  nice: number;
  /** sched_getscheduler (SCHED_RESET_ON_FORK included) and sched_getparam's priority */
  schedPolicy: number;
  schedPriority: number;
  /** ioprio_get(IOPRIO_WHO_PROCESS) */
  ioprio: number;
  /** sched_getaffinity's mask, as many bytes as the kernel's cpumask */
  affinity: Buffer;
  /** /proc/PID/loginuid (4294967295: unset) */
  loginuid: number;
}

/**
 * A System V semaphore set or message queue the process used (src/checkpoint/sysv-ipc.ts): a
 * keyed object that outlives it. Restart finds it again where it was, or makes it again from
 * `saved` when it is gone (docs/state.md).
 */
export type SysvIpcObject =
  | { kind: 'sem'; key: number; id: number; saved: SysvSemSaved | null }
  | { kind: 'msg'; key: number; id: number; saved: SysvMsgSaved | null };

/** What IPC_STAT said of an object's permissions at dump. */
export interface SysvIpcOwner {
  /** permission bits */
  mode: number;
  uid: number;
  gid: number;
  /** its creator's ids (the kernel's cuid, cgid) */
  cuid: number;
  cgid: number;
}

/** A semaphore set as the dump read it (null in the head when cr could not read it). */
export interface SysvSemSaved extends SysvIpcOwner {
  /** each semaphore's value (semctl GETALL), nsems of them */
  values: number[];
}

/** A message queue as the dump read it (null in the head when cr could not read it). */
export interface SysvMsgSaved extends SysvIpcOwner {
  /** msg_qbytes: the most bytes it holds */
  qbytes: number;
  /** every message queued, oldest first (msgrcv MSG_COPY, which leaves each queued) */
  messages: Array<{ type: number; text: Buffer }>;
}

/**
 * A file lock or lease the process held, set again through the same fd: flock and OFD locks
 * belong to the open file description, POSIX locks and leases to the process.
 */
export interface FileLock {
  fd: number;
  kind: 'flock' | 'posix' | 'ofd' | 'lease';
  /** a write (exclusive) lock or lease, else a read (shared) one */
  write: boolean;
  /** the byte range of a POSIX or OFD lock, end inclusive, null to the end of the file; 0, null for the others */
  start: number;
  end: number | null;
}

/**
 * The clocks a process can make a POSIX timer of for itself (CLOCK_REALTIME, MONOTONIC,
 * PROCESS_CPUTIME_ID, THREAD_CPUTIME_ID, BOOTTIME, REALTIME_ALARM, BOOTTIME_ALARM, TAI).
 */
export const TIMER_CLOCKS: readonly number[] = [0, 1, 2, 3, 7, 8, 9, 11];

/** A POSIX timer (timer_create), made again with the same id. */
export interface PosixTimer {
  id: number;
  /** CLOCK_REALTIME 0, MONOTONIC 1, PROCESS_CPUTIME_ID 2, THREAD_CPUTIME_ID 3, BOOTTIME 7, REALTIME_ALARM 8, BOOTTIME_ALARM 9, TAI 11 */
  clock: number;
  /** a signal to the process (SIGEV_SIGNAL), to its thread (SIGEV_THREAD_ID), or none (SIGEV_NONE) */
  notify: 'signal' | 'thread' | 'none';
  signal: number;
  /** sigev_value: 8 bytes */
  value: Buffer;
  /** [seconds, nanoseconds] of the period, and of what was left to the next expiry (0, 0: disarmed) */
  interval: [number, number];
  left: [number, number];
  /** timer_getoverrun at dump time (not carried: the kernel counts overruns afresh) */
  overrun: number;
}

/**
 * A thread other than the thread-group leader (whose state is the head's own `regs`, `xstate`,
 * `signals.blocked`, ...): what is the thread's own in the kernel, captured per thread.
 */
export interface ThreadState {
  /** its thread id at dump time (with --same-pid, its id again) */
  tid: number;
  /** /proc/PID/task/TID/comm */
  comm: string;
  /** struct user_regs_struct, as head.regs */
  regs: Buffer;
  /** the XSAVE area, as head.xstate (same size) */
  xstate: Buffer;
  /** blocked mask, u64 LE */
  blocked: Buffer;
  /** 128-byte siginfo_t of each signal queued to this thread alone (tgkill), in queue order */
  pending: Buffer[];
  altstack: { sp: number; flags: number; size: number };
  rseq: { pointer: number; size: number; signature: number } | null;
  robustList: { head: number; len: number } | null;
  /** clear_child_tid: for a glibc thread, where its struct pthread caches its tid */
  tidAddress: number;
}

/** Everything about the process but its pages and its fd table. */
export interface ProcessHead {
  toolVersion: string;
  kernel: string;
  arch: 'x86_64';
  pageSize: number;
  process: ProcessIdentity;
  /** /proc/PID/exe; null when the executable is gone */
  exe: { path: string; dev: number; ino: number } | null;
  /** the working directory's path (without /proc's ` (deleted)` when it was removed) */
  cwd: string;
  /**
   * The working directory had been removed (rmdir'd while the process was in it): its permission
   * bits, which restart gives the empty directory it makes, enters and removes in its place
   * (docs/restart.md). null when it is there.
   */
  cwdRemoved: number | null;
  umask: number;
  personality: number;
  /** real, effective, saved, filesystem ids; supplementary groups */
  creds: { uid: number[]; gid: number[]; groups: number[] };
  rlimits: Rlimit64[];
  mm: MmFields;
  /** /proc/PID/auxv, raw */
  auxv: Buffer;
  mappings: Mapping[];
  /** struct user_regs_struct, 27 x u64 LE in the kernel's order */
  regs: Buffer;
  /** PTRACE_GETREGSET NT_X86_XSTATE: the XSAVE area, standard format */
  xstate: Buffer;
  signals: Signals;
  rseq: { pointer: number; size: number; signature: number } | null;
  robustList: { head: number; len: number } | null;
  /** clear_child_tid (set_tid_address) */
  tidAddress: number;
  /** ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF as getitimer(2) gives them: microseconds */
  itimers: Itimer[];
  /** PR_GET_NO_NEW_PRIVS */
  noNewPrivs: boolean;
  attributes: ProcessAttributes;
  /** POSIX timers, by id */
  posixTimers: PosixTimer[];
  /** file locks and leases, in fd order */
  locks: FileLock[];
  /** System V semaphore sets and message queues it used, by kind and id */
  sysvIpc: SysvIpcObject[];
  /** /proc/PID/cgroup as read: restart puts it back where it can, else says it runs in cr's */
  cgroup: string;
  /** sha256 of the [vdso] bytes: restart refuses a kernel whose vdso differs */
  vdsoSha256: Buffer | null;
  /** the threads besides the leader, by tid; empty for a single-threaded process */
  threads: ThreadState[];
  /**
   * The memfds and deleted files the process maps shared but holds no fd of (closed after mmap):
   * each as a description of its own (O_RDWR, at offset 0) that shared-unnamed mappings name by
   * id, distinct from the fd table's; made by restart for the mappings alone.
   */
  unheld: Array<MemfdDesc | DeletedDesc>;
}
