// The husk: the process a restart turns into the checkpointed one. It is a program stopped at its
// exec (it never runs an instruction of its own), started with bridge/spawn so cr, not libuv, is
// its parent and tracer. Every call it makes runs through the one engine (src/inject): an
// Injector whose area is mapped at an address the image does not use and is all of the husk's
// memory cr relies on (the syscall instruction, scratch memory, the batch routine and its data),
// so the rest of the husk's memory can be torn down and rebuilt around it. Calls whose results
// need no look before the next one run in batches (CallQueue), one ptrace round trip each.
import { constants } from 'node:os';
import { SyscallError } from '../../bridge/errno.js';
import { PTRACE_EVENT_STOP, PTRACE_O_TRACECLONE, PTRACE_O_TRACEFORK } from '../../bridge/ptrace.js';
import { SIGCHLD } from '../../bridge/signal.js';
import type { WaitResult } from '../../bridge/wait.js';
import { killAndReap } from '../../bridge/spawn.js';
import { waitStop } from '../../bridge/wait.js';
import { CrError } from '../errors.js';
import { BATCH_CAPACITY, BatchRunner, CallQueue } from '../inject/batch.js';
import { Injector } from '../inject/injector.js';
import { CLONE_CHILD_CLEARTID, CLONE_PARENT, CLONE_PARENT_SETTID, CLONE_PTHREAD, PR_SET_DUMPABLE, PR_SET_NAME, SYS } from '../inject/syscalls.js';

/** The program the husk execs: any will do, it never runs. */
export const HUSK_PROGRAM = '/bin/true';

/**
 * The area: the syscall instruction and scratch memory for arguments, then the batch routine's
 * page and its data (BATCH_CAPACITY, so a pipe's bytes go in the chunks any replay uses).
 */
export const AREA_BYTES = 2 * 1024 * 1024;
/**
 * The ptrace options a husk must be spawned with: the copy cloneAs makes and the children fork
 * makes are traced from birth (a fork's child inherits them).
 */
export const HUSK_PTRACE_OPTIONS = PTRACE_O_TRACECLONE | PTRACE_O_TRACEFORK;
const CLONE_ARGS_BYTES = 88;
const EEXIST = BigInt(constants.errno.EEXIST);

const hex = (v: bigint): string => (v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`);

export class Husk {
  /** the threads made by addThread, in the order made; the leader is `pid` */
  readonly threads: number[] = [];

  private constructor(
    private readonly inj: Injector,
    private readonly runner: BatchRunner,
    /** start of the area: the syscall instruction */
    readonly area: bigint,
    /** where the scratch memory of one step starts: reset() gives back all after it */
    private readonly mark: bigint,
    private readonly timeoutMs: number,
  ) {}

  get pid(): number {
    return this.inj.pid;
  }

  /**
   * Take pid (spawned stopped at its exec with HUSK_PTRACE_OPTIONS) over: its area mapped at
   * `area`, all its signals blocked from here to the end. `during(inj, runner)` runs first, for
   * work that goes through the Injector (the fd-table replay); its scratch memory is given back.
   * On failure the caller kills the husk: nothing of it is put back. `maps`: its /proc/PID/maps,
   * when the caller has just read them (to choose `area`), so the injector does not read them again.
   */
  static adopt(pid: number, area: bigint, timeoutMs: number, during: (inj: Injector, runner: BatchRunner) => void, maps?: string): Husk {
    // A spawned process leads its own thread group: its tgid is its pid, not read from /proc.
    const inj = Injector.attach(pid, { timeoutMs, keepAreaAt: { addr: area, bytes: AREA_BYTES }, tgid: pid, maps });
    const runner = BatchRunner.prepare(inj, { capacity: BATCH_CAPACITY, timeoutMs });
    if (!runner.batched) throw new Error(`the husk (pid ${pid}) cannot run its area's code`);
    const mark = inj.scratchMark();
    during(inj, runner);
    inj.scratchReset(mark);
    return new Husk(inj, runner, area, mark, timeoutMs);
  }

  /** Work that goes through the Injector itself (a replay); its scratch memory is given back. */
  run<T>(work: (inj: Injector, runner: BatchRunner) => T): T {
    try {
      return work(this.inj, this.runner);
    } finally {
      this.reset();
    }
  }

  /** Run one system call in the husk; its raw result (-errno on failure). */
  syscall(nr: number, ...args: bigint[]): bigint {
    return this.inj.syscall(nr, ...args);
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
    if (r < 0n && r > -4096n) throw new CrError(`${what}: ${this.failure(call, r).message}`);
    return r;
  }

  /** The SyscallError of `call` failing in the husk with result r. */
  failure(call: string, r: bigint): SyscallError {
    return new SyscallError(`${call} in the husk (pid ${this.pid})`, Number(-r));
  }

  /** A queue of calls to run in batches (src/inject/batch.ts), in the thread calls go to; its data lives in the batch. */
  queue(): CallQueue {
    return new CallQueue(this.runner, `in the husk (${this.threads.includes(this.pid) ? 'thread' : 'pid'} ${this.pid})`);
  }

  /** Copy data into scratch memory (strings NUL-terminated); valid until reset(). */
  put(data: Buffer | string): bigint {
    return this.inj.put(data);
  }

  scratch(size: number): bigint {
    return this.inj.scratch(size);
  }

  read(addr: bigint, len: number): Buffer {
    return this.inj.read(addr, len);
  }

  /** Write into the husk's memory (the image's, once restored). */
  write(addr: bigint, data: Buffer): void {
    this.inj.write(addr, data);
  }

  /** Forget all scratch allocations. */
  reset(): void {
    this.inj.scratchReset(this.mark);
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
    const r = this.syscall(SYS.clone3, this.put(args), BigInt(CLONE_ARGS_BYTES));
    this.reset();
    if (r === -EEXIST) throw new CrError(`pid ${wanted} is in use`);
    if (r < 0n) throw new SyscallError(`clone3(set_tid=[${wanted}]) in the husk (pid ${this.pid})`, Number(-r));
    const child = Number(r);
    const old = this.pid;
    this.inj.forChild(child);
    killAndReap(old);
    const first = waitStop(child, this.timeoutMs);
    if (first.kind !== 'stopped' || first.event !== PTRACE_EVENT_STOP) {
      throw new Error(`the husk's copy (pid ${child}) ${first.kind} instead of stopping`);
    }
  }

  /**
   * A child of this husk (a tree's restart, src/restart/tree.ts): clone3 with SIGCHLD as its exit
   * signal, so the kernel reports a fork and the child is traced from birth (PTRACE_O_TRACEFORK),
   * caught in its first event stop before it runs an instruction; with `wanted`, that pid
   * (set_tid, which needs CAP_CHECKPOINT_RESTORE). The child is a copy of this husk: same area,
   * scratch and batch routine, same fds, session and group; both husks go on.
   */
  fork(wanted?: number): Husk {
    const args = Buffer.alloc(CLONE_ARGS_BYTES);
    args.writeBigUInt64LE(BigInt(SIGCHLD), 32);
    if (wanted !== undefined) {
      args.writeBigUInt64LE(this.put(Buffer.from(new Int32Array([wanted]).buffer)), 64);
      args.writeBigUInt64LE(1n, 72);
    }
    const at = this.put(args);
    const r = this.syscall(SYS.clone3, at, BigInt(CLONE_ARGS_BYTES));
    this.reset();
    if (wanted !== undefined && r === -EEXIST) throw new CrError(`pid ${wanted} is in use`);
    if (r < 0n) throw new SyscallError(`clone3(${wanted === undefined ? 'SIGCHLD' : `set_tid=[${wanted}]`}) in the husk (pid ${this.pid})`, Number(-r));
    const child = Number(r);
    const first = waitStop(child, this.timeoutMs);
    if (first.kind !== 'stopped' || first.event !== PTRACE_EVENT_STOP) {
      if (first.kind === 'stopped') killAndReap(child);
      throw new Error(`the husk's child (pid ${child}) ${first.kind} instead of stopping`);
    }
    const inj = this.inj.copyFor(child);
    return new Husk(inj, this.runner.forCopy(inj), this.area, this.mark, this.timeoutMs);
  }

  /**
   * End as a zombie that died as recorded: `code` through exit_group, or `signal` at its default
   * action (the husk's signals all have theirs: bridge/spawn). Not dumpable first, so a signal
   * that dumps core writes none (the status then lacks the core bit), and named `comm`. Its
   * parent's wait() gets the status; cr, its tracer, has only looked.
   */
  exitAs(how: { code: number } | { signal: number }, comm: string): WaitResult {
    this.syscall(SYS.prctl, BigInt(PR_SET_DUMPABLE), 0n);
    this.syscall(SYS.prctl, BigInt(PR_SET_NAME), this.put(Buffer.concat([Buffer.from(comm).subarray(0, 15), Buffer.alloc(1)])));
    return this.inj.endWith(how);
  }

  /**
   * Make a thread in the husk, with the flags glibc's pthread_create gives clone (CLONE_PTHREAD):
   * its TLS at `tls`; its new tid written at `tidAt` (CLONE_PARENT_SETTID: where glibc's struct
   * pthread keeps it) unless null; `clearAt` its clear_child_tid (CLONE_CHILD_CLEARTID) unless 0;
   * with `tid`, that thread id (clone3 set_tid, which needs CAP_CHECKPOINT_RESTORE). Run by the
   * leader, it starts as the leader's copy: at the syscall's return in the area, every signal
   * blocked; traced from birth (PTRACE_O_TRACECLONE), it waits in its first event stop for its
   * state. Throws a CrError when the tid is taken.
   */
  addThread(opts: { tls: bigint; tidAt: bigint | null; clearAt: bigint; tid: number | null }): number {
    let flags = BigInt(CLONE_PTHREAD);
    if (opts.tidAt === null) flags &= ~BigInt(CLONE_PARENT_SETTID);
    if (opts.clearAt === 0n) flags &= ~BigInt(CLONE_CHILD_CLEARTID);
    const args = Buffer.alloc(CLONE_ARGS_BYTES);
    args.writeBigUInt64LE(flags, 0);
    args.writeBigUInt64LE(opts.clearAt, 16); // child_tid
    args.writeBigUInt64LE(opts.tidAt ?? 0n, 24); // parent_tid
    // exit_signal 0 (a thread has none); stack 0: the leader's stack pointer, replaced before it runs
    args.writeBigUInt64LE(opts.tls, 56);
    if (opts.tid !== null) {
      args.writeBigUInt64LE(this.put(Buffer.from(new Int32Array([opts.tid]).buffer)), 64);
      args.writeBigUInt64LE(1n, 72);
    }
    const r = this.syscall(SYS.clone3, this.put(args), BigInt(CLONE_ARGS_BYTES));
    this.reset();
    if (r === -EEXIST) throw new CrError(`thread id ${opts.tid} is in use`);
    if (r < 0n) throw new SyscallError(`clone3(CLONE_THREAD${opts.tid === null ? '' : `, set_tid=[${opts.tid}]`}) in the husk (pid ${this.pid})`, Number(-r));
    const tid = Number(r);
    this.threads.push(tid);
    const first = waitStop(tid, this.timeoutMs);
    if (first.kind !== 'stopped' || first.event !== PTRACE_EVENT_STOP) throw new Error(`the husk's new thread ${tid} ${first.kind} instead of stopping`);
    return tid;
  }

  /**
   * Run `fn` with every call of this husk's (syscall, call, put, queue, ...) going to thread tid.
   */
  inThread<T>(tid: number, fn: () => T): T {
    return this.inj.onThread(tid, fn);
  }

  /**
   * The last call: unmap the area, and leave the husk in a PTRACE_EVENT_STOP, inside the
   * kernel's signal handling, all signals blocked: the registers and mask set from there are the
   * ones the syscall-restart logic and any pending signal's delivery see. Every other thread is
   * brought to such a stop too (it runs nothing more in the area).
   */
  finish(): void {
    for (const tid of this.threads) this.inj.onThread(tid, () => this.inj.eventStop());
    this.inj.handOver({ dropArea: true });
  }
}

export const u64 = (v: bigint | number): Buffer => {
  const buf = Buffer.alloc(8);
  buf.writeBigUInt64LE(BigInt.asUintN(64, BigInt(v)));
  return buf;
};
