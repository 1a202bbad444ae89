// A process tree as /proc shows it: each process's children (/proc/PID/task/TID/children, one
// list per thread: a child belongs to the thread that forked it) and what the image keeps of a
// member (parent, process group, session, job-control stop, a zombie's wait status).
import { readdirSync } from 'node:fs';
import { decodeWaitStatus, type TreeMember } from '../model/tree.js';
import { readIdentity } from './process.js';
import { readProc } from './read.js';

export interface ProcStat {
  /** one-letter state (R, S, D, T, t, Z, X, ...) */
  state: string;
  comm: string;
  ppid: number;
  pgid: number;
  sid: number;
  /** tty_nr (field 7): the controlling terminal's device number, 0 for none */
  ttyNr: number;
  /** tpgid (field 8): the foreground process group of that terminal, -1 for none */
  tpgid: number;
  /** exit_code (field 52): the wait status a zombie's parent will get */
  exitCode: number;
}

/** /proc/PID/stat's fields the tree needs (throws if the process is gone). */
export function readStat(pid: number): ProcStat {
  const stat = readProc(`/proc/${pid}/stat`);
  const open = stat.indexOf('(');
  const close = stat.lastIndexOf(')');
  // Field n (1-based, proc(5)) after the parenthesised comm, which may hold spaces and parentheses.
  const rest = stat.slice(close + 2).trim().split(' ');
  const field = (n: number): number => Number(rest[n - 3]);
  return {
    state: rest[0]!,
    comm: Buffer.from(stat.slice(open + 1, close), 'latin1').toString('utf8'),
    ppid: field(4),
    pgid: field(5),
    sid: field(6),
    ttyNr: field(7),
    tpgid: field(8),
    exitCode: field(52),
  };
}

/** The children of pid, every thread's, ascending; [] for a process gone meanwhile. */
export function childrenOf(pid: number): number[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const tid of tids) {
    let text: string;
    try {
      text = readProc(`/proc/${pid}/task/${tid}/children`);
    } catch {
      continue; // the thread ended
    }
    for (const c of text.trim().split(' ')) if (c !== '') out.push(Number(c));
  }
  return out.sort((a, b) => a - b);
}

/**
 * pid and its descendants in pre-order (a parent before its children, siblings by pid). Exact only
 * while none of them can fork or exit, that is once they are all frozen: the freeze lists again
 * until nothing new appears.
 */
export function listTree(pid: number): Array<{ pid: number; ppid: number | null }> {
  const out: Array<{ pid: number; ppid: number | null }> = [];
  const walk = (p: number, parent: number | null): void => {
    out.push({ pid: p, ppid: parent });
    for (const c of childrenOf(p)) walk(c, p);
  };
  walk(pid, null);
  return out;
}

/** What the image's TREE record keeps of process pid. */
export function readMember(pid: number): TreeMember {
  const stat = readStat(pid);
  const zombie = stat.state === 'Z' ? decodeWaitStatus(stat.exitCode) : null;
  // A zombie's memory is gone: its cmdline reads empty, its comm from stat.
  const identity = zombie ? { comm: stat.comm, cmdline: [] } : readIdentity(pid);
  return {
    pid, ppid: stat.ppid, pgid: stat.pgid, sid: stat.sid, comm: identity.comm, cmdline: identity.cmdline,
    stopped: stat.state === 'T', zombie,
    ...(stat.ttyNr !== 0 && zombie === null ? { ctty: { rdev: stat.ttyNr, ...(stat.tpgid > 0 ? { fg: stat.tpgid } : {}) } } : {}),
  };
}
