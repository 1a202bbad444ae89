// What only the process itself can tell: its signal actions, alternate signal stack, program
// break, clear_child_tid address, robust futex list, interval timers, no_new_privs and its
// attributes (attributes.ts), its POSIX timers' time left, which of its aio rings are contexts of
// its own (io_submit of no request: EINVAL names a context not its), whether it has children or
// tracees (waitid), and which pages of its shared anonymous memory are in memory (mincore, for the
// page copy). Read by syscalls run in the frozen process (src/inject), all of
// them in one batch (read-batch.ts), which leaves it exactly as it was.
import { Injector } from '../inject/injector.js';
import { Guard } from '../inject/journal.js';
import { SIGACTION_BYTES } from '../image/process-format.js';
import type { Itimer } from '../image/process-head.js';
import { WALL, WCONTINUED, WNOHANG } from '../../bridge/wait.js';
import { P_ALL, PR_GET_NO_NEW_PRIVS, PR_GET_TID_ADDRESS, SYS, WEXITED, WNOWAIT, WSTOPPED } from '../inject/syscalls.js';
import { queueAttributes, type ReadAttributes } from './attributes.js';
import { ReadBatch } from './read-batch.js';

/** What only a thread itself can tell (each thread its own): read in that thread. */
export interface ThreadOwn {
  altstack: { sp: number; flags: number; size: number };
  tidAddress: number;
  robustList: { head: number; len: number } | null;
}

export interface InjectedReads extends ThreadOwn {
  /** struct kernel_sigaction of signals 1..64, back to back */
  actions: Buffer;
  brk: number;
  itimers: Itimer[];
  noNewPrivs: boolean;
  attributes: ReadAttributes;
  /** mincore's vector of each range asked for, by the index given */
  resident: Map<number, Buffer>;
  /** timer_gettime and timer_getoverrun of each POSIX timer asked for, in its order */
  timers: Array<{ interval: [number, number]; left: [number, number]; overrun: number }>;
  /** the same of each other thread asked for, by tid */
  threads: Map<number, ThreadOwn>;
  /** the aio rings asked for that are no context of the process (a copy inherited across fork) */
  foreignAio: number[];
  /**
   * Whether any thread of the process has a child or a ptrace tracee: false (waitid's ECHILD)
   * tells that the process traces nobody, without a look at every thread on the machine.
   */
  childrenOrTracees: boolean;
}

const SIGNALS = 64;
const EINVAL = -22n;
const ECHILD = -10n;

/**
 * Queue the reads of the alternate signal stack, clear_child_tid and robust list of the thread
 * the batch runs in; what they give once it ran.
 */
function queueThreadOwn(reads: ReadBatch): () => ThreadOwn {
  const ss = reads.output(24);
  reads.add('sigaltstack', SYS.sigaltstack, [0n, ss]);
  const word = reads.output(8);
  // PR_GET_TID_ADDRESS exists only with CONFIG_CHECKPOINT_RESTORE: without it, nothing to restore.
  const tid = reads.add('prctl(PR_GET_TID_ADDRESS)', SYS.prctl, [BigInt(PR_GET_TID_ADDRESS), word], [EINVAL]);
  const robust = reads.output(16);
  reads.add('get_robust_list', SYS.get_robust_list, [0n, robust, { of: robust, offset: 8 }]);
  return () => {
    const ssBuf = reads.read(ss);
    const altstack = { sp: Number(ssBuf.readBigUInt64LE(0)), flags: ssBuf.readInt32LE(8), size: Number(ssBuf.readBigUInt64LE(16)) };
    const tidAddress = reads.result(tid) < 0n ? 0 : Number(reads.read(word).readBigUInt64LE(0));
    const rl = reads.read(robust);
    const head = Number(rl.readBigUInt64LE(0));
    return { altstack, tidAddress, robustList: head === 0 ? null : { head, len: Number(rl.readBigUInt64LE(8)) } };
  };
}

/**
 * `residentOf`: address ranges (by mapping index) whose pages in memory mincore should tell;
 * `others`: the process's other threads (seized, in a PTRACE_EVENT_STOP), whose own state is read
 * in each of them, journalled like the leader.
 */
export function readInjected(pid: number, residentOf: Map<number, { start: number; end: number }> = new Map(), timerIds: number[] = [], others: number[] = [], aioRings: number[] = []): InjectedReads {
  // Journalled and held in a group stop while cr runs code in it: a cr killed meanwhile leaves it
  // stopped for `cr recover`, never running on cr's registers (src/inject/journal.ts).
  const guard = Guard.start(pid, pid, 'dump');
  let inj: Injector;
  try {
    // The group stop changed no mapping: the journal's read of them serves the attach too.
    inj = Injector.attach(pid, { maps: guard.maps, tgid: pid });
  } catch (err) {
    guard.close();
    throw err;
  }
  try {
    const reads = new ReadBatch(inj);
    const vectors = [...residentOf].map(([index, r]) => {
      const vec = reads.output((r.end - r.start) / 4096);
      reads.add('mincore', SYS.mincore, [BigInt(r.start), BigInt(r.end - r.start), vec]);
      return [index, vec] as const;
    });
    const timerReads = timerIds.map((id) => {
      // struct itimerspec: interval then value, each { tv_sec, tv_nsec }
      const its = reads.output(32);
      reads.add('timer_gettime', SYS.timer_gettime, [BigInt(id), its]);
      return { its, overrun: reads.add('timer_getoverrun', SYS.timer_getoverrun, [BigInt(id)]) };
    });
    const actions = reads.output(SIGNALS * SIGACTION_BYTES);
    for (let sig = 1; sig <= SIGNALS; sig++) {
      reads.add('rt_sigaction', SYS.rt_sigaction, [BigInt(sig), 0n, { of: actions, offset: (sig - 1) * SIGACTION_BYTES }, 8n]);
    }
    const own = queueThreadOwn(reads);
    const brk = reads.add('brk', SYS.brk, [0n]);
    // struct itimerval: interval then value, each { tv_sec, tv_usec }
    const tvs = [0, 1, 2].map((which) => {
      const tv = reads.output(32);
      reads.add('getitimer', SYS.getitimer, [BigInt(which), tv]);
      return tv;
    });
    const noNewPrivs = reads.add('prctl(PR_GET_NO_NEW_PRIVS)', SYS.prctl, [BigInt(PR_GET_NO_NEW_PRIVS)]);
    const attributes = queueAttributes(reads, pid);
    // io_submit of nothing looks the context up and submits nothing.
    const aioSubmits = aioRings.map((ctx) => reads.add('io_submit', SYS.io_submit, [BigInt(ctx), 0n, 0n], [EINVAL]));
    // Every thread's children and tracees count (no __WNOTHREAD), a live one whether or not it
    // has anything to report; WNOHANG returns at once, WNOWAIT takes nothing from anyone's wait.
    const waited = reads.add('waitid', SYS.waitid, [BigInt(P_ALL), 0n, 0n, BigInt(WNOHANG | WNOWAIT | WEXITED | WSTOPPED | WCONTINUED | WALL), 0n], [ECHILD]);
    reads.run();
    const timers = timerReads.map(({ its, overrun }) => {
      const b = reads.read(its);
      const pair = (at: number): [number, number] => [Number(b.readBigInt64LE(at)), Number(b.readBigInt64LE(at + 8))];
      return { interval: pair(0), left: pair(16), overrun: Number(reads.result(overrun)) };
    });
    const itimers: Itimer[] = tvs.map((tv) => {
      const b = reads.read(tv);
      const us = (at: number): number => Number(b.readBigInt64LE(at)) * 1e6 + Number(b.readBigInt64LE(at + 8));
      return { intervalUs: us(0), valueUs: us(16) };
    });
    const threads = new Map<number, ThreadOwn>();
    for (const tid of others) threads.set(tid, readInThread(guard, tid));
    return {
      actions: reads.read(actions), ...own(), brk: Number(reads.result(brk)), itimers, noNewPrivs: reads.result(noNewPrivs) === 1n,
      attributes: attributes(), resident: new Map(vectors.map(([index, vec]) => [index, reads.read(vec)])), timers, threads,
      foreignAio: aioRings.filter((_, i) => reads.result(aioSubmits[i]!) === EINVAL),
      childrenOrTracees: reads.result(waited) !== ECHILD,
    };
  } finally {
    try {
      inj.finish();
    } finally {
      guard.close();
    }
  }
}

/**
 * A thread's own state, read by an injector of its own (its area is mapped and unmapped again in
 * the process's one address space), the thread journalled first so a cr killed meanwhile leaves
 * recover its registers and mask.
 */
function readInThread(guard: Guard, tid: number): ThreadOwn {
  guard.addThread(tid);
  const inj = Injector.attach(tid);
  try {
    const reads = new ReadBatch(inj);
    const own = queueThreadOwn(reads);
    reads.run();
    return own();
  } finally {
    inj.finish();
  }
}
