// pidfd_open / pidfd_getfd: duplicate another process's fd into cr without stopping it.
import { check } from './errno.js';
import { libc } from './libc.js';

const SYS_pidfd_open = 434;
const SYS_pidfd_getfd = 438;

export function pidfdOpen(pid: number): number {
  return check(libc.syscall(SYS_pidfd_open, 'int', pid, 'uint', 0), () => `pidfd_open(pid=${pid})`);
}

/** A new fd in cr (close-on-exec) for the open file description behind targetFd in the pidfd's process. */
export function pidfdGetfd(pidfd: number, targetFd: number): number {
  return check(
    libc.syscall(SYS_pidfd_getfd, 'int', pidfd, 'int', targetFd, 'uint', 0),
    () => `pidfd_getfd(pidfd=${pidfd}, targetfd=${targetFd})`,
  );
}
