// The System V semaphore sets and message queues a frozen process uses (docs/state.md, "System V
// semaphores and message queues"): keyed kernel objects that outlive it, which nothing in
// /proc/PID lists. What the kernel does tell: a queue's last sender and receiver
// (/proc/sysvipc/msg lspid, lrpid), a semaphore's last operator (semctl GETPID, where cr may read
// the set), and the call a thread waits in (/proc/PID/task/TID/syscall: semop, semtimedop,
// msgsnd and msgrcv take the id first). Each is recorded by kind, key and id: restart finds it
// still there or refuses (src/restart/sysv-ipc.ts).
import { SyscallError } from '../../bridge/errno.js';
import { semLastPid } from '../../bridge/sysv-ipc.js';
import type { SysvIpcObject } from '../image/process-head.js';
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

/** The semaphore sets and message queues pid (threads `tids`, the leader included) uses, in id order. */
export function readSysvIpc(pid: number, tids: readonly number[]): SysvIpcObject[] {
  const waits = waitedOn(pid, tids);
  const found: SysvIpcObject[] = [];
  for (const q of listing('msg')) {
    const id = q('msqid');
    if (q('lspid') === pid || q('lrpid') === pid || waits.some((w) => w.kind === 'msg' && w.id === id)) found.push({ kind: 'msg', key: q('key'), id });
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
    if (used) found.push({ kind: 'sem', key: s('key'), id });
  }
  return found.sort((a, b) => (a.kind === b.kind ? a.id - b.id : a.kind < b.kind ? -1 : 1));
}
