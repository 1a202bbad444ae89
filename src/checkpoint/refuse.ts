// What makes a process one the whole-process checkpoint cannot take, found before anything is
// written: more than one thread, seccomp filters and POSIX timers (which cr cannot read back),
// a deleted working directory, tracing other processes (they would be left without their
// tracer), child processes (they would lose their parent). Mappings and fds are judged where
// they are read (maps.ts, src/dump/kinds.ts).
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { CrError } from '../errors.js';
import { listThreads, readStatus } from '../proc/process.js';

export function refuseUnsupported(pid: number): void {
  const threads = listThreads(pid);
  if (threads.length > 1) {
    throw new CrError(`process ${pid} has ${threads.length} threads: cr checkpoints single-threaded processes only`);
  }
  if (readStatus(pid).seccomp !== 0) {
    throw new CrError(`process ${pid} runs under seccomp, whose filters cr cannot read back`);
  }
  const timers = readFileSync(`/proc/${pid}/timers`, 'latin1').match(/^ID: (\d+)/gm);
  if (timers) throw new CrError(`process ${pid} has ${timers.length} POSIX timer${timers.length > 1 ? 's' : ''} (timer_create), which cr cannot carry over`);
  // A working directory removed since: restart could not chdir back into it.
  if (readlinkSync(`/proc/${pid}/cwd`).endsWith(' (deleted)')) throw new CrError(`process ${pid}'s working directory was deleted`);
  const tracees = tracedBy(pid);
  if (tracees.length > 0) {
    throw new CrError(`process ${pid} traces ${tracees.map((t) => `pid ${t}`).join(', ')} with ptrace, which cr cannot carry over`);
  }
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1').trim();
  if (children !== '') {
    throw new CrError(`process ${pid} has child processes (${children.split(' ').map((c) => `pid ${c}`).join(', ')}), which cr cannot carry over`);
  }
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
