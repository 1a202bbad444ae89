// What makes a process one the whole-process checkpoint cannot take, found before anything is
// written: seccomp filters in any thread (which cr cannot read back), tracing other processes
// (they would be left without their tracer: refuseTracers, once the processes' own reads tell
// which may), pidfds of processes outside the tree (nothing to refer to after restart), and the
// mappings and fds restart cannot recreate (judged by maps.ts and
// src/dump/kinds.ts). Its children are not in the way: they are members of the tree dumped with
// it. All of them, for every member of the tree, are named at once, so the user learns in one try
// everything that stands in the way.
import { readdirSync } from 'node:fs';
import { describeUnsupported, unsupportedFds } from '../dump/gather.js';
import { CrError } from '../errors.js';
import type { ProcFd } from '../proc/fds.js';
import { listThreads, readStatus } from '../proc/process.js';
import { inventoryReasons } from './inventory.js';
import { unsupportedMappings, type Maps } from './maps.js';
import { readProc } from '../proc/read.js';

/** What about the process itself (not its mappings or fds) stands in the way. */
function processBlockers(pid: number): string[] {
  const threads = listThreads(pid);
  // Seccomp filters belong to each thread.
  const filtered = threads.filter((tid) => readStatus(tid).seccomp !== 0);
  return filtered.length > 0 ? [`process ${pid} runs under seccomp${threads.length > 1 ? ` (thread${filtered.length > 1 ? 's' : ''} ${filtered.join(', ')})` : ''}, whose filters cr cannot read back`] : [];
}

/**
 * The pidfds among a member's fds that refer to a process outside the tree (`members`, zombies
 * included): restarted, they would have no process to refer to (src/kinds/pidfd.ts takes the
 * others).
 */
function pidfdsOutside(fds: readonly ProcFd[], members: ReadonlySet<number>): string[] {
  return fds.flatMap((e) => {
    if (e.link !== 'anon_inode:[pidfd]') return [];
    const target = Number(e.info.get('Pid'));
    return target > 0 && !members.has(target) ? [`fd ${e.fd} is a pidfd of pid ${target}, which is not a process of the dumped tree`] : [];
  });
}

/**
 * Refuse, in one line naming every reason of every member, frozen processes (a tree's live
 * members) the whole-process checkpoint cannot take (`connections`: the TCP connections it may
 * not carry, src/dump/connections.ts). In a tree, what does not name its process (a mapping, an
 * fd) is said with the member's pid. `fdsOf`, `mapsOf`: each member's fds and mappings (read once
 * for this and the dump). `members`: every member, zombies included.
 */
export function refuseUnsupported(
  pids: number[], fdsOf: ReadonlyMap<number, readonly ProcFd[]>, mapsOf: ReadonlyMap<number, Maps>, traced: Array<{ pid: number; tracer: number }> = [], members: readonly number[] = pids, connections: readonly string[] = [],
): void {
  const tree = new Set(members);
  // A member traced by another member is said once, as what its tracer does (refuseTracers).
  const memberThreads = new Set(pids.flatMap((pid) => listThreads(pid)));
  const tracedOutside = traced.filter((t) => !memberThreads.has(t.tracer)).map((t) => `process ${t.pid} is traced by pid ${t.tracer}, which cr cannot carry over`);
  const reasons = pids.flatMap((pid) => {
    const fds = fdsOf.get(pid)!;
    const maps = mapsOf.get(pid)!;
    const own = [...unsupportedMappings(pid, pids, maps), ...unsupportedFds(fds).map(describeUnsupported), ...pidfdsOutside(fds, tree)];
    return [...processBlockers(pid), ...inventoryReasons(pid, fds, maps.raw), ...(pids.length > 1 ? own.map((r) => `process ${pid}: ${r}`) : own)];
  });
  reasons.push(...tracedOutside, ...connections);
  if (reasons.length > 0) throw new CrError(reasons.join('; '));
}

/**
 * Refuse, in one line, frozen processes (a tree's live members) that trace others: restarted, the
 * tracees would be left without their tracer. `suspects`: the members that have children or
 * tracees (waitid in each, injected-reads.ts); a process with neither traces nobody, and when no
 * member has any, the scan of every thread on the machine is not needed.
 */
export function refuseTracers(suspects: readonly number[]): void {
  if (suspects.length === 0) return;
  const tracers = tracerMap();
  const reasons = suspects.flatMap((pid) => {
    // A tracer is a thread (TracerPid is its id): whatever any of the process's threads traces.
    const tracees = listThreads(pid).flatMap((tid) => tracers.get(tid) ?? []);
    return tracees.length > 0 ? [`process ${pid} traces ${tracees.map((t) => `pid ${t}`).join(', ')} with ptrace, which cr cannot carry over`] : [];
  });
  if (reasons.length > 0) throw new CrError(reasons.join('; '));
}

/** Every traced thread on the system, by its tracer's thread id (TracerPid) (a process's other threads read only when it has some). */
function tracerMap(): Map<number, number[]> {
  const out = new Map<number, number[]>();
  const check = (path: string, tid: number): number => {
    let status: string;
    try {
      status = readProc(path);
    } catch {
      return 0; // gone
    }
    const tracer = Number(/^TracerPid:\s*(\d+)/m.exec(status)?.[1]);
    if (tracer !== 0) out.set(tracer, [...(out.get(tracer) ?? []), tid]);
    return Number(/^Threads:\s*(\d+)/m.exec(status)?.[1] ?? 1);
  };
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    if (check(`/proc/${entry}/status`, Number(entry)) <= 1) continue;
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${entry}/task`);
    } catch {
      continue;
    }
    for (const tid of tids) if (tid !== entry) check(`/proc/${entry}/task/${tid}/status`, Number(tid));
  }
  return out;
}
