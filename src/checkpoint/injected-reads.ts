// What only the process itself can tell: its signal actions, alternate signal stack, program
// break, clear_child_tid address, robust futex list, interval timers, no_new_privs and its
// attributes (attributes.ts), its POSIX timers' time left, which of its aio rings are contexts of
// its own (io_submit of no request: EINVAL names a context not its), and which pages of its shared anonymous memory are in memory
// (mincore, for the page copy). Read by injecting syscalls into the frozen process (src/inject),
// which leaves it exactly as it was.
import { Injector } from '../inject/injector.js';
import { Guard } from '../inject/journal.js';
import { SIGACTION_BYTES } from '../image/process-format.js';
import type { Itimer } from '../image/process-head.js';
import { SYS, PR_GET_NO_NEW_PRIVS, PR_GET_TID_ADDRESS } from '../inject/syscalls.js';
import { readAttributes, type ReadAttributes } from './attributes.js';

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
}

const SIGNALS = 64;
const EINVAL = 22n;

/** The alternate signal stack, clear_child_tid and robust list of the thread inj runs in. */
function readThreadOwn(inj: Injector): ThreadOwn {
  const ss = inj.scratch(24);
  inj.call('sigaltstack', SYS.sigaltstack, 0n, ss);
  const ssBuf = inj.read(ss, 24);
  const altstack = { sp: Number(ssBuf.readBigUInt64LE(0)), flags: ssBuf.readInt32LE(8), size: Number(ssBuf.readBigUInt64LE(16)) };
  const word = inj.scratch(16);
  // PR_GET_TID_ADDRESS exists only with CONFIG_CHECKPOINT_RESTORE: without it, nothing to restore.
  const tid = inj.syscall(SYS.prctl, BigInt(PR_GET_TID_ADDRESS), word);
  if (tid < 0n && tid !== -EINVAL) inj.call('prctl(PR_GET_TID_ADDRESS)', SYS.prctl, BigInt(PR_GET_TID_ADDRESS), word);
  const tidAddress = tid < 0n ? 0 : Number(inj.read(word, 8).readBigUInt64LE(0));
  inj.call('get_robust_list', SYS.get_robust_list, 0n, word, word + 8n);
  const rl = inj.read(word, 16);
  const head = Number(rl.readBigUInt64LE(0));
  return { altstack, tidAddress, robustList: head === 0 ? null : { head, len: Number(rl.readBigUInt64LE(8)) } };
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
    inj = Injector.attach(pid);
  } catch (err) {
    guard.close();
    throw err;
  }
  try {
    const resident = new Map<number, Buffer>();
    for (const [index, r] of residentOf) {
      const pages = (r.end - r.start) / 4096;
      const vec = inj.scratch(pages);
      inj.call('mincore', SYS.mincore, BigInt(r.start), BigInt(r.end - r.start), vec);
      resident.set(index, inj.read(vec, pages));
    }
    const its = inj.scratch(32);
    const timers = timerIds.map((id) => {
      // struct itimerspec: interval then value, each { tv_sec, tv_nsec }
      inj.call('timer_gettime', SYS.timer_gettime, BigInt(id), its);
      const b = inj.read(its, 32);
      const pair = (at: number): [number, number] => [Number(b.readBigInt64LE(at)), Number(b.readBigInt64LE(at + 8))];
      return { interval: pair(0), left: pair(16), overrun: Number(inj.call('timer_getoverrun', SYS.timer_getoverrun, BigInt(id))) };
    });
    const buf = inj.scratch(SIGNALS * SIGACTION_BYTES);
    for (let sig = 1; sig <= SIGNALS; sig++) {
      inj.call('rt_sigaction', SYS.rt_sigaction, BigInt(sig), 0n, buf + BigInt((sig - 1) * SIGACTION_BYTES), 8n);
    }
    const actions = inj.read(buf, SIGNALS * SIGACTION_BYTES);
    const own = readThreadOwn(inj);
    const brk = Number(inj.call('brk', SYS.brk, 0n));
    // struct itimerval: interval then value, each { tv_sec, tv_usec }
    const tv = inj.scratch(32);
    const itimers: Itimer[] = [0, 1, 2].map((which) => {
      inj.call('getitimer', SYS.getitimer, BigInt(which), tv);
      const b = inj.read(tv, 32);
      const us = (at: number): number => Number(b.readBigInt64LE(at)) * 1e6 + Number(b.readBigInt64LE(at + 8));
      return { intervalUs: us(0), valueUs: us(16) };
    });
    const noNewPrivs = inj.call('prctl(PR_GET_NO_NEW_PRIVS)', SYS.prctl, BigInt(PR_GET_NO_NEW_PRIVS)) === 1n;
    const attributes = readAttributes(inj, pid);
    const threads = new Map<number, ThreadOwn>();
    for (const tid of others) threads.set(tid, readInThread(guard, tid));
    // io_submit of nothing looks the context up and submits nothing.
    const foreignAio = aioRings.filter((ctx) => inj.syscall(SYS.io_submit, BigInt(ctx), 0n, 0n) === -EINVAL);
    return { actions, ...own, brk, itimers, noNewPrivs, attributes, resident, timers, threads, foreignAio };
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
    return readThreadOwn(inj);
  } finally {
    inj.finish();
  }
}
