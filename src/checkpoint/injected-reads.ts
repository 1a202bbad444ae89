// What only the process itself can tell: its signal actions, alternate signal stack, program
// break, clear_child_tid address, robust futex list, interval timers, no_new_privs and its
// attributes (attributes.ts), its POSIX timers' time left, and which pages of its shared anonymous memory are in memory
// (mincore, for the page copy). Read by injecting syscalls into the frozen process (src/inject),
// which leaves it exactly as it was.
import { Injector } from '../inject/injector.js';
import { Guard } from '../inject/journal.js';
import { SIGACTION_BYTES } from '../image/process-format.js';
import type { Itimer } from '../image/process-head.js';
import { SYS, PR_GET_NO_NEW_PRIVS, PR_GET_TID_ADDRESS } from '../inject/syscalls.js';
import { readAttributes, type ReadAttributes } from './attributes.js';

export interface InjectedReads {
  /** struct kernel_sigaction of signals 1..64, back to back */
  actions: Buffer;
  altstack: { sp: number; flags: number; size: number };
  brk: number;
  tidAddress: number;
  robustList: { head: number; len: number } | null;
  itimers: Itimer[];
  noNewPrivs: boolean;
  attributes: ReadAttributes;
  /** mincore's vector of each range asked for, by the index given */
  resident: Map<number, Buffer>;
  /** timer_gettime and timer_getoverrun of each POSIX timer asked for, in its order */
  timers: Array<{ interval: [number, number]; left: [number, number]; overrun: number }>;
}

const SIGNALS = 64;
const EINVAL = 22n;

/** `residentOf`: address ranges (by mapping index) whose pages in memory mincore should tell. */
export function readInjected(pid: number, residentOf: Map<number, { start: number; end: number }> = new Map(), timerIds: number[] = []): InjectedReads {
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
    const ss = inj.scratch(24);
    inj.call('sigaltstack', SYS.sigaltstack, 0n, ss);
    const ssBuf = inj.read(ss, 24);
    const altstack = { sp: Number(ssBuf.readBigUInt64LE(0)), flags: ssBuf.readInt32LE(8), size: Number(ssBuf.readBigUInt64LE(16)) };
    const brk = Number(inj.call('brk', SYS.brk, 0n));
    const word = inj.scratch(16);
    // PR_GET_TID_ADDRESS exists only with CONFIG_CHECKPOINT_RESTORE: without it, nothing to restore.
    const tid = inj.syscall(SYS.prctl, BigInt(PR_GET_TID_ADDRESS), word);
    if (tid < 0n && tid !== -EINVAL) inj.call('prctl(PR_GET_TID_ADDRESS)', SYS.prctl, BigInt(PR_GET_TID_ADDRESS), word);
    const tidAddress = tid < 0n ? 0 : Number(inj.read(word, 8).readBigUInt64LE(0));
    inj.call('get_robust_list', SYS.get_robust_list, 0n, word, word + 8n);
    const rl = inj.read(word, 16);
    const head = Number(rl.readBigUInt64LE(0));
    const robustList = head === 0 ? null : { head, len: Number(rl.readBigUInt64LE(8)) };
    // struct itimerval: interval then value, each { tv_sec, tv_usec }
    const tv = inj.scratch(32);
    const itimers: Itimer[] = [0, 1, 2].map((which) => {
      inj.call('getitimer', SYS.getitimer, BigInt(which), tv);
      const b = inj.read(tv, 32);
      const us = (at: number): number => Number(b.readBigInt64LE(at)) * 1e6 + Number(b.readBigInt64LE(at + 8));
      return { intervalUs: us(0), valueUs: us(16) };
    });
    const noNewPrivs = inj.call('prctl(PR_GET_NO_NEW_PRIVS)', SYS.prctl, BigInt(PR_GET_NO_NEW_PRIVS)) === 1n;
    return { actions, altstack, brk, tidAddress, robustList, itimers, noNewPrivs, attributes: readAttributes(inj, pid), resident, timers };
  } finally {
    try {
      inj.finish();
    } finally {
      guard.close();
    }
  }
}
