// x86_64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl) and constants for the calls
// checkpoint and restart inject; src/inject/syscalls.ts holds those of the fd-table replay.
export const NR = {
  open: 2,
  close: 3,
  mmap: 9,
  munmap: 11,
  brk: 12,
  rt_sigaction: 13,
  mremap: 25,
  madvise: 28,
  getitimer: 36,
  setitimer: 38,
  chdir: 80,
  umask: 95,
  setgroups: 116,
  setresuid: 117,
  setresgid: 119,
  setfsuid: 122,
  setfsgid: 123,
  rt_sigqueueinfo: 129,
  sigaltstack: 131,
  personality: 135,
  prctl: 157,
  set_tid_address: 218,
  restart_syscall: 219,
  set_robust_list: 273,
  get_robust_list: 274,
  rt_tgsigqueueinfo: 297,
  prlimit64: 302,
  mlock2: 325,
  rseq: 334,
  clone3: 435,
  mseal: 462,
} as const;

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
export const SS_ONSTACK = 1;
export const SS_DISABLE = 2;
export const PR_SET_NAME = 15;
export const PR_SET_DUMPABLE = 4;
export const PR_SET_MM = 35;
export const PR_SET_MM_MAP = 14;
export const PR_GET_TID_ADDRESS = 40;
export const PR_SET_NO_NEW_PRIVS = 38;
export const PR_GET_NO_NEW_PRIVS = 39;
export const PR_SET_VMA = 0x53564d41;
export const PR_SET_VMA_ANON_NAME = 0;
export const CLONE_PARENT = 0x8000;

// Kernel-internal syscall results a tracee can be stopped with (include/linux/errno.h): the
// kernel turns them into a restart or EINTR on the way back to user space.
export const ERESTARTSYS = 512;
export const ERESTARTNOINTR = 513;
export const ERESTARTNOHAND = 514;
export const ERESTART_RESTARTBLOCK = 516;
