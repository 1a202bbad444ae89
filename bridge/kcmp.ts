// kcmp(2) KCMP_FILE: do two fds (possibly in two processes) refer to the same open file description?
import { check } from './errno.js';
import { libc } from './libc.js';

const SYS_kcmp = 312;
const KCMP_FILE = 0;

/** 0 same file description, 1 less, 2 greater, 3 unordered (the kernel's ordering of struct file pointers). */
export function kcmpFile(pid1: number, fd1: number, pid2: number, fd2: number): 0 | 1 | 2 | 3 {
  return check(
    libc.syscall(SYS_kcmp, 'int', pid1, 'int', pid2, 'int', KCMP_FILE, 'ulong', fd1, 'ulong', fd2),
    () => `kcmp(pid1=${pid1}, pid2=${pid2}, KCMP_FILE, fd1=${fd1}, fd2=${fd2})`,
  ) as 0 | 1 | 2 | 3;
}
