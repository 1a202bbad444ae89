// System V semaphores: which process operated last on a semaphore (semctl GETPID), the one thing
// about who uses a set the kernel tells (its /proc/sysvipc/sem line names no process).
import { check } from './errno.js';
import { libc } from './libc.js';

const SYS_semctl = 66;
const GETPID = 11;

/** The pid of the last process that changed semaphore `num` of set `id` (0: none yet). Needs read permission on the set. */
export function semLastPid(id: number, num: number): number {
  return check(libc.syscall(SYS_semctl, 'int', id, 'int', num, 'int', GETPID), () => `semctl(${id}, ${num}, GETPID)`);
}
