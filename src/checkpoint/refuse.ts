// What makes a process one the whole-process checkpoint cannot take, found before anything is
// written: more than one thread, or a process that traces others (its tracees would be left
// without their tracer, and restart cannot re-attach them). Mappings and fds are judged where
// they are read (maps.ts, src/dump/kinds.ts).
import { readdirSync, readFileSync } from 'node:fs';
import { CrError } from '../errors.js';
import { listThreads } from '../proc/process.js';

export function refuseUnsupported(pid: number): void {
  const threads = listThreads(pid);
  if (threads.length > 1) {
    throw new CrError(`process ${pid} has ${threads.length} threads: cr checkpoints single-threaded processes only`);
  }
  const tracees = tracedBy(pid);
  if (tracees.length > 0) {
    throw new CrError(`process ${pid} traces ${tracees.map((t) => `pid ${t}`).join(', ')} with ptrace, which cr cannot carry over`);
  }
}

/** Threads anywhere on the system whose TracerPid is pid. */
function tracedBy(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${entry}/task`);
    } catch {
      continue; // gone
    }
    for (const tid of tids) {
      try {
        const status = readFileSync(`/proc/${entry}/task/${tid}/status`, 'latin1');
        if (Number(/^TracerPid:\s*(\d+)/m.exec(status)?.[1]) === pid) out.push(Number(tid));
      } catch {
        // gone
      }
    }
  }
  return out;
}
