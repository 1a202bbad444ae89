// The one x86_64 table of what cr runs inside other processes: system call numbers
// (arch/x86/entry/syscalls/syscall_64.tbl) and the constants of those calls' arguments, for the
// dump-side reads, the fd-table replay and the restart alike. TypeScript only: the wasm planner
// never names a syscall.
export const SYS = {
  read: 0,
  write: 1,
  open: 2,
  close: 3,
  fstat: 5,
  pwrite64: 18,
  lseek: 8,
  mmap: 9,
  mprotect: 10,
  munmap: 11,
  brk: 12,
  rt_sigaction: 13,
  ioctl: 16,
  mremap: 25,
  mincore: 27,
  madvise: 28,
  shmget: 29,
  shmat: 30,
  shmctl: 31,
  dup2: 33,
  getitimer: 36,
  setitimer: 38,
  getpid: 39,
  socket: 41,
  connect: 42,
  sendto: 44,
  shutdown: 48,
  bind: 49,
  listen: 50,
  getsockname: 51,
  socketpair: 53,
  setsockopt: 54,
  semget: 64,
  semctl: 66,
  msgget: 68,
  msgsnd: 69,
  msgctl: 71,
  fcntl: 72,
  ftruncate: 77,
  flock: 73,
  chdir: 80,
  mkdir: 83,
  rmdir: 84,
  unlink: 87,
  chmod: 90,
  fchmod: 91,
  umask: 95,
  setpgid: 109,
  getppid: 110,
  setsid: 112,
  setgroups: 116,
  setresuid: 117,
  setresgid: 119,
  setfsuid: 122,
  setfsgid: 123,
  rt_sigtimedwait: 128,
  rt_sigqueueinfo: 129,
  sigaltstack: 131,
  personality: 135,
  fstatfs: 138,
  getpriority: 140,
  setpriority: 141,
  sched_getparam: 143,
  sched_setscheduler: 144,
  sched_getscheduler: 145,
  prctl: 157,
  arch_prctl: 158,
  gettid: 186,
  sched_setaffinity: 203,
  sched_getaffinity: 204,
  io_setup: 206,
  io_submit: 209,
  set_tid_address: 218,
  timer_create: 222,
  timer_settime: 223,
  timer_gettime: 224,
  timer_getoverrun: 225,
  restart_syscall: 219,
  exit_group: 231,
  tgkill: 234,
  waitid: 247,
  ioprio_set: 251,
  ioprio_get: 252,
  inotify_add_watch: 254,
  inotify_rm_watch: 255,
  openat: 257,
  unlinkat: 263,
  linkat: 265,
  set_robust_list: 273,
  get_robust_list: 274,
  epoll_ctl: 233,
  timerfd_create: 283,
  timerfd_settime: 286,
  signalfd4: 289,
  eventfd2: 290,
  epoll_create1: 291,
  dup3: 292,
  pipe2: 293,
  inotify_init1: 294,
  rt_tgsigqueueinfo: 297,
  prlimit64: 302,
  mlock2: 325,
  memfd_create: 319,
  rseq: 334,
  pidfd_open: 434,
  clone3: 435,
  mseal: 462,
} as const;

const NAMES = new Map<number, string>(Object.entries(SYS).map(([name, nr]) => [nr, name]));

/** The name of a system call number cr runs (for the --log trace); `syscall_N` for another. */
export const syscallName = (nr: number): string => NAMES.get(nr) ?? `syscall_${nr}`;

// mmap, mprotect, mremap, mlock2, madvise
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_GROWSDOWN = 0x100;
export const MAP_NORESERVE = 0x4000;
export const MAP_FIXED_NOREPLACE = 0x100000;
export const MREMAP_MAYMOVE = 1;
export const MREMAP_FIXED = 2;
export const MLOCK_ONFAULT = 1;
/** fcntl F_ADD_SEALS (F_LINUX_SPECIFIC_BASE + 9): seals added to a memfd once its shared mappings exist */
export const F_ADD_SEALS = 1033;
/** madvise: fault on any touch of these pages (Linux 6.13+) */
export const MADV_GUARD_INSTALL = 102;

// shmget, shmat, shmctl (System V shared memory)
export const IPC_CREAT = 0o1000;
export const IPC_EXCL = 0o2000;
export const IPC_RMID = 0;
export const IPC_SET = 1;
/** struct shmid64_ds (x86_64): its shm_perm's uid, gid and mode, which IPC_SET takes */
export const SHMID_DS_BYTES = 112;
export const SHM_PERM_UID_AT = 4;
export const SHM_PERM_GID_AT = 8;
export const SHM_PERM_MODE_AT = 20;

// sigaltstack
export const SS_ONSTACK = 1;
export const SS_DISABLE = 2;

// prctl
export const PR_SET_DUMPABLE = 4;
export const PR_SET_NAME = 15;
export const PR_SET_MM = 35;
export const PR_SET_MM_MAP = 14;
export const PR_SET_NO_NEW_PRIVS = 38;
export const PR_GET_NO_NEW_PRIVS = 39;
export const PR_GET_TID_ADDRESS = 40;
export const PR_SET_VMA = 0x53564d41;
export const PR_SET_VMA_ANON_NAME = 0;

// prctl, arch_prctl and the scheduling calls: the per-process attributes checkpoint reads and
// restart sets (docs/state.md)
export const PR_SET_PDEATHSIG = 1;
export const PR_GET_PDEATHSIG = 2;
export const PR_GET_DUMPABLE = 3;
export const PR_GET_KEEPCAPS = 7;
export const PR_SET_KEEPCAPS = 8;
export const PR_GET_TSC = 25;
export const PR_SET_TSC = 26;
export const PR_GET_SECUREBITS = 27;
export const PR_SET_TIMERSLACK = 29;
export const PR_GET_TIMERSLACK = 30;
export const PR_MCE_KILL = 33;
export const PR_MCE_KILL_GET = 34;
export const PR_MCE_KILL_SET = 1;
export const PR_MCE_KILL_DEFAULT = 2;
export const PR_SET_CHILD_SUBREAPER = 36;
export const PR_GET_CHILD_SUBREAPER = 37;
export const PR_SET_THP_DISABLE = 41;
export const PR_GET_THP_DISABLE = 42;
/** PR_SET_THP_DISABLE's arg3 flag (6.18): THP stays allowed where MADV_HUGEPAGE asks for it */
export const PR_THP_DISABLE_EXCEPT_ADVISED = 2;
export const PR_GET_SPECULATION_CTRL = 52;
export const PR_SET_MDWE = 65;
export const PR_GET_MDWE = 66;
export const PR_SET_MEMORY_MERGE = 67;
export const PR_GET_MEMORY_MERGE = 68;
export const PR_TSC_ENABLE = 1;
export const PR_TSC_SIGSEGV = 2;
export const ARCH_GET_CPUID = 0x1011;
export const ARCH_SET_CPUID = 0x1012;

export const SCHED_OTHER = 0;
export const SCHED_FIFO = 1;
export const SCHED_RR = 2;
export const SCHED_BATCH = 3;
export const SCHED_IDLE = 5;
export const SCHED_DEADLINE = 6;
/** or'd into the policy sched_getscheduler returns */
export const SCHED_RESET_ON_FORK = 0x40000000;
export const PRIO_PROCESS = 0;
export const IOPRIO_WHO_PROCESS = 1;

/** The largest cpumask cr asks sched_getaffinity for (CONFIG_NR_CPUS is at most 8192). */
export const AFFINITY_MAX_BYTES = 1024;

// waitid: its idtype and the options cr's own waitpid does not use (bridge/wait.ts has the rest)
export const P_ALL = 0;
export const WSTOPPED = 2;
export const WEXITED = 4;
export const WNOWAIT = 0x01000000;

// clone3
export const CLONE_PARENT = 0x8000;
/** What glibc's pthread_create passes to clone: one address space, fs, fd table, signal handlers, thread group, SysV undo list, its own TLS, and its tid written to and cleared from its struct pthread. */
export const CLONE_PTHREAD = 0x100 | 0x200 | 0x400 | 0x800 | 0x10000 | 0x40000 | 0x80000 | 0x100000 | 0x200000;
export const CLONE_PARENT_SETTID = 0x100000;
export const CLONE_CHILD_CLEARTID = 0x200000;

// Kernel-internal syscall results a tracee can be stopped with (include/linux/errno.h), those
// the restart acts on: the kernel turns them into a restart or EINTR on the way back to user space.
export const ERESTARTNOHAND = 514;
export const ERESTART_RESTARTBLOCK = 516;
