// The registers a restarted process resumes with, and what becomes of a system call it was
// stopped in. The husk receives them in a PTRACE_EVENT_STOP, which sits inside the kernel's
// signal handling: on resuming, the kernel applies its syscall-restart logic to exactly these
// registers, as it would have in the checkpointed process. So a call interrupted with
// -ERESTARTSYS / -ERESTARTNOINTR / -ERESTARTNOHAND runs again from the start (or ends with EINTR
// when a handler runs first, as the kernel decides). A call interrupted with
// -ERESTART_RESTARTBLOCK (nanosleep, clock_nanosleep, poll with a timeout, futex waits with a
// timeout, ...) would restart through restart_syscall(2) and the kernel's per-thread restart
// block, which the new process does not have: it is restarted as a fresh call with its original
// arguments instead (-ERESTARTNOHAND: again from the start, EINTR if a handler runs first).
// A relative timeout therefore starts over; an absolute one (TIMER_ABSTIME) is exact.
import { getRegset, NT_X86_XSTATE, setRegs, setRegset, type Regs } from '../../bridge/ptrace.js';
import { CrError } from '../errors.js';
import { decodeRegs } from '../image/process-format.js';
import { ERESTART_RESTARTBLOCK, ERESTARTNOHAND, SYS } from '../inject/syscalls.js';

/** A thread's registers in the image (head.regs, or a thread's), with a restart-block syscall turned into a plain restart. */
export function resumeRegisters(image: Buffer): Regs {
  const regs = decodeRegs(image);
  // Not stopped in a syscall, or in one that returns or restarts (-ERESTARTSYS..-ERESTARTNOHAND)
  // as it is: the kernel's own restart logic applies to these registers unchanged.
  if (regs.orig_rax < 0n || regs.rax !== -BigInt(ERESTART_RESTARTBLOCK)) return regs;
  // Already a restart: the original call is not known any more. restart_syscall in the new
  // process finds no restart block and returns EINTR, which the program sees.
  if (Number(regs.orig_rax) === SYS.restart_syscall) return regs;
  // A call with a restart block (a sleep with a timeout) restarts from the start with its arguments.
  return { ...regs, rax: -BigInt(ERESTARTNOHAND) };
}

/** Set all registers of a stopped thread of the husk: the XSAVE area first, the general ones last. */
export function setAllRegisters(tid: number, xstate: Buffer, regs: Regs): void {
  const probe = Buffer.alloc(64 * 1024);
  const size = getRegset(tid, NT_X86_XSTATE, probe);
  if (size !== xstate.length) {
    throw new CrError(`this CPU's XSAVE area is ${size} bytes, the image's ${xstate.length}: a different CPU`);
  }
  setRegset(tid, NT_X86_XSTATE, xstate);
  setRegs(tid, regs);
}
