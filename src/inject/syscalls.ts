// x86_64 system call numbers (arch/x86/entry/syscalls/syscall_64.tbl) for calls cr injects.
export const SYS = {
  read: 0,
  write: 1,
  close: 3,
  fstat: 5,
  lseek: 8,
  mmap: 9,
  mprotect: 10,
  munmap: 11,
  ioctl: 16,
  dup2: 33,
  getpid: 39,
  fcntl: 72,
  getppid: 110,
  setgroups: 116,
  setfsuid: 122,
  setfsgid: 123,
  fstatfs: 138,
  prctl: 157,
  openat: 257,
  dup3: 292,
  pipe2: 293,
  prlimit64: 302,
} as const;

export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const PROT_EXEC = 4;
export const MAP_FIXED_NOREPLACE = 0x100000;
