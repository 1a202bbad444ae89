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
  lseek: 8,
  mmap: 9,
  mprotect: 10,
  munmap: 11,
  brk: 12,
  rt_sigaction: 13,
  ioctl: 16,
  mremap: 25,
  madvise: 28,
  dup2: 33,
  getitimer: 36,
  setitimer: 38,
  getpid: 39,
  fcntl: 72,
  chdir: 80,
  umask: 95,
  getppid: 110,
  setgroups: 116,
  setresuid: 117,
  setresgid: 119,
  setfsuid: 122,
  setfsgid: 123,
  rt_sigqueueinfo: 129,
  sigaltstack: 131,
  personality: 135,
  fstatfs: 138,
  prctl: 157,
  gettid: 186,
  set_tid_address: 218,
  restart_syscall: 219,
  tgkill: 234,
  openat: 257,
  set_robust_list: 273,
  get_robust_list: 274,
  eventfd2: 290,
  dup3: 292,
  pipe2: 293,
  rt_tgsigqueueinfo: 297,
  prlimit64: 302,
  mlock2: 325,
  rseq: 334,
  clone3: 435,
  mseal: 462,
} as const;

export type SyscallName = keyof typeof SYS;

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
/** madvise: fault on any touch of these pages (Linux 6.13+) */
export const MADV_GUARD_INSTALL = 102;

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

// clone3
export const CLONE_PARENT = 0x8000;

// Kernel-internal syscall results a tracee can be stopped with (include/linux/errno.h): the
// kernel turns them into a restart or EINTR on the way back to user space.
export const ERESTARTSYS = 512;
export const ERESTARTNOINTR = 513;
export const ERESTARTNOHAND = 514;
export const ERESTART_RESTARTBLOCK = 516;
