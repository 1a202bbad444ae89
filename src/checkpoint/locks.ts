// The file locks and leases a frozen process holds, from the `lock:` lines of its fds' fdinfo
// (fs/locks.c show_fd_locks): each fd lists the locks set through its open file description and
// owned by the process (POSIX locks and leases) or by that description (flock and OFD locks), so
// restart can set each again on the same fd, that is on the same description. What cr cannot
// set again (NFS delegations, a lease being broken, mandatory locks) is a reason to refuse.
import type { FileLock } from '../image/process-head.js';
import type { ProcFd } from '../proc/fds.js';

const LINE = /^lock:\s+\d+:\s+(\S+)\s+(\S+)\s+(READ|WRITE|UNLCK)\s+(-?\d+)\s+\S+\s+(\d+)\s+(\d+|EOF)\s*$/;
const KINDS: Record<string, FileLock['kind']> = { FLOCK: 'flock', POSIX: 'posix', OFDLCK: 'ofd', LEASE: 'lease' };

export interface ReadLocks {
  locks: FileLock[];
  /** one reason per lock cr cannot carry */
  refusals: string[];
}

/** The locks of frozen process pid, from its fds as readProcFds read them (ascending). */
export function readLocks(pid: number, fds: readonly ProcFd[]): ReadLocks {
  const locks: FileLock[] = [];
  const refusals: string[] = [];
  for (const { fd, text } of fds) {
    if (!text.includes('\nlock:')) continue;
    for (const line of text.split('\n')) {
      if (!line.startsWith('lock:')) continue;
      const m = LINE.exec(line);
      const kind = m ? KINDS[m[1]!] : undefined;
      const start = m ? Number(m[5]) : NaN;
      const end = m?.[6] === 'EOF' ? null : Number(m?.[6]);
      if (!m || !kind || m[3] === 'UNLCK' || !Number.isSafeInteger(start) || (end !== null && !Number.isSafeInteger(end))) {
        refusals.push(`process ${pid} holds a lock on fd ${fd} that cr cannot set again (${line.slice(5).trim().replace(/\s+/g, ' ')})`);
        continue;
      }
      if (kind === 'lease' ? m[2] !== 'ACTIVE' : m[2] !== 'ADVISORY') {
        refusals.push(`process ${pid} holds a ${m[2]!.toLowerCase()} ${kind} on fd ${fd}, which cr cannot set again`);
        continue;
      }
      locks.push({ fd, kind, write: m[3] === 'WRITE', start, end });
    }
  }
  return { locks, refusals };
}
