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

const KCMP_EPOLL_TFD = 7;

/**
 * kcmp(2) KCMP_EPOLL_TFD: is fd `fd` of pid the file the epoll at `epfd` watches as its
 * `toff`-th item added with fd number `tfd`? Only 0 (the same file) or not.
 */
export function kcmpEpollTfd(pid: number, fd: number, epfd: number, tfd: number, toff: number): boolean {
  const slot = Buffer.alloc(12); // struct kcmp_epoll_slot { __u32 efd, tfd, toff; }
  slot.writeUInt32LE(epfd, 0);
  slot.writeUInt32LE(tfd, 4);
  slot.writeUInt32LE(toff, 8);
  return (
    check(
      libc.syscall(SYS_kcmp, 'int', pid, 'int', pid, 'int', KCMP_EPOLL_TFD, 'ulong', fd, 'void *', slot),
      () => `kcmp(pid=${pid}, KCMP_EPOLL_TFD, fd=${fd}, {efd=${epfd}, tfd=${tfd}, toff=${toff}})`,
    ) === 0
  );
}
