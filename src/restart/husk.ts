// The husk: the process a restart turns into the checkpointed one. It is a program stopped at its
// exec (it never runs an instruction of its own), started with bridge/spawn so cr, not libuv, is
// its parent and tracer. The injector (src/inject) maps its area at an address the image does not
// use and leaves it there: a page starting with `syscall`, from which cr then runs every system
// call, under PTRACE_SYSCALL: the husk stops at the call's entry and exit, so no instruction after
// the syscall ever runs. The rest of the husk's memory can then be torn down and rebuilt around
// that page.
import { SyscallError } from '../../bridge/errno.js';
import { readMemory, writeMemoryForce } from '../../bridge/memory.js';
import {
  contSyscall, getRegs, getSyscallInfo, PTRACE_EVENT_STOP, PTRACE_O_TRACECLONE, PTRACE_O_TRACESYSGOOD, setRegs, setSigmask, SYSCALL_INFO_ENTRY,
  SYSCALL_INFO_EXIT, type Regs,
} from '../../bridge/ptrace.js';
import { signalName, SIGTRAP } from '../../bridge/signal.js';
import { killAndReap } from '../../bridge/spawn.js';
import { waitStop } from '../../bridge/wait.js';
import { CrError } from '../errors.js';
import { Injector } from '../inject/injector.js';
import { CLONE_PARENT, NR } from '../inject/syscall-table.js';

/** The program the husk execs: any will do, it never runs. */
export const HUSK_PROGRAM = '/bin/true';

/** The page holding `syscall`, and after it the scratch memory for arguments. */
export const AREA_BYTES = 64 * 1024;
const ALL_SIGNALS = Buffer.alloc(8, 0xff); // the kernel leaves SIGKILL and SIGSTOP unblocked
/** How a syscall stop is reported with PTRACE_O_TRACESYSGOOD. */
const SYSCALL_STOP = SIGTRAP | 0x80;
/** The ptrace options a husk must be spawned with. */
export const HUSK_PTRACE_OPTIONS = PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACECLONE;
const CLONE_ARGS_BYTES = 88;
const EEXIST = 17n;

const hex = (v: bigint): string => (v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`);

export class Husk {
  private scratchNext: bigint;

  private constructor(
    public pid: number,
    /** registers the husk had at its exec stop: segment selectors and flags for every call */
    private readonly base: Regs,
    /** start of the area: the syscall instruction */
    readonly area: bigint,
    private readonly timeoutMs: number,
  ) {
    this.scratchNext = area + 4096n;
  }

  /**
   * Give pid (spawned stopped at its exec with HUSK_PTRACE_OPTIONS) the syscall page at `area`:
   * the injector's own area, kept when it finishes. Block all its signals. `during(inj)` runs in
   * the same injection, for work that goes through the Injector (the fd-table replay).
   */
  static adopt(pid: number, area: bigint, timeoutMs: number, during: (inj: Injector) => void): Husk {
    const inj = Injector.attach(pid, { timeoutMs, keepAreaAt: { addr: area, bytes: AREA_BYTES } });
    try {
      during(inj);
    } finally {
      inj.finish();
    }
    // Blocked until the registers are set, the mask last of all, while stopped: nothing is
    // delivered to the husk, and pending signals restored on the way wait for the program.
    setSigmask(pid, ALL_SIGNALS);
    return new Husk(pid, getRegs(pid), area, timeoutMs);
  }

  /** Run one system call in the husk; its raw result (-errno on failure). */
  syscall(nr: number, ...args: bigint[]): bigint {
    const [rdi = 0n, rsi = 0n, rdx = 0n, r10 = 0n, r8 = 0n, r9 = 0n] = args;
    // orig_rax -1: resuming from a stop in signal handling must not apply the syscall-restart
    // fixup to these registers. rsp in the area keeps sigaltstack from seeing us "on" a stack.
    setRegs(this.pid, { ...this.base, rip: this.area, rsp: this.area + 4096n, rax: BigInt(nr), orig_rax: -1n, rdi, rsi, rdx, r10, r8, r9 });
    contSyscall(this.pid, 0);
    this.waitFor(nr, SYSCALL_INFO_ENTRY);
    contSyscall(this.pid, 0);
    return this.waitFor(nr, SYSCALL_INFO_EXIT);
  }

  /** syscall(), throwing a SyscallError naming the call when it fails. */
  call(name: string, nr: number, ...args: bigint[]): bigint {
    const r = this.syscall(nr, ...args);
    if (r < 0n && r > -4096n) throw new SyscallError(`${name}(${args.map(hex).join(', ')}) in the husk (pid ${this.pid})`, Number(-r));
    return r;
  }

  /**
   * syscall(), a failure told as `what: call: errno`, with `call` as given: for the calls on a
   * path of the image, whose message should name the path, not its address in the husk.
   */
  callNamed(what: string, call: string, nr: number, ...args: bigint[]): bigint {
    const r = this.syscall(nr, ...args);
    if (r < 0n && r > -4096n) throw new CrError(`${what}: ${new SyscallError(`${call} in the husk (pid ${this.pid})`, Number(-r)).message}`);
    return r;
  }

  /** Copy data into scratch memory (strings NUL-terminated); valid until reset(). */
  put(data: Buffer | string): bigint {
    const buf = typeof data === 'string' ? Buffer.from(`${data}\0`) : data;
    const addr = this.scratch(buf.length);
    writeMemoryForce(this.pid, addr, buf);
    return addr;
  }

  scratch(size: number): bigint {
    const need = BigInt((size + 15) & ~15);
    if (this.scratchNext + need > this.area + BigInt(AREA_BYTES)) throw new Error(`husk scratch memory exhausted (${size} bytes asked)`);
    const addr = this.scratchNext;
    this.scratchNext += need;
    return addr;
  }

  read(addr: bigint, len: number): Buffer {
    return readMemory(this.pid, addr, len);
  }

  /** Forget all scratch allocations. */
  reset(): void {
    this.scratchNext = this.area + 4096n;
  }

  /**
   * Go on as a copy of this husk whose pid is `wanted`: clone3 with set_tid (which needs
   * CAP_CHECKPOINT_RESTORE) run in the husk, CLONE_PARENT so the copy is cr's child as well, and
   * traced from birth (PTRACE_O_TRACECLONE). The old husk is killed. Throws a CrError when the
   * pid is taken.
   */
  cloneAs(wanted: number): void {
    const setTid = this.put(Buffer.from(new Int32Array([wanted]).buffer));
    const args = Buffer.alloc(CLONE_ARGS_BYTES);
    args.writeBigUInt64LE(BigInt(CLONE_PARENT), 0); // exit_signal 0: CLONE_PARENT takes the husk's
    args.writeBigUInt64LE(setTid, 64);
    args.writeBigUInt64LE(1n, 72);
    const r = this.syscall(NR.clone3, this.put(args), BigInt(CLONE_ARGS_BYTES));
    this.reset();
    if (r === -EEXIST) throw new CrError(`pid ${wanted} is in use`);
    if (r < 0n) throw new SyscallError(`clone3(set_tid=[${wanted}]) in the husk (pid ${this.pid})`, Number(-r));
    const child = Number(r);
    const old = this.pid;
    this.pid = child;
    killAndReap(old);
    const first = waitStop(child, this.timeoutMs);
    if (first.kind !== 'stopped' || first.event !== PTRACE_EVENT_STOP) {
      throw new Error(`the husk's copy (pid ${child}) ${first.kind} instead of stopping`);
    }
  }

  /**
   * Wait for the entry or exit stop of our call (the husk is traced with PTRACE_O_TRACESYSGOOD,
   * so those report SIGTRAP|0x80); the exit gives the result. Event stops on the way (a
   * clone3's fork event) are passed over. No signal can arrive: all are blocked, so a
   * signal-delivery-stop means the husk faulted, which is an error.
   */
  private waitFor(nr: number, op: number): bigint {
    for (;;) {
      const stop = waitStop(this.pid, this.timeoutMs);
      if (stop.kind !== 'stopped') throw new Error(`the husk (pid ${this.pid}) ${stop.kind} (status ${stop.code}, signal ${stop.signal}) in syscall ${nr}`);
      if (stop.event === 0 && stop.signal === SYSCALL_STOP) {
        const info = getSyscallInfo(this.pid);
        if (info.op !== op) throw new Error(`the husk (pid ${this.pid}) made a syscall stop of kind ${info.op}, not ${op}, in syscall ${nr}`);
        return info.rval;
      }
      if (stop.event === 0) throw new Error(`the husk (pid ${this.pid}) got ${signalName(stop.signal)} in syscall ${nr}`);
      contSyscall(this.pid, 0);
    }
  }
}

export const u64 = (v: bigint | number): Buffer => {
  const buf = Buffer.alloc(8);
  buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)));
  return buf;
};
