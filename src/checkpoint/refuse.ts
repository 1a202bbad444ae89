// What makes a process one the whole-process checkpoint cannot take, found before anything is
// written: seccomp filters in any thread (which cr cannot read back),
// a deleted working directory, tracing other processes (they would be left without their
// tracer), child processes (they would lose their parent), and the mappings and fds restart
// cannot recreate (judged by maps.ts and src/dump/kinds.ts). All of them are named at once, so
// the user learns in one try everything that stands in the way.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { describeUnsupported, unsupportedFds } from '../dump/gather.js';
import { CrError } from '../errors.js';
import { listThreads, readStatus } from '../proc/process.js';
import { inventoryReasons } from './inventory.js';
import { unsupportedMappings } from './maps.js';

/** What about the process itself (not its mappings or fds) stands in the way. */
function processBlockers(pid: number): string[] {
  const reasons: string[] = [];
  const threads = listThreads(pid);
  // Seccomp filters and children belong to each thread (a child's parent is the thread that forked it).
  const filtered = threads.filter((tid) => readStatus(tid).seccomp !== 0);
  if (filtered.length > 0) reasons.push(`process ${pid} runs under seccomp${threads.length > 1 ? ` (thread${filtered.length > 1 ? 's' : ''} ${filtered.join(', ')})` : ''}, whose filters cr cannot read back`);
  // A working directory removed since: restart could not chdir back into it.
  if (readlinkSync(`/proc/${pid}/cwd`).endsWith(' (deleted)')) reasons.push(`process ${pid}'s working directory was deleted`);
  const tracees = tracedBy(new Set(threads));
  if (tracees.length > 0) reasons.push(`process ${pid} traces ${tracees.map((t) => `pid ${t}`).join(', ')} with ptrace, which cr cannot carry over`);
  const children = threads.flatMap((tid) => readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1').trim().split(' ').filter((c) => c !== ''));
  if (children.length > 0) {
    reasons.push(`process ${pid} has child processes (${children.map((c) => `pid ${c}`).join(', ')}), which cr cannot carry over`);
  }
  return reasons;
}

/** Refuse, in one line naming every reason, a frozen process the whole-process checkpoint cannot take. */
export function refuseUnsupported(pid: number): void {
  const reasons = [...processBlockers(pid), ...inventoryReasons(pid), ...unsupportedMappings(pid), ...unsupportedFds(pid).map(describeUnsupported)];
  if (reasons.length > 0) throw new CrError(reasons.join('; '));
}

/**
 * Threads anywhere on the system whose TracerPid (the tracing thread's id) is one of `tracers`
 * (a process's other threads read only when it has some).
 */
function tracedBy(tracers: Set<number>): number[] {
  const out: number[] = [];
  const check = (path: string, tid: number): number => {
    let status: string;
    try {
      status = readFileSync(path, 'latin1');
    } catch {
      return 0; // gone
    }
    if (tracers.has(Number(/^TracerPid:\s*(\d+)/m.exec(status)?.[1]))) out.push(tid);
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
