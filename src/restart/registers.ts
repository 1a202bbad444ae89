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
import type { ProcessHead } from '../image/process-head.js';
import { ERESTART_RESTARTBLOCK, ERESTARTNOHAND, NR } from '../inject/syscall-table.js';

export interface Resume {
  regs: Regs;
  /** what happens to the system call the process was stopped in, for the report; null if none */
  syscall: string | null;
}

/** The image's registers, with a restart-block syscall turned into a plain restart. */
export function resumeRegisters(head: ProcessHead): Resume {
  const regs = decodeRegs(head.regs);
  if (regs.orig_rax < 0n) return { regs, syscall: null };
  const nr = Number(regs.orig_rax);
  if (regs.rax !== -BigInt(ERESTART_RESTARTBLOCK)) {
    const restarts = regs.rax <= -512n && regs.rax >= -514n;
    return { regs, syscall: restarts ? `syscall ${nr} restarts` : null };
  }
  if (nr === NR.restart_syscall) {
    // Already a restart: the original call is not known any more. restart_syscall in the new
    // process finds no restart block and returns EINTR, which the program sees.
    return { regs, syscall: `restart_syscall (an interrupted sleep or wait) returns EINTR` };
  }
  return { regs: { ...regs, rax: -BigInt(ERESTARTNOHAND) }, syscall: `syscall ${nr} (restart block) restarts from the start with its arguments` };
}

/** Set all registers of the stopped husk: the XSAVE area first, the general ones last. */
export function setAllRegisters(pid: number, head: ProcessHead, regs: Regs): void {
  const probe = Buffer.alloc(64 * 1024);
  const size = getRegset(pid, NT_X86_XSTATE, probe);
  if (size !== head.xstate.length) {
    throw new CrError(`this CPU's XSAVE area is ${size} bytes, the image's ${head.xstate.length}: a different CPU`);
  }
  setRegset(pid, NT_X86_XSTATE, head.xstate);
  setRegs(pid, regs);
}
