// What makes a process one the whole-process checkpoint cannot take, found before anything is
// written: more than one thread, seccomp filters (which cr cannot read back),
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
  if (threads.length > 1) reasons.push(`process ${pid} has ${threads.length} threads: cr checkpoints single-threaded processes only`);
  if (readStatus(pid).seccomp !== 0) reasons.push(`process ${pid} runs under seccomp, whose filters cr cannot read back`);
  // A working directory removed since: restart could not chdir back into it.
  if (readlinkSync(`/proc/${pid}/cwd`).endsWith(' (deleted)')) reasons.push(`process ${pid}'s working directory was deleted`);
  const tracees = tracedBy(pid);
  if (tracees.length > 0) reasons.push(`process ${pid} traces ${tracees.map((t) => `pid ${t}`).join(', ')} with ptrace, which cr cannot carry over`);
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1').trim();
  if (children !== '') {
    reasons.push(`process ${pid} has child processes (${children.split(' ').map((c) => `pid ${c}`).join(', ')}), which cr cannot carry over`);
  }
  return reasons;
}

/** Refuse, in one line naming every reason, a frozen process the whole-process checkpoint cannot take. */
export function refuseUnsupported(pid: number): void {
  const reasons = [...processBlockers(pid), ...inventoryReasons(pid), ...unsupportedMappings(pid), ...unsupportedFds(pid).map(describeUnsupported)];
  if (reasons.length > 0) throw new CrError(reasons.join('; '));
}

/** Threads anywhere on the system whose TracerPid is pid (a process's other threads read only when it has some). */
function tracedBy(pid: number): number[] {
  const out: number[] = [];
  const check = (path: string, tid: number): number => {
    let status: string;
    try {
      status = readFileSync(path, 'latin1');
    } catch {
      return 0; // gone
    }
    if (Number(/^TracerPid:\s*(\d+)/m.exec(status)?.[1]) === pid) out.push(tid);
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
