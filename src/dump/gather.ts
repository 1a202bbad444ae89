// Gathering a frozen process's fd table: /proc for each fd, kcmp(KCMP_FILE) to find which fds
// share an open file description, inodes to find which descriptions are ends of one pipe.
// Pipe bytes are not read here (pipes.ts does that); the table's pipes have empty data.
import { kcmpFile } from '../../bridge/kcmp.js';
import { CrError } from '../errors.js';
import { DEFAULT_PIPE_CAPACITY, type Desc, type Fd, type FdTable, type Pipe } from '../model/fdtable.js';
import { listFds, readProcFd, type ProcFd } from '../proc/fds.js';
import { classify, isUnsupported, type Recognised, type Unsupported } from './kinds.js';
import { readNofile } from '../proc/limits.js';

export interface Gathered {
  /** the table, each pipe with empty data and a placeholder capacity until pipes.ts fills them */
  table: FdTable;
  /** for each pipe id, its descriptions' fds (lowest fd of each) with their flags */
  pipeEnds: Map<number, Array<{ fd: number; flags: number }>>;
  dropped: Unsupported[];
}

interface Entry {
  proc: ProcFd;
  kind: Recognised;
}

/**
 * Group entries into open file descriptions. Fds of one description share inode, flags and
 * position, so only entries alike in those are compared, by sorting them with kcmp's total order
 * on struct file pointers: equal neighbours are one description.
 */
function groupDescriptions(pid: number, entries: Entry[]): Entry[][] {
  const buckets = new Map<string, Entry[]>();
  for (const e of entries) {
    const key = `${e.proc.stat.dev}:${e.proc.stat.ino}:${e.proc.flags}:${e.proc.pos}`;
    const bucket = buckets.get(key);
    if (bucket) bucket.push(e);
    else buckets.set(key, [e]);
  }
  const order = (a: Entry, b: Entry): number => {
    const r = kcmpFile(pid, a.proc.fd, pid, b.proc.fd);
    if (r === 3) throw new Error(`kcmp(KCMP_FILE) cannot order fds ${a.proc.fd} and ${b.proc.fd} of ${pid}`);
    return r === 0 ? 0 : r === 1 ? -1 : 1;
  };
  const groups: Entry[][] = [];
  for (const bucket of buckets.values()) {
    if (bucket.length === 1) {
      groups.push(bucket);
      continue;
    }
    bucket.sort(order);
    let current: Entry[] = [bucket[0]!];
    for (let i = 1; i < bucket.length; i++) {
      if (order(current[0]!, bucket[i]!) === 0) current.push(bucket[i]!);
      else {
        groups.push(current);
        current = [bucket[i]!];
      }
    }
    groups.push(current);
  }
  for (const g of groups) g.sort((a, b) => a.proc.fd - b.proc.fd);
  // Canonical ids: descriptions in order of their lowest fd.
  groups.sort((a, b) => a[0]!.proc.fd - b[0]!.proc.fd);
  return groups;
}

export interface GatherOptions {
  /** leave the fds cr cannot dump out (listed in `dropped`) instead of refusing the process */
  skipUnsupported: boolean;
  /** the refusal may point at --skip-unsupported: fd-table dumps only (a restarted process would miss the fds) */
  offerSkip: boolean;
}

/** `fd 5 is a socket, which cr cannot dump (why)`: one fd cr cannot dump, for a refusal. */
export const describeUnsupported = (u: Unsupported): string => `fd ${u.fd} is ${article(u.kind)} ${u.kind}, which cr cannot dump (${u.reason})`;

/** Every fd of a frozen process that cr cannot dump (from /proc alone). */
export function unsupportedFds(pid: number): Unsupported[] {
  return listFds(pid).map((fd) => classify(readProcFd(pid, fd))).filter(isUnsupported);
}

/**
 * Read the fd table of a frozen process. Unsupported fds are refused, every one of them at once,
 * or dropped when skipping. `lap` is told when each step ends ('proc', 'kcmp'), for timings.
 */
export function gather(pid: number, opts: GatherOptions, lap: (step: string) => void = () => {}): Gathered {
  const entries: Entry[] = [];
  const dropped: Unsupported[] = [];
  for (const fd of listFds(pid)) {
    const proc = readProcFd(pid, fd);
    const kind = classify(proc);
    if (isUnsupported(kind)) dropped.push(kind);
    else entries.push({ proc, kind });
  }
  if (dropped.length > 0 && !opts.skipUnsupported) {
    const skip = opts.offerSkip ? `; --skip-unsupported leaves ${dropped.length === 1 ? 'it' : 'them'} out` : '';
    throw new CrError(dropped.map(describeUnsupported).join('; ') + skip);
  }
  lap('proc');
  const groups = groupDescriptions(pid, entries);
  lap('kcmp');

  const fds: Fd[] = [];
  const descs: Desc[] = [];
  const pipes: Pipe[] = [];
  const pipeIds = new Map<string, number>();
  const pipePaths = new Map<number, string>();
  const pipeEnds = new Map<number, Array<{ fd: number; flags: number }>>();
  groups.forEach((group, id) => {
    const first = group[0]!;
    const k = first.kind;
    let desc: Desc;
    if (k.pipeKey !== undefined) {
      let pipeId = pipeIds.get(k.pipeKey);
      if (pipeId === undefined) {
        pipeId = pipes.length;
        pipeIds.set(k.pipeKey, pipeId);
        pipes.push({ id: pipeId, capacity: DEFAULT_PIPE_CAPACITY, data: '' });
        pipeEnds.set(pipeId, []);
      }
      pipeEnds.get(pipeId)!.push({ fd: first.proc.fd, flags: first.proc.flags });
      desc = k.describe(id, { id: pipeId, path: pipePaths.get(pipeId) });
      if ('path' in desc && !pipePaths.has(pipeId)) pipePaths.set(pipeId, desc.path);
    } else {
      desc = k.describe(id, undefined);
    }
    descs.push(desc);
    for (const e of group) fds.push({ fd: e.proc.fd, desc: id, cloexec: e.proc.cloexec });
  });
  fds.sort((a, b) => a.fd - b.fd);
  // Descriptions that name others (an epoll's targets) find them now that every fd has its id.
  const descAt = new Map(fds.map((f) => [f.fd, f.desc]));
  const withIds = entries.map((e) => ({ proc: e.proc, desc: descAt.get(e.proc.fd)! }));
  const unresolved: Unsupported[] = [];
  groups.forEach((group, id) => {
    const why = group[0]!.kind.resolve?.(descs[id]!, pid, withIds);
    if (why) unresolved.push(why);
  });
  if (unresolved.length > 0) throw new CrError(unresolved.map(describeUnsupported).join('; '));
  const limit = readNofile(pid);
  // A process may hold fds at or above a soft limit lowered after they were opened; the model
  // (every fd below rlimit.soft) cannot hold such a table.
  const high = fds.find((f) => f.fd >= limit.soft);
  if (high) throw new CrError(`fd ${high.fd} is not below the process's soft RLIMIT_NOFILE ${limit.soft}, which an image cannot express`);
  return { table: { fds, descs, pipes, rlimit: { soft: limit.soft, hard: limit.hard } }, pipeEnds, dropped };
}

const article = (word: string): string => (/^[aeiou]/i.test(word) ? 'an' : 'a');
