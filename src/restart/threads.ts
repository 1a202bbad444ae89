// The restarted process's threads besides the leader (docs/restart.md, "Threads"). Made in the
// husk once its memory is the image's and before any of the program's code runs, by clone3 run
// in the leader with the flags glibc's pthread_create uses; each, traced from birth, then gets
// what the kernel keeps per thread: its name, alternate signal stack, rseq area, robust futex
// list, clear_child_tid and the signals queued to it alone. Credentials, no_new_privs and the
// per-thread scheduling attributes are given by the leader's own steps, run once more in each
// thread (restart.ts); registers, XSAVE area and mask come last, after finish().
//
// The thread ids: with --same-pid each thread gets its own again (clone3 set_tid). Without it
// they are new, and glibc's copy of each thread's id (struct pthread's tid, the address the
// thread gave set_tid_address, so clear_child_tid) is made the new one: written by the kernel
// (CLONE_PARENT_SETTID) for a thread, by cr for the leader, where that word holds the old id.
import type { ProcessHead, ThreadState } from '../image/process-head.js';
import { decodeRegs } from '../image/process-format.js';
import { SYS, PR_SET_NAME, SS_DISABLE, SS_ONSTACK } from '../inject/syscalls.js';
import type { Husk } from './husk.js';

/** Whether the word at addr holds tid: then it is the thread's cached id (glibc's struct pthread). */
function holdsTid(husk: Husk, addr: number, tid: number): boolean {
  if (addr === 0) return false;
  try {
    return husk.read(BigInt(addr), 4).readInt32LE(0) === tid;
  } catch {
    return false; // not mapped: clear_child_tid points nowhere the program reads
  }
}

/**
 * The leader's cached id made its new pid (its memory is the image's by now), then every thread
 * of the image made and given its own state. On failure the caller kills the husk, threads and all.
 */
export function makeThreads(husk: Husk, head: ProcessHead, samePid: boolean): void {
  const old = head.process.pid;
  if (husk.pid !== old && holdsTid(husk, head.tidAddress, old)) husk.write(BigInt(head.tidAddress), Buffer.from(new Int32Array([husk.pid]).buffer));
  const tgid = husk.pid;
  for (const t of head.threads) {
    const tls = BigInt.asUintN(64, decodeRegs(t.regs).fs_base);
    const tidAt = holdsTid(husk, t.tidAddress, t.tid) ? BigInt(t.tidAddress) : null;
    const tid = husk.addThread({ tls, tidAt, clearAt: BigInt(t.tidAddress), tid: samePid ? t.tid : null });
    husk.inThread(tid, () => setThreadOwn(husk, tgid, t));
  }
}

/** Run in the thread itself: what only a thread can set of its own (one call each, no batch). */
function setThreadOwn(husk: Husk, tgid: number, t: ThreadState): void {
  // comm is at most 15 bytes; the kernel truncates
  husk.call('prctl(PR_SET_NAME)', SYS.prctl, BigInt(PR_SET_NAME), husk.put(t.comm));
  const ss = t.altstack;
  if (!(ss.flags & SS_DISABLE)) {
    const b = Buffer.alloc(24);
    b.writeBigUInt64LE(BigInt(ss.sp), 0);
    b.writeInt32LE(ss.flags & ~SS_ONSTACK, 8);
    b.writeBigUInt64LE(BigInt(ss.size), 16);
    husk.call('sigaltstack', SYS.sigaltstack, husk.put(b), 0n);
  }
  if (t.rseq) husk.call('rseq', SYS.rseq, BigInt(t.rseq.pointer), BigInt(t.rseq.size), 0n, BigInt(t.rseq.signature));
  if (t.robustList) husk.call('set_robust_list', SYS.set_robust_list, BigInt(t.robustList.head), BigInt(t.robustList.len));
  // To itself a thread may queue any si_code (the kernel allows it only to the caller): each
  // signal arrives as it was, and waits, every signal being blocked until the thread's mask is set.
  for (const info of t.pending) {
    husk.call('rt_tgsigqueueinfo', SYS.rt_tgsigqueueinfo, BigInt(tgid), BigInt(husk.pid), BigInt(info.readInt32LE(0)), husk.put(info));
  }
  husk.reset();
}
