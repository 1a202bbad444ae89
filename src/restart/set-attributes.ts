// Giving the husk the image's per-process attributes (docs/state.md), after its credentials are
// the image's (setCreds): the kernel then judges each as it would for the checkpointed program
// itself, so the image's author gets no more than it could get (a lower nice, a lower
// oom_score_adj, a real-time policy, a loginuid need privileges the author's process had or not).
// One that the kernel refuses is a warning naming it. Dumpable, which setCreds set to 1, and
// memory-deny-write-execute, which forbids nothing restart still does but is for good, come last.
// The attempts go in one batch (a refused one told, the rest run on), after one batch reading the
// values they may already have.
import { readFileSync } from 'node:fs';
import type { ProcessHead } from '../image/process-head.js';
import type { CallQueue } from '../inject/batch.js';
import { SYS } from '../inject/syscalls.js';
import {
  ARCH_SET_CPUID, IOPRIO_WHO_PROCESS, PR_MCE_KILL, PR_MCE_KILL_SET, PR_SET_CHILD_SUBREAPER, PR_SET_DUMPABLE, PR_SET_KEEPCAPS, PR_SET_MDWE,
  PR_SET_MEMORY_MERGE, PR_SET_PDEATHSIG, PR_SET_THP_DISABLE, PR_SET_TIMERSLACK, PR_SET_TSC, PR_THP_DISABLE_EXCEPT_ADVISED, PRIO_PROCESS,
} from '../inject/syscalls.js';
import type { Husk } from './husk.js';

const O_WRONLY = 1n;
const O_CLOEXEC = 0o2000000n;

type Attempt = (what: string, nr: number, ...args: bigint[]) => void;
type Prctl = (what: string, op: number, arg2: bigint, arg3?: bigint) => void;

/** Calls queued on q whose refusal is a warning (collected in `warnings`, in call order), not a failure. */
function attempts(q: CallQueue): { warnings: string[]; attempt: Attempt; prctl: Prctl } {
  const warnings: string[] = [];
  const attempt: Attempt = (what, nr, ...args) => q.attempt(what, nr, args, (r) => warnings.push(`${what} could not be set again (errno ${-r}): the process has cr's`));
  const prctl: Prctl = (what, op, arg2, arg3 = 0n) => attempt(what, SYS.prctl, BigInt(op), arg2, arg3, 0n, 0n);
  return { warnings, attempt, prctl };
}

/**
 * What the kernel keeps per thread, not per process: scheduling (policy, priority, nice, I/O
 * priority, CPU affinity), timer slack, keep-capabilities, the machine-check kill policy, the
 * rdtsc mode and cpuid faulting. The image holds the leader's; every thread gets them.
 */
function setTaskAttributes(husk: Husk, a: ProcessHead['attributes'], q: CallQueue, attempt: Attempt, prctl: Prctl): void {
  // What it has now, read in a batch of its own: only what differs is set.
  const ask = husk.queue();
  const param = ask.put(Buffer.alloc(4));
  ask.add('sched_getparam', SYS.sched_getparam, [0n, param]);
  ask.add('sched_getscheduler', SYS.sched_getscheduler, [0n]);
  ask.add('getpriority', SYS.getpriority, [BigInt(PRIO_PROCESS), 0n]);
  ask.add('ioprio_get', SYS.ioprio_get, [BigInt(IOPRIO_WHO_PROCESS), 0n]);
  const now = ask.run({ readBack: true });
  const [, policy, prio, ioprio] = now.results.map(Number);
  const priority = now.data!.slice(param, 4).readInt32LE(0);
  // Scheduling first: a policy change resets nothing else, and nice applies within it.
  if (policy !== a.schedPolicy || priority !== a.schedPriority) {
    attempt(`the scheduling policy ${a.schedPolicy} (priority ${a.schedPriority})`, SYS.sched_setscheduler, 0n, BigInt(a.schedPolicy), q.put(Buffer.from(new Int32Array([a.schedPriority]).buffer)));
  }
  if (20 - prio! !== a.nice) attempt(`nice ${a.nice}`, SYS.setpriority, BigInt(PRIO_PROCESS), 0n, BigInt(a.nice));
  if (ioprio !== a.ioprio) attempt(`the I/O priority 0x${a.ioprio.toString(16)}`, SYS.ioprio_set, BigInt(IOPRIO_WHO_PROCESS), 0n, BigInt(a.ioprio));
  attempt('the CPU affinity', SYS.sched_setaffinity, 0n, BigInt(a.affinity.length), q.put(a.affinity));
  prctl(`the timer slack ${a.timerSlackNs} ns`, PR_SET_TIMERSLACK, BigInt(a.timerSlackNs));
  prctl('keep-capabilities', PR_SET_KEEPCAPS, a.keepCaps ? 1n : 0n);
  prctl('the machine-check kill policy', PR_MCE_KILL, BigInt(PR_MCE_KILL_SET), BigInt(a.mceKill));
  prctl('the rdtsc mode', PR_SET_TSC, BigInt(a.tsc));
  // Only a CPU that can make cpuid fault has the setting at all.
  if (a.cpuid === 0) attempt('cpuid faulting (ARCH_SET_CPUID)', SYS.arch_prctl, BigInt(ARCH_SET_CPUID), 0n);
}

/** In a thread of the husk (Husk.inThread), after its credentials: the per-thread attributes. Returns warnings. */
export function setThreadAttributes(husk: Husk, head: ProcessHead): string[] {
  const q = husk.queue();
  const { warnings, attempt, prctl } = attempts(q);
  setTaskAttributes(husk, head.attributes, q, attempt, prctl);
  q.run();
  return warnings;
}

/**
 * Set everything but dumpable and MDWE (setLastAttributes). Returns warnings. `parentStays`: cr
 * stays the process's parent (it waits for it); when it does not (--detach), a parent-death
 * signal would be sent as cr exits, killing at once a process just restored, so it is not set.
 */
export function setAttributes(husk: Husk, head: ProcessHead, opts: { parentStays: boolean }): string[] {
  const a = head.attributes;
  const q = husk.queue();
  const { warnings, attempt, prctl } = attempts(q);
  const own = (file: string): string => readFileSync(`/proc/${husk.pid}/${file}`, 'latin1').trim();
  setTaskAttributes(husk, a, q, attempt, prctl);
  // Cleared by any change of credentials, so after setCreds.
  if (opts.parentStays || a.pdeathsig === 0) prctl(`the parent-death signal ${a.pdeathsig}`, PR_SET_PDEATHSIG, BigInt(a.pdeathsig));
  prctl('the child-subreaper flag', PR_SET_CHILD_SUBREAPER, a.childSubreaper ? 1n : 0n);
  prctl('transparent huge pages disabled', PR_SET_THP_DISABLE, a.thpDisable ? 1n : 0n, BigInt(a.thpDisable & PR_THP_DISABLE_EXCEPT_ADVISED));
  if (a.memoryMerge) prctl('KSM for the whole process (PR_SET_MEMORY_MERGE)', PR_SET_MEMORY_MERGE, 1n);
  q.run();
  if (!opts.parentStays && a.pdeathsig !== 0) warnings.push(`the parent-death signal ${a.pdeathsig} is not set: its parent is cr, which exits now (--detach), so it would come at once`);
  const write = (file: string, value: string, what: string): void => {
    const fd = husk.syscall(SYS.open, husk.put(`/proc/self/${file}`), O_WRONLY | O_CLOEXEC, 0n);
    if (fd < 0n) {
      husk.reset();
      warnings.push(`${what} could not be set again (open /proc/self/${file}: errno ${-fd}): the process has cr's`);
      return;
    }
    const data = Buffer.from(value);
    const r = husk.syscall(SYS.write, fd, husk.put(data), BigInt(data.length));
    husk.syscall(SYS.close, fd);
    husk.reset();
    if (r !== BigInt(data.length)) warnings.push(`${what} could not be set again (errno ${-r}): the process has cr's (${own(file)})`);
  };
  if (Number(own('oom_score_adj')) !== a.oomScoreAdj) write('oom_score_adj', String(a.oomScoreAdj), `oom_score_adj ${a.oomScoreAdj}`);
  if (parseInt(own('coredump_filter'), 16) !== a.coredumpFilter) write('coredump_filter', `0x${a.coredumpFilter.toString(16)}`, `coredump_filter 0x${a.coredumpFilter.toString(16)}`);
  if (Number(own('loginuid')) !== a.loginuid) write('loginuid', String(a.loginuid), `loginuid ${a.loginuid}`);
  return warnings;
}

/** Dumpable (setCreds left it 1) and memory-deny-write-execute, which cannot be undone: the last attributes. */
export function setLastAttributes(husk: Husk, head: ProcessHead): void {
  const a = head.attributes;
  if (a.dumpable !== 1) husk.call('prctl(PR_SET_DUMPABLE)', SYS.prctl, BigInt(PR_SET_DUMPABLE), BigInt(a.dumpable), 0n, 0n, 0n);
  if (a.mdwe !== 0) husk.call('prctl(PR_SET_MDWE)', SYS.prctl, BigInt(PR_SET_MDWE), BigInt(a.mdwe), 0n, 0n, 0n);
}
