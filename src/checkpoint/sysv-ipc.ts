// The System V semaphore sets and message queues a frozen process uses (docs/state.md, "System V
// semaphores and message queues"): keyed kernel objects that outlive it, which nothing in
// /proc/PID lists. What the kernel does tell: a queue's last sender and receiver
// (/proc/sysvipc/msg lspid, lrpid), a semaphore's last operator (semctl GETPID, where cr may read
// the set), and the call a thread waits in (/proc/PID/task/TID/syscall: semop, semtimedop,
// msgsnd and msgrcv take the id first). Each is recorded by kind, key and id, with what restart
// needs to make it again should it be gone (src/restart/sysv-ipc.ts): owner, mode and values of a
// set, owner, mode, limit and every message of a queue, read without changing either (GETALL,
// msgrcv MSG_COPY). Not the processes' undo adjustments (SEM_UNDO): the kernel shows none of
// their values, nor whether a process has any (kcmp KCMP_SYSVSEM tells only whether it has an
// undo list, which every process that ever made a thread has: pthread_create shares it).
import { SyscallError } from '../../bridge/errno.js';
import { msgCopy, msgStat, semLastPid, semStat, semValues, type IpcPerm } from '../../bridge/sysv-ipc.js';
import { CrError } from '../errors.js';
import { MAX_QUEUE_BYTES } from '../image/process-format.js';
import type { SysvIpcObject, SysvIpcOwner, SysvMsgSaved, SysvSemSaved } from '../image/process-head.js';
import { readProc } from '../proc/read.js';

const SYS_semop = 65;
const SYS_msgsnd = 69;
const SYS_msgrcv = 70;
const SYS_semtimedop = 220;

/** The lines of /proc/sysvipc/NAME, each a column-name -> number lookup. */
function listing(name: 'sem' | 'msg'): Array<(column: string) => number> {
  const lines = readProc(`/proc/sysvipc/${name}`).split('\n');
  const head = lines[0]!.trim().split(/\s+/);
  return lines
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((cols) => cols.length === head.length)
    .map((cols) => (column: string) => Number(cols[head.indexOf(column)]));
}

/** The id each thread of pid waits on in a System V IPC call, by kind. */
function waitedOn(pid: number, tids: readonly number[]): Array<{ kind: 'sem' | 'msg'; id: number }> {
  const out: Array<{ kind: 'sem' | 'msg'; id: number }> = [];
  for (const tid of tids) {
    let fields: string[];
    try {
      fields = readProc(`/proc/${pid}/task/${tid}/syscall`).trim().split(' ');
    } catch {
      continue; // not cr's to read: what the other sources tell stands
    }
    const nr = Number(fields[0]);
    const id = Number(fields[1]);
    if (nr === SYS_semop || nr === SYS_semtimedop) out.push({ kind: 'sem', id });
    if (nr === SYS_msgsnd || nr === SYS_msgrcv) out.push({ kind: 'msg', id });
  }
  return out;
}

const hexKey = (key: number): string => `0x${(key >>> 0).toString(16).padStart(8, '0')}`;
const owner = (p: IpcPerm): SysvIpcOwner => ({ mode: p.mode & 0o777, uid: p.uid, gid: p.gid, cuid: p.cuid, cgid: p.cgid });
/** Reads of a queue that another process changed meanwhile, before giving up. */
const QUEUE_TRIES = 5;

/** null where cr may not read the object (no read permission): restart then finds it or refuses. */
function unreadable(err: unknown): null {
  if (err instanceof SyscallError && err.code === 'EACCES') return null;
  throw err;
}

/** Set id as it is now: owner, mode and values (GETALL reads them all at once). */
function readSet(id: number): SysvSemSaved | null {
  try {
    const st = semStat(id);
    return { ...owner(st), values: semValues(id, st.nsems) };
  } catch (err) {
    return unreadable(err);
  }
}

/**
 * Queue id as it is now: owner, mode, limit and every message, copied one by one by index. Other
 * processes may send or receive meanwhile: the copies are kept only when the queue's state
 * (messages, bytes, last send and receive times) is the same after as before.
 */
function readQueue(id: number, key: number): SysvMsgSaved | null {
  const where = `System V message queue ${id}${key !== 0 ? ` (key ${hexKey(key)})` : ''}`;
  for (let attempt = 0; attempt < QUEUE_TRIES; attempt++) {
    let before;
    try {
      before = msgStat(id);
    } catch (err) {
      return unreadable(err);
    }
    if (before.cbytes > MAX_QUEUE_BYTES) throw new CrError(`${where} holds ${before.cbytes} bytes of messages, more than the ${MAX_QUEUE_BYTES} cr keeps of a queue`);
    const messages: SysvMsgSaved['messages'] = [];
    let changed = false;
    for (let i = 0; i < before.qnum && !changed; i++) {
      try {
        const m = msgCopy(id, i, before.cbytes);
        if (m.type > BigInt(Number.MAX_SAFE_INTEGER)) throw new CrError(`${where}: a message's type ${m.type} is above 2^53, which cr does not keep`);
        messages.push({ type: Number(m.type), text: m.text });
      } catch (err) {
        // ENOMSG (taken meanwhile), E2BIG (a longer one came before it): read again.
        if (err instanceof SyscallError && (err.code === 'ENOMSG' || err.code === 'E2BIG')) changed = true;
        else throw err;
      }
    }
    const after = msgStat(id);
    if (changed || after.qnum !== before.qnum || after.cbytes !== before.cbytes || after.stime !== before.stime || after.rtime !== before.rtime) continue;
    return { ...owner(before), qbytes: before.qbytes, messages };
  }
  throw new CrError(`${where}: other processes kept sending to it or receiving from it while cr read its messages`);
}

/** The semaphore sets and message queues pid (threads `tids`, the leader included) uses, by kind and id, each with what restart makes it again from. */
export function readSysvIpc(pid: number, tids: readonly number[]): SysvIpcObject[] {
  const waits = waitedOn(pid, tids);
  const found: SysvIpcObject[] = [];
  for (const q of listing('msg')) {
    const id = q('msqid');
    if (q('lspid') === pid || q('lrpid') === pid || waits.some((w) => w.kind === 'msg' && w.id === id)) found.push({ kind: 'msg', key: q('key'), id, saved: readQueue(id, q('key')) });
  }
  for (const s of listing('sem')) {
    const id = s('semid');
    let used = waits.some((w) => w.kind === 'sem' && w.id === id);
    for (let num = 0; !used && num < s('nsems'); num++) {
      try {
        used = semLastPid(id, num) === pid;
      } catch (err) {
        // Not readable by cr (EACCES), or removed meanwhile: not one cr can tell of.
        if (!(err instanceof SyscallError)) throw err;
        break;
      }
    }
    if (used) found.push({ kind: 'sem', key: s('key'), id, saved: readSet(id) });
  }
  return found.sort((a, b) => (a.kind === b.kind ? a.id - b.id : a.kind < b.kind ? -1 : 1));
}
