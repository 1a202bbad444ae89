// System V semaphore sets and message queues, read without changing them: which process operated
// last on a semaphore (semctl GETPID, the one thing about who uses a set the kernel tells: its
// /proc/sysvipc/sem line names no process), a set's or queue's IPC_STAT, a set's values (GETALL)
// and a queue's messages, each copied by its index (msgrcv MSG_COPY, which leaves it queued), and
// IPC_RMID (of a shared memory segment too). Every call but GETPID's and IPC_RMID's needs read
// permission on the object (or CAP_IPC_OWNER).
import { check } from './errno.js';
import { libc } from './libc.js';

const SYS_shmctl = 31;
const SYS_semctl = 66;
const SYS_msgrcv = 70;
const SYS_msgctl = 71;
const IPC_RMID = 0;
const IPC_STAT = 2;
const GETPID = 11;
const GETALL = 13;
const IPC_NOWAIT = 0o4000;
const MSG_COPY = 0o40000;

/** struct ipc64_perm (x86_64), the head of semid64_ds and msqid64_ds. */
export interface IpcPerm {
  key: number;
  uid: number;
  gid: number;
  cuid: number;
  cgid: number;
  /** permission bits (and, for a segment, SHM_DEST and SHM_LOCKED) */
  mode: number;
}

function perm(b: Buffer): IpcPerm {
  return { key: b.readInt32LE(0), uid: b.readUInt32LE(4), gid: b.readUInt32LE(8), cuid: b.readUInt32LE(12), cgid: b.readUInt32LE(16), mode: b.readUInt32LE(20) };
}

/** The pid of the last process that changed semaphore `num` of set `id` (0: none yet). Needs read permission on the set. */
export function semLastPid(id: number, num: number): number {
  return check(libc.syscall(SYS_semctl, 'int', id, 'int', num, 'int', GETPID), () => `semctl(${id}, ${num}, GETPID)`);
}

/** Set `id`'s IPC_STAT (struct semid64_ds, x86_64: perm, otime, ctime, each time followed by an unused word, nsems). */
export function semStat(id: number): IpcPerm & { nsems: number } {
  const b = Buffer.alloc(104);
  check(libc.syscall(SYS_semctl, 'int', id, 'int', 0, 'int', IPC_STAT, 'void *', b), () => `semctl(${id}, 0, IPC_STAT)`);
  return { ...perm(b), nsems: Number(b.readBigUInt64LE(80)) };
}

/** The values of set `id`'s `nsems` semaphores (GETALL: read at once). */
export function semValues(id: number, nsems: number): number[] {
  const b = Buffer.alloc(Math.max(2, nsems * 2));
  check(libc.syscall(SYS_semctl, 'int', id, 'int', 0, 'int', GETALL, 'void *', b), () => `semctl(${id}, 0, GETALL)`);
  return Array.from({ length: nsems }, (_, i) => b.readUInt16LE(i * 2));
}

/** What a queue's IPC_STAT says (struct msqid64_ds, x86_64: perm, stime, rtime, ctime, cbytes, qnum, qbytes, lspid, lrpid): its perm, queued messages and bytes, limit, last send and receive. */
export interface MsgStat extends IpcPerm {
  qnum: number;
  cbytes: number;
  qbytes: number;
  stime: number;
  rtime: number;
}

export function msgStat(id: number): MsgStat {
  const b = Buffer.alloc(120);
  check(libc.syscall(SYS_msgctl, 'int', id, 'int', IPC_STAT, 'void *', b), () => `msgctl(${id}, IPC_STAT)`);
  const at = (offset: number): number => Number(b.readBigInt64LE(offset));
  return { ...perm(b), stime: at(48), rtime: at(56), cbytes: at(72), qnum: at(80), qbytes: at(88) };
}

/**
 * A copy of message `index` (0: the oldest) of queue `id`, left queued (MSG_COPY, which the
 * kernel has with CONFIG_CHECKPOINT_RESTORE); `max`: the most text bytes it may have. Throws
 * ENOMSG past the last, E2BIG for a longer one.
 */
export function msgCopy(id: number, index: number, max: number): { type: bigint; text: Buffer } {
  const b = Buffer.alloc(8 + max);
  const n = check(libc.syscall(SYS_msgrcv, 'int', id, 'void *', b, 'ulong', max, 'long', index, 'int', IPC_NOWAIT | MSG_COPY), () => `msgrcv(${id}, ${index}, MSG_COPY)`);
  return { type: b.readBigInt64LE(0), text: Buffer.from(b.subarray(8, 8 + n)) };
}

/**
 * Remove set (`sem`), queue (`msg`) or segment (`shm`: gone once no process has it attached) `id`
 * (IPC_RMID: the creator's, the owner's or CAP_SYS_ADMIN's to do).
 */
export function removeIpc(kind: 'sem' | 'msg' | 'shm', id: number): void {
  if (kind === 'sem') check(libc.syscall(SYS_semctl, 'int', id, 'int', 0, 'int', IPC_RMID), () => `semctl(${id}, IPC_RMID)`);
  else if (kind === 'msg') check(libc.syscall(SYS_msgctl, 'int', id, 'int', IPC_RMID, 'void *', null), () => `msgctl(${id}, IPC_RMID)`);
  else check(libc.syscall(SYS_shmctl, 'int', id, 'int', IPC_RMID, 'void *', null), () => `shmctl(${id}, IPC_RMID)`);
}
