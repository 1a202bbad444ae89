// The image's POSIX timers made again in the husk: created with their own ids (prctl
// PR_TIMER_CREATE_RESTORE_IDS, Linux 6.15+: timer_create then takes the id it is given), the same
// clock, signal, value and notification (a thread-directed one to the restarted process's own
// thread); after the credentials are the image's, so the kernel judges the alarm clocks as for
// the author. Armed as late as possible (armTimers, beside the interval timers): a timer counts
// while restart works, and what it had left at the dump is what it gets.
import { CrError } from '../errors.js';
import type { ProcessHead } from '../image/process-head.js';
import { SYS } from '../inject/syscalls.js';
import type { Husk } from './husk.js';

const PR_TIMER_CREATE_RESTORE_IDS = 77n;
const SIGEV_SIGNAL = 0;
const SIGEV_NONE = 1;
const SIGEV_THREAD_ID = 4;
/** struct sigevent */
const SIGEVENT_BYTES = 64;
const EINVAL = -22n;

export function createTimers(husk: Husk, head: ProcessHead): void {
  if (head.posixTimers.length === 0) return;
  const on = husk.syscall(SYS.prctl, PR_TIMER_CREATE_RESTORE_IDS, 1n, 0n, 0n, 0n);
  if (on === EINVAL) throw new CrError(`the image has POSIX timers, whose ids this kernel cannot create again (prctl PR_TIMER_CREATE_RESTORE_IDS is Linux 6.15+)`);
  if (on < 0n) throw husk.failure('prctl(PR_TIMER_CREATE_RESTORE_IDS, ON)', on);
  try {
    for (const t of head.posixTimers) {
      const sev = Buffer.alloc(SIGEVENT_BYTES);
      t.value.copy(sev, 0);
      sev.writeInt32LE(t.signal, 8);
      sev.writeInt32LE(t.notify === 'none' ? SIGEV_NONE : t.notify === 'thread' ? SIGEV_THREAD_ID : SIGEV_SIGNAL, 12);
      if (t.notify === 'thread') sev.writeInt32LE(husk.pid, 16);
      const id = husk.put(Buffer.from(new Int32Array([t.id]).buffer));
      const r = husk.syscall(SYS.timer_create, BigInt(t.clock), husk.put(sev), id);
      const got = husk.read(id, 4).readInt32LE(0);
      husk.reset();
      if (r < 0n) throw new CrError(`POSIX timer ${t.id} (clock ${t.clock}) cannot be created again: ${husk.failure('timer_create', r).message}`);
      if (got !== t.id) throw new CrError(`POSIX timer ${t.id} came back as timer ${got}`);
    }
  } finally {
    husk.syscall(SYS.prctl, PR_TIMER_CREATE_RESTORE_IDS, 0n, 0n, 0n, 0n);
  }
}

/** Arm each timer with what it had left (a fired periodic one whose signal waits: one interval). */
export function armTimers(husk: Husk, head: ProcessHead): void {
  for (const t of head.posixTimers) {
    const [vs, vns] = t.left[0] === 0 && t.left[1] === 0 ? t.interval : t.left;
    if (vs === 0 && vns === 0) continue; // disarmed
    const its = Buffer.alloc(32);
    its.writeBigInt64LE(BigInt(t.interval[0]), 0);
    its.writeBigInt64LE(BigInt(t.interval[1]), 8);
    its.writeBigInt64LE(BigInt(vs), 16);
    its.writeBigInt64LE(BigInt(vns), 24);
    husk.call('timer_settime', SYS.timer_settime, BigInt(t.id), 0n, husk.put(its), 0n);
    husk.reset();
  }
}
