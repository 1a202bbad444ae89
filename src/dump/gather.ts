// Gathering the fd tables of frozen processes (one, or a tree's members): what /proc says of each
// fd (read once, src/proc/fds.ts), kcmp(KCMP_FILE) to find which fds share an open file description (within a process or across
// processes: a description inherited at fork is one struct file), inodes to find which
// descriptions are ends of one pipe, wherever its ends are. Pipe bytes are not read here
// (pipes.ts does that); the table's pipes have empty data.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { pairPtys } from '../kinds/pty.js';
import { kcmpFile } from '../../bridge/kcmp.js';
import { printable } from '../printable.js';
import { CrError } from '../errors.js';
import { DEFAULT_PIPE_CAPACITY, viewOf, type Desc, type Fd, type FdTable, type FdTables, type Pipe, type ProcessFds } from '../model/fdtable.js';
import type { ProcFd } from '../proc/fds.js';
import { classify, isUnsupported, type Recognised, type Unsupported } from './kinds.js';
import { readNofile } from '../proc/limits.js';

/** Where a pipe has a description: the process, its lowest fd of it, the description's flags. */
export interface PipeEnd {
  pid: number;
  fd: number;
  flags: number;
}

/** --max-deleted-size's default: 64 MiB of a deleted file's or memfd's data. */
export const DEFAULT_MAX_CONTENTS = 64 << 20;

export interface Gathered {
  /** the table, each pipe with empty data and a placeholder capacity until pipes.ts fills them */
  table: FdTable;
  /** for each pipe id, its descriptions' fds (lowest fd of each) with their flags */
  pipeEnds: Map<number, PipeEnd[]>;
  dropped: Unsupported[];
}

/** What gatherTree found: every member's fds over the shared descriptions and pipes. */
export interface GatheredTree {
  tables: FdTables;
  pipeEnds: Map<number, PipeEnd[]>;
}

interface Entry {
  /** index of the process in the list gathered */
  member: number;
  /** its place among every entry gathered, which are by process, then fd */
  index: number;
  pid: number;
  proc: ProcFd;
  kind: Recognised;
}

const before = (a: Entry, b: Entry): number => a.index - b.index;

/**
 * Group entries into open file descriptions. Fds of one description share mount, inode, flags and
 * position (fdinfo's mnt_id, ino, flags, pos), so only entries alike in those are compared, by sorting them with kcmp's total order
 * on struct file pointers: equal neighbours are one description. Canonical order: each group's
 * entries by process then fd, the groups by their first entry.
 */
function groupDescriptions(entries: Entry[]): Entry[][] {
  // By inode first (a number: no key made per fd), then by mount, flags and position within it
  // (a pipe's inode holds its two ends, whose flags differ: a short scan).
  const byIno = new Map<number, Entry[][]>();
  for (const e of entries) {
    const p = e.proc;
    const alike = byIno.get(p.ino);
    if (alike === undefined) {
      byIno.set(p.ino, [[e]]);
      continue;
    }
    const bucket = alike.find(([f]) => f!.proc.mnt === p.mnt && f!.proc.flags === p.flags && f!.proc.posText === p.posText);
    if (bucket) bucket.push(e);
    else alike.push([e]);
  }
  const order = (a: Entry, b: Entry): number => {
    const r = kcmpFile(a.pid, a.proc.fd, b.pid, b.proc.fd);
    if (r === 3) throw new Error(`kcmp(KCMP_FILE) cannot order fd ${a.proc.fd} of ${a.pid} and fd ${b.proc.fd} of ${b.pid}`);
    return r === 0 ? 0 : r === 1 ? -1 : 1;
  };
  // Most buckets are one description's fds (an fd and its dups): a pair needs one kcmp, not a sort and a pass.
  const pairOrder = (a: Entry, b: Entry): Entry[][] => (order(a, b) === 0 ? [[a, b]] : [[a], [b]]);
  const groups: Entry[][] = [];
  for (const alike of byIno.values()) for (const bucket of alike) {
    if (bucket.length === 1) {
      groups.push(bucket);
      continue;
    }
    if (bucket.length === 2) {
      groups.push(...pairOrder(bucket[0]!, bucket[1]!));
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
  // A group of one or two is in order already (a pair kept as found); a larger one was sorted by kcmp.
  for (const g of groups) if (g.length > 2) g.sort(before);
  // By first entry: each entry leads at most one group.
  const led: Array<Entry[] | undefined> = new Array(entries.length);
  for (const g of groups) led[g[0]!.index] = g;
  const ordered: Entry[][] = [];
  for (const g of led) if (g !== undefined) ordered.push(g);
  return ordered;
}

export interface GatherOptions {
  /** leave the fds cr cannot dump out (listed in `dropped`) instead of refusing the process */
  skipUnsupported: boolean;
  /** the refusal may point at --skip-unsupported: fd-table dumps only (a restarted process would miss the fds) */
  offerSkip: boolean;
  /** bytes of a deleted file's or memfd's contents a dump carries (--max-deleted-size) */
  maxContents?: number;
}

/** `fd 5 is a socket, which cr cannot dump (why)`: one fd cr cannot dump, for a refusal. */
export const describeUnsupported = (u: Unsupported): string => `fd ${u.fd} is ${article(u.kind)} ${u.kind}, which cr cannot dump (${u.reason})`;

/** Every fd of a frozen process that cr cannot dump (from what /proc says of them alone). */
export function unsupportedFds(fds: readonly ProcFd[]): Unsupported[] {
  return fds.map(classify).filter(isUnsupported);
}

/**
 * The fd table of a frozen process, from its fds as readProcFds read them. Unsupported fds are
 * refused, every one of them at once, or dropped when skipping. `lap` is told when each step ends
 * ('proc', 'kcmp'), for timings.
 */
export function gather(pid: number, fds: readonly ProcFd[], opts: GatherOptions, lap: (step: string) => void = () => {}): Gathered {
  const dropped: Unsupported[] = [];
  const entries: Entry[] = [];
  readEntries(0, pid, fds, dropped, entries);
  const outside = peersOutside(entries, [fds]);
  if ((dropped.length > 0 && !opts.skipUnsupported) || outside.length > 0) {
    const skip = opts.offerSkip && dropped.length > 0 ? `; --skip-unsupported leaves ${dropped.length === 1 ? 'it' : 'them'} out` : '';
    throw new CrError([...(opts.skipUnsupported ? [] : dropped.map(describeUnsupported)), ...outside].join('; ') + skip);
  }
  lap('proc');
  const groups = groupDescriptions(entries);
  lap('kcmp');
  const { tables, pipeEnds } = build([{ pid }], entries, groups, opts.maxContents ?? DEFAULT_MAX_CONTENTS);
  return { table: viewOf(tables, 0), pipeEnds, dropped };
}

/**
 * Build the fd tables of frozen processes (a tree's live members, parents first, each with its
 * parent when that is one of them) from their fds as readProcFds read them (`fds`, one list per
 * member): one description per struct file whoever holds it, one pipe per pipe whichever
 * processes hold its ends. Unsupported fds are refused (refuse.ts names them before this runs).
 */
export function gatherTree(
  procs: Array<{ pid: number; parent?: number }>,
  fds: ReadonlyArray<readonly ProcFd[]>,
  lap: (step: string) => void = () => {},
  maxContents = DEFAULT_MAX_CONTENTS,
): GatheredTree {
  const dropped: Unsupported[] = [];
  const entries: Entry[] = [];
  procs.forEach((p, i) => readEntries(i, p.pid, fds[i]!, dropped, entries));
  const outside = peersOutside(entries, fds);
  if (dropped.length > 0 || outside.length > 0) throw new CrError([...dropped.map(describeUnsupported), ...outside].join('; '));
  lap('proc');
  const groups = groupDescriptions(entries);
  lap('kcmp');
  return build(procs, entries, groups, maxContents);
}

/** The entries of a process's fds cr can dump, added to `entries`; the others go to `dropped`. */
function readEntries(member: number, pid: number, fds: readonly ProcFd[], dropped: Unsupported[], entries: Entry[]): void {
  for (const proc of fds) {
    const kind = classify(proc);
    if (isUnsupported(kind)) dropped.push(kind);
    else entries.push({ member, index: entries.length, pid, proc, kind });
  }
}

/** The tables of the grouped descriptions: ids in canonical order, each process's fds and limit. */
function build(procs: Array<{ pid: number; parent?: number }>, entries: readonly Entry[], groups: Entry[][], maxContents: number): GatheredTree {
  const fdsOf: Fd[][] = procs.map(() => []);
  const byIndex: Fd[] = new Array(entries.length);
  const descs: Desc[] = [];
  const pipes: Pipe[] = [];
  const pipeIds = new Map<string, number>();
  const pipePaths = new Map<number, string>();
  const pipeEnds = new Map<number, PipeEnd[]>();
  const pairIds = new Map<string, number>();
  groups.forEach((group, id) => {
    const first = group[0]!;
    const k = first.kind;
    let desc: Desc;
    if (k.pipeKey !== undefined) {
      let pipeId = pipeIds.get(k.pipeKey);
      if (pipeId === undefined) {
        pipeId = pipes.length;
        pipeIds.set(k.pipeKey, pipeId);
        pipes.push({ id: pipeId, capacity: DEFAULT_PIPE_CAPACITY, data: Buffer.alloc(0) });
        pipeEnds.set(pipeId, []);
      }
      pipeEnds.get(pipeId)!.push({ pid: first.pid, fd: first.proc.fd, flags: first.proc.flags });
      desc = k.describe(id, { id: pipeId, path: pipePaths.get(pipeId) });
      if ('path' in desc && !pipePaths.has(pipeId)) pipePaths.set(pipeId, desc.path);
    } else if (k.pair !== undefined) {
      let pairId = pairIds.get(k.pair.key);
      if (pairId === undefined) pairIds.set(k.pair.key, (pairId = pairIds.size));
      desc = k.describe(id, undefined, pairId);
    } else {
      desc = k.describe(id, undefined);
    }
    descs.push(desc);
    for (const e of group) byIndex[e.index] = { fd: e.proc.fd, desc: id, cloexec: e.proc.cloexec };
  });
  // Each process's fds ascending, as the entries are (by process, then fd).
  for (const e of entries) fdsOf[e.member]!.push(byIndex[e.index]!);
  // Descriptions that name others (an epoll's targets) find them now that every fd has its id,
  // among the fds of the process holding it first (its own watched fds are there). Most tables
  // (pipes, files) have none: the lists are made only for one that does.
  let dumped: Array<{ proc: ProcFd; desc: number }> | undefined;
  let withIds: Array<Array<{ proc: ProcFd; desc: number }>> = [];
  const unresolved: Unsupported[] = [];
  groups.forEach((group, id) => {
    const first = group[0]!;
    if (first.kind.resolve === undefined) return;
    if (dumped === undefined) {
      dumped = groups.flatMap((g, desc) => g.map((e) => ({ proc: e.proc, desc })));
      withIds = procs.map((_, i) => groups.flatMap((g, desc) => g.filter((e) => e.member === i).map((e) => ({ proc: e.proc, desc }))));
    }
    const why = first.kind.resolve(descs[id]!, { pid: first.pid, fds: withIds[first.member]!, dumped, maxContents });
    if (why) unresolved.push(why);
  });
  if (unresolved.length > 0) throw new CrError(unresolved.map(describeUnsupported).join('; '));
  const processes: ProcessFds[] = procs.map((p, i) => {
    const fds = fdsOf[i]!;
    const limit = readNofile(p.pid);
    // A process may hold fds at or above a soft limit lowered after they were opened; the model
    // (every fd below rlimit.soft) cannot hold such a table.
    const high = fds.find((f) => f.fd >= limit.soft);
    if (high) throw new CrError(`fd ${high.fd} of process ${p.pid} is not below its soft RLIMIT_NOFILE ${limit.soft}, which an image cannot express`);
    return { pid: p.pid, ...(p.parent === undefined ? {} : { parent: p.parent }), fds, rlimit: { soft: limit.soft, hard: limit.hard } };
  });
  // A pty's slaves held with their master by a process of the dump (the same or another member) are
  // made through the new master, not by their old path.
  return { tables: { descs: pairPtys(descs), pipes, processes }, pipeEnds };
}

/**
 * The ends of pairs (unix sockets) whose peer is held by no fd of the dump, one line each naming
 * the end and who holds the peer: such a socket cannot be made again without its peer.
 */
function peersOutside(entries: Entry[], fds: ReadonlyArray<readonly ProcFd[]>): string[] {
  const out: string[] = [];
  // Every fd's inode, supported or not: made for the first pair that asks.
  let inodes: Set<number> | undefined;
  for (const e of entries) {
    const pair = e.kind.pair;
    if (pair === undefined || pair.peer === 0) continue;
    inodes ??= new Set(fds.flatMap((list) => list.map((f) => f.ino)));
    if (inodes.has(pair.peer)) continue;
    out.push(`fd ${e.proc.fd} is ${pair.what} connected to socket:[${pair.peer}], ${holderOf(pair.peer, e.pid)}: cr restores a connection only with both its ends`);
  }
  return out;
}

/** Who holds socket inode `ino`, in words, as far as cr may look (/proc/PID/fd of every process). */
function holderOf(ino: number, self: number): string {
  const link = `socket:[${ino}]`;
  for (const name of safeList('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === self) continue;
    for (const fd of safeList(`/proc/${name}/fd`)) {
      try {
        if (readlinkSync(`/proc/${name}/fd/${fd}`) !== link) continue;
      } catch {
        continue;
      }
      let comm = '?';
      try {
        comm = readFileSync(`/proc/${name}/comm`, 'utf8').trim();
      } catch {
        // gone meanwhile
      }
      return `which process ${name} (${printable(comm)}) holds at its fd ${fd}`;
    }
  }
  return 'which no process cr can see holds (another user\'s, or the kernel\'s)';
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

// 'a unix socket', 'a userfaultfd' (a "yoo" sound), 'an epoll', 'an io_uring'.
const article = (word: string): string => (/^(?!uni|use)[aeiou]/i.test(word) ? 'an' : 'a');
