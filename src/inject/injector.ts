// Running system calls inside another process: the tracee executes a `syscall` instruction with
// registers cr chose, under PTRACE_SYSCALL: it stops at the syscall's entry and again at its exit,
// where cr reads the result. No int3: a trap signal while all signals are blocked would make the
// kernel unblock SIGTRAP and reset its handler to SIG_DFL.
// cr never writes into the tracee's own code (a MAP_SHARED mapping would carry the write into its
// file, a read-only one refuses it): the first call, an mmap of a private anonymous executable
// area, runs from a `syscall` instruction the tracee already has (in the vdso, else in another
// executable mapping, only read), and every later call runs from that area (docs/injection.md).
// Everything touched (registers, signal mask, the area and scratch mappings) is put back by finish().
import { SyscallError } from '../../bridge/errno.js';
import { readMemory, writeMemory } from '../../bridge/memory.js';
import {
  cont, contSyscall, getRegsInto, getSiginfo, getSigmask, interrupt, peek, poke, PTRACE_EVENT_EXIT, PTRACE_EVENT_STOP,
  REG_COUNT, REG_INDEX, setRegsFrom, setSigmask,
} from '../../bridge/ptrace.js';
import { kill, signalName, SIGTRAP } from '../../bridge/signal.js';
import { waitStop, type WaitResult } from '../../bridge/wait.js';
import { traceCall, tracing } from './trace.js';
import { MAP_ANONYMOUS, MAP_FIXED_NOREPLACE, MAP_PRIVATE, PROT_EXEC, PROT_READ, PROT_WRITE, SYS } from './syscalls.js';
import { now } from '../../bridge/clock.js';
import { readProc } from '../proc/read.js';

const SYSCALL_INSN = Buffer.from([0x0f, 0x05]);
/** The same two bytes as the low half of a little-endian word, the rest zero. */
const SYSCALL_WORD = 0x050fn;
const R = REG_INDEX;
const ARG_REGS = [R.rdi, R.rsi, R.rdx, R.r10, R.r8, R.r9];
const ENTRY = 'entry';
const EXIT = 'exit';
const SCRATCH_CHUNK = 64 * 1024;
/** Where scratch memory starts in the area: after the instruction, 16-byte aligned. */
const AREA_CODE_BYTES = 16;
/** How much of an executable mapping is searched for a `syscall` instruction. */
const SEARCH_BYTES = 4 << 20;
const EACCES = 13n;
const ALL_SIGNALS = Buffer.alloc(8, 0xff); // the kernel itself leaves SIGKILL and SIGSTOP unblocked

export interface InjectorOptions {
  /** Bound on each injected syscall; a call still blocked then is interrupted and reported. */
  timeoutMs?: number;
  /**
   * Map the area at this address (MAP_FIXED_NOREPLACE), and keep every use of the tracee's
   * memory inside it: scratch comes from the area only (never another mapping, which could land
   * where the restart rebuilds the image's), and calls run with the stack pointer at its top.
   * For the restart's husk, whose own memory is torn down around the area (src/restart/husk.ts).
   */
  keepAreaAt?: { addr: bigint; bytes: number };
  /** the tracee's /proc/PID/maps, read since anything last changed it (Guard.start's): not read again */
  maps?: string;
  /** the tracee's thread group, when the caller knows it: its status is not read */
  tgid?: number;
}

const hex = (v: bigint): string => (v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`);

interface Executable {
  start: bigint;
  end: bigint;
  name: string;
}

/** The executable mappings cr can read in a /proc/PID/maps text, the vdso first (small, always there, never a file). */
function executableMappings(maps: string): Executable[] {
  const found: Executable[] = [];
  for (const line of maps.split('\n')) {
    const [range, perms, , , , ...rest] = line.split(/ +/);
    const name = rest.join(' ');
    // [vsyscall] is not readable by process_vm_readv, [uprobes] is the kernel's: skip both.
    if (!range || perms?.[0] !== 'r' || perms[2] !== 'x' || name === '[vsyscall]' || name === '[uprobes]') continue;
    const [start, end] = range.split('-').map((h) => BigInt(`0x${h}`)) as [bigint, bigint];
    found.push({ start, end, name });
  }
  return found.sort((a, b) => Number(b.name === '[vdso]') - Number(a.name === '[vdso]'));
}

/** The [vdso] line of a /proc/PID/maps text, found without parsing the others; null for none. */
function vdsoOf(maps: string): Executable | null {
  const at = maps.indexOf(' [vdso]\n');
  if (at < 0) return null;
  const line = maps.slice(maps.lastIndexOf('\n', at) + 1, at);
  const [start, end] = line.slice(0, line.indexOf(' ')).split('-').map((h) => BigInt(`0x${h}`)) as [bigint, bigint];
  return { start, end, name: '[vdso]' };
}

/** The thread group of thread tid (`Tgid:` of its status). */
function tgidOf(tid: number): number {
  const m = /^Tgid:\s*(\d+)$/m.exec(readProc(`/proc/${tid}/status`));
  if (!m) throw new Error(`/proc/${tid}/status has no Tgid line`);
  return Number(m[1]);
}

/** Offset of the first `syscall` in a mapping's bytes (at most SEARCH_BYTES read); null for none. */
function syscallOffset(pid: number, m: Executable): bigint | null {
  const len = m.end - m.start < BigInt(SEARCH_BYTES) ? Number(m.end - m.start) : SEARCH_BYTES;
  let bytes: Buffer;
  try {
    bytes = readMemory(pid, m.start, len);
  } catch {
    return null; // pages that cannot be read (a file truncated under its mapping)
  }
  const at = bytes.indexOf(SYSCALL_INSN);
  return at < 0 ? null : BigInt(at);
}

/** Where cr's own vdso has its first `syscall`: every process of this kernel has the same vdso. */
let ownVdsoOffset: bigint | null | undefined;

/**
 * Learn where cr's own vdso has its first `syscall` (a read of /proc/self/maps and of the vdso),
 * once per cr: a dump does it before it freezes anything, so that findSyscallSite, which needs
 * it, costs the frozen process less.
 */
export function learnOwnVdso(): bigint | null {
  if (ownVdsoOffset === undefined) {
    const own = vdsoOf(readProc('/proc/self/maps'));
    ownVdsoOffset = own ? syscallOffset(process.pid, own) : null;
  }
  return ownVdsoOffset;
}

/**
 * Address of a `syscall` instruction (the bytes 0f 05) already in pid's executable memory. Only
 * read, never written, so which mapping holds it does not matter; the bytes need not start an
 * instruction of the program's, since under PTRACE_SYSCALL nothing after them ever runs. The
 * vdso's offset is learnt once from cr's own and only confirmed in the tracee (two bytes read,
 * not the whole vdso); anything else is searched.
 */
export function findSyscallSite(pid: number, maps = readProc(`/proc/${pid}/maps`)): bigint {
  const vdso = vdsoOf(maps);
  const offset = learnOwnVdso();
  if (vdso && offset !== null && vdso.start + offset + 8n <= vdso.end) {
    const site = vdso.start + offset;
    try {
      if ((peek(pid, site) & 0xffffn) === SYSCALL_WORD) return site;
    } catch {
      // searched below like any other mapping
    }
  }
  for (const m of executableMappings(maps)) {
    const at = syscallOffset(pid, m);
    if (at !== null) return m.start + at;
  }
  throw new Error(`pid ${pid}: no syscall instruction in its executable memory to start injecting from`);
}

/**
 * Classify the tracee's current stop. Injection starts from a PTRACE_EVENT_STOP: it is inside
 * the kernel's signal handling, so when the tracee finally resumes, the kernel's syscall-restart
 * logic sees the registers we restored. Other ptrace event stops can be moved there; syscall and
 * signal-delivery stops are refused (the returned text says which it is).
 */
function stopKind(pid: number): 'event-stop' | 'ptrace-event' | string {
  const info = getSiginfo(pid);
  const event = info.code >> 8;
  if (event === PTRACE_EVENT_STOP) return 'event-stop';
  if (info.signo === SIGTRAP && (info.code & 0xff) === SIGTRAP && event > 0 && event !== PTRACE_EVENT_EXIT) return 'ptrace-event';
  if (info.signo === SIGTRAP && (info.code === SIGTRAP || info.code === (SIGTRAP | 0x80))) return 'a syscall-stop';
  if (event === PTRACE_EVENT_EXIT) return 'the exit event stop';
  return `a signal-delivery-stop for ${signalName(info.signo)}`;
}

export class Injector {
  private readonly scratchMaps: Array<{ addr: bigint; size: bigint }> = [];
  private scratchNext = 0n;
  private scratchEnd = 0n;
  /** The private executable area cr mapped; null until the first call made it. */
  private area: { addr: bigint; size: bigint } | null = null;
  /** Where calls run from: the tracee's own `syscall` instruction for the first, then the area. */
  private site: bigint;
  private done = false;
  /** The tracee died under us: nothing left to restore. */
  private gone = false;
  /** Registers as we found them, in raw PTRACE_GETREGS order. */
  private readonly saved = new BigInt64Array(REG_COUNT);
  /** The register image for the current injected call. */
  private readonly work = new BigInt64Array(REG_COUNT);

  private constructor(
    /** the tracee; changes only when forChild() hands the injection to a copy */
    private tracee: number,
    /** the tracee's process (thread group): the sender of a signal a thread of it sends */
    private group: number,
    /** a `syscall` instruction the tracee already had (only read, never written) */
    private readonly foundSite: bigint,
    private readonly savedMask: Buffer,
    private readonly timeoutMs: number,
    /** Signals that arrived while we ran the tracee; re-sent at finish so none is lost. */
    private readonly deferred: number[],
    private readonly keepAreaAt: { addr: bigint; bytes: number } | null,
  ) {
    this.site = foundSite;
  }

  /** A signal the caller suppressed while it ran the tracee (a batch's stray SIGSTOP): re-sent at finish with the others. */
  defer(signal: number): void {
    this.deferred.push(signal);
  }

  get pid(): number {
    return this.tracee;
  }

  /** The tracee's thread-group id: pid, unless the tracee is a thread other than the first. */
  get tgid(): number {
    return this.group;
  }

  /**
   * Prepare to inject into pid, which must be seized and in a ptrace-stop: a PTRACE_EVENT_STOP
   * (PTRACE_INTERRUPT, group-stop) or a ptrace event stop such as PTRACE_EVENT_EXEC, which is
   * first turned into a PTRACE_EVENT_STOP without running any tracee instruction. Blocks all
   * signals in the tracee until finish(). On failure the tracee is left as it was found.
   */
  static attach(pid: number, options: InjectorOptions = {}): Injector {
    const timeoutMs = options.timeoutMs ?? 5000;
    const kind = stopKind(pid);
    if (kind !== 'event-stop' && kind !== 'ptrace-event') {
      throw new Error(`pid ${pid}: cannot inject from ${kind}; bring it to a PTRACE_EVENT_STOP (PTRACE_INTERRUPT) first`);
    }
    const site = findSyscallSite(pid, options.maps);
    const deferred: number[] = [];
    if (kind === 'ptrace-event') toEventStop(pid, deferred);
    const injector = new Injector(pid, options.tgid ?? tgidOf(pid), site, getSigmask(pid), timeoutMs, deferred, options.keepAreaAt ?? null);
    getRegsInto(pid, injector.saved);
    // Blocked while stopped, so no signal handler can run on our registers, an injected call
    // cannot be interrupted, and the only signal stop left possible is for SIGSTOP.
    setSigmask(pid, ALL_SIGNALS);
    try {
      injector.mapArea();
    } catch (err) {
      try {
        injector.finish();
      } catch {
        // the first error says more; finish() has put back what it could
      }
      throw err;
    }
    return injector;
  }

  /** Run one system call in the tracee; returns its raw result (-errno on failure). */
  syscall(nr: number, ...args: bigint[]): bigint {
    if (this.done) throw new Error(`pid ${this.pid}: injector already finished`);
    if (args.length > 6) throw new Error(`syscall ${nr}: at most 6 arguments`);
    const regs = this.work;
    regs.set(this.saved);
    regs[R.rip] = this.site;
    regs[R.rax] = BigInt(nr);
    // orig_rax -1: when the tracee resumes from a stop inside signal handling the kernel would
    // otherwise apply its syscall-restart fixup (rip -= 2, rax = orig_rax) to our registers.
    regs[R.orig_rax] = -1n;
    // A kept area is all of the tracee's memory that stays put: sigaltstack must not find the
    // stack pointer on a stack the restart is installing.
    if (this.keepAreaAt) regs[R.rsp] = this.keepAreaAt.addr + BigInt(this.keepAreaAt.bytes);
    ARG_REGS.forEach((reg, i) => {
      regs[reg] = BigInt.asIntN(64, args[i] ?? 0n);
    });
    const start = tracing() ? now() : 0;
    setRegsFrom(this.pid, regs);
    contSyscall(this.pid, 0);
    this.waitSyscallStop(nr, ENTRY);
    contSyscall(this.pid, 0);
    const result = this.waitSyscallStop(nr, EXIT);
    if (start) traceCall(this.pid, nr, args, result, start, now() - start);
    return result;
  }

  /** Like syscall(), but a failure throws a SyscallError naming the call, its arguments and the pid. */
  call(name: string, nr: number, ...args: bigint[]): bigint {
    return this.checked(name, args, this.syscall(nr, ...args));
  }

  private checked(name: string, args: bigint[], result: bigint): bigint {
    if (result < 0n && result > -4096n) {
      throw new SyscallError(`${name}(${args.map(hex).join(', ')}) injected in pid ${this.pid}`, Number(-result));
    }
    return result;
  }

  /**
   * Whether [addr, addr + len) lies in the area, which is mapped read+write+exec: code written
   * there runs without an mprotect of its own (a call, two ptrace stops, saved).
   */
  executable(addr: bigint, len: number): boolean {
    return this.area !== null && addr >= this.area.addr && addr + BigInt(len) <= this.area.addr + this.area.size;
  }

  /** Address of size fresh bytes of tracee memory, valid until finish(). */
  scratch(size: number): bigint {
    const need = BigInt((size + 15) & ~15);
    if (this.scratchNext + need > this.scratchEnd) {
      if (this.keepAreaAt) throw new Error(`pid ${this.pid}: the area has no room for ${size} more bytes of scratch memory`);
      this.newScratch(Math.max(SCRATCH_CHUNK, size));
    }
    const addr = this.scratchNext;
    this.scratchNext += need;
    return addr;
  }

  /** Copy data into fresh scratch memory (strings NUL-terminated); returns its address. */
  put(data: Buffer | string): bigint {
    const buf = typeof data === 'string' ? Buffer.from(`${data}\0`) : data;
    const addr = this.scratch(buf.length);
    this.write(addr, buf);
    return addr;
  }

  /**
   * With a kept area: where scratch memory is now, to give back with scratchReset() what was
   * handed out after it (the husk's arguments of one step, once the step is done).
   */
  scratchMark(): bigint {
    if (!this.keepAreaAt) throw new Error('scratchMark: only with keepAreaAt');
    return this.scratchNext;
  }

  scratchReset(mark: bigint): void {
    if (!this.keepAreaAt || mark < this.area!.addr || mark > this.scratchNext) throw new Error('scratchReset: not a mark of this area');
    this.scratchNext = mark;
  }

  write(addr: bigint, buf: Buffer): void {
    writeMemory(this.pid, addr, buf);
  }

  read(addr: bigint, len: number): Buffer {
    return readMemory(this.pid, addr, len);
  }

  /**
   * Put everything back: scratch mappings and the area unmapped, registers, signal mask; leave
   * the tracee in a PTRACE_EVENT_STOP. From there, once resumed, the kernel restarts a syscall
   * the tracee was blocked in, exactly as if we had never been there. Safe to call after a failed
   * call; the registers and mask are put back even when an unmap fails.
   */
  finish(): void {
    if (this.done) return;
    let failed: unknown = null;
    const unmap = (addr: bigint, size: bigint): void => {
      try {
        this.call('munmap', SYS.munmap, addr, size);
      } catch (err) {
        failed ??= err;
      }
    };
    if (!this.gone) for (const { addr, size } of this.scratchMaps) unmap(addr, size);
    if (this.area && !this.keepAreaAt && !this.gone) {
      // Its own munmap runs from the instruction we started from: the area is gone once it returns.
      this.site = this.foundSite;
      unmap(this.area.addr, this.area.size);
    }
    this.done = true;
    if (!this.gone) this.putBack();
    if (failed) throw failed;
  }

  /**
   * The tracee became `child`, a copy made by a clone3 it ran (the restart's husk taking a
   * given pid), traced from birth and in its first event stop: go on injecting there, with the
   * same area, scratch and saved state (the copy has the same memory). The old tracee is the
   * caller's to end.
   */
  forChild(child: number): void {
    this.tracee = child;
    this.group = child;
  }

  /**
   * An injector for `child`, a copy this tracee made with a fork it ran (a tree's restart): the
   * copy has the same memory (area, scratch, batch routine at the same addresses), registers and
   * blocked mask, is traced from birth and in its first event stop. Both injectors go on.
   */
  copyFor(child: number): Injector {
    if (this.done) throw new Error(`pid ${this.pid}: injector already finished`);
    const copy = new Injector(child, child, this.foundSite, this.savedMask, this.timeoutMs, [], this.keepAreaAt);
    copy.saved.set(this.saved);
    copy.scratchMaps.push(...this.scratchMaps);
    copy.scratchNext = this.scratchNext;
    copy.scratchEnd = this.scratchEnd;
    copy.area = this.area;
    copy.site = this.site;
    return copy;
  }

  /**
   * The tracee's last call (exit_group), or with `signal` its death by that signal (queued by cr,
   * unblocked, delivered at the default action the caller set): no exit stop comes, the tracee
   * ends. Returns how it ended, as cr, its tracer, sees it; a tracer's wait leaves the zombie to
   * its real parent, which is told now (a tree's zombie, src/restart/tree.ts).
   */
  endWith(how: { code: number } | { signal: number }): WaitResult {
    if (this.done) throw new Error(`pid ${this.pid}: injector already finished`);
    this.done = true;
    this.gone = true;
    if ('code' in how) {
      const regs = this.work;
      regs.set(this.saved);
      regs[R.rip] = this.site;
      regs[R.rax] = BigInt(SYS.exit_group);
      regs[R.orig_rax] = -1n;
      regs[R.rdi] = BigInt(how.code);
      setRegsFrom(this.pid, regs);
    } else {
      kill(this.pid, how.signal);
      setSigmask(this.pid, Buffer.alloc(8));
    }
    cont(this.pid, 0);
    for (;;) {
      const stop = waitStop(this.pid, this.timeoutMs);
      if (stop.kind === 'exited' || stop.kind === 'signaled') return stop;
      // The signal-delivery stop of its own signal: deliver it. Anything else waits (SIGSTOP can
      // only stop it after its death is decided, and SIGKILL ends it all the same).
      cont(this.pid, stop.kind === 'stopped' && stop.event === 0 && 'signal' in how && stop.signal === how.signal ? how.signal : 0);
    }
  }

  /**
   * Run `fn` with every call going to `tid`, another thread of the tracee's process (a thread the
   * restart's husk made: traced from birth, in a ptrace stop, all signals blocked): the same area,
   * scratch and register base, since the thread shares the address space. Nothing of tid is put
   * back afterwards; the caller brings it to an event stop (eventStop) and sets its state.
   */
  onThread<T>(tid: number, fn: () => T): T {
    const leader = this.tracee;
    this.tracee = tid;
    try {
      return fn();
    } finally {
      this.tracee = leader;
    }
  }

  /**
   * Bring the tracee (or, inside onThread, that thread) to a PTRACE_EVENT_STOP without running any
   * of its code: the stop whose registers the kernel's syscall-restart logic sees on resuming.
   */
  eventStop(): void {
    toEventStop(this.pid, this.deferred);
  }

  /**
   * End an injection whose tracee gets a whole new state from the caller (the restart's husk):
   * nothing is put back. Scratch mappings and, with `dropArea`, the area are unmapped (the
   * area's munmap runs from the area itself: the tracee stops at its exit, and never runs
   * another instruction there), then the tracee is brought to a PTRACE_EVENT_STOP, all signals
   * still blocked; signals held back meanwhile are sent again. The caller sets mask and
   * registers.
   */
  handOver(opts: { dropArea: boolean }): void {
    if (this.done) throw new Error(`pid ${this.pid}: injector already finished`);
    for (const { addr, size } of this.scratchMaps) this.call('munmap', SYS.munmap, addr, size);
    if (opts.dropArea && this.area) this.call('munmap', SYS.munmap, this.area.addr, this.area.size);
    this.done = true;
    toEventStop(this.pid, this.deferred);
    for (const sig of this.deferred) kill(this.pid, sig);
  }

  /** The first call: map the area, from the tracee's own instruction, and move the calls there. */
  private mapArea(): void {
    const fixed = this.keepAreaAt;
    const size = BigInt(fixed?.bytes ?? SCRATCH_CHUNK);
    const prot = BigInt(PROT_READ | PROT_WRITE | PROT_EXEC);
    const flags = BigInt(MAP_PRIVATE | MAP_ANONYMOUS | (fixed ? MAP_FIXED_NOREPLACE : 0));
    const args = [fixed?.addr ?? 0n, size, prot, flags, -1n, 0n];
    const got = this.syscall(SYS.mmap, ...args);
    // A process that may not gain executable memory (PR_SET_MDWE) refuses it with EACCES: its
    // calls then stay at the found instruction, which is only read, and scratch is ordinary memory.
    if (got === -EACCES && !fixed) return;
    const addr = this.checked('mmap', args, got);
    this.area = { addr, size };
    // The area is cr's own anonymous memory: one ptrace word write is its cheapest store.
    poke(this.pid, addr, SYSCALL_WORD);
    this.site = addr;
    this.scratchNext = addr + BigInt(AREA_CODE_BYTES);
    this.scratchEnd = addr + size;
  }

  /**
   * Registers and mask as found. The event stop is reached still masked (nothing delivered on
   * the way), then the mask goes back: pending signals are delivered when the caller resumes
   * the tracee. A failure to stop still leaves the mask put back where ptrace allows it.
   */
  private putBack(): void {
    setRegsFrom(this.pid, this.saved);
    let stopFailed: unknown = null;
    try {
      toEventStop(this.pid, this.deferred);
    } catch (err) {
      stopFailed = err;
    }
    try {
      setSigmask(this.pid, this.savedMask);
    } catch (err) {
      throw stopFailed ?? err;
    }
    if (stopFailed) throw stopFailed;
    for (const sig of this.deferred) kill(this.pid, sig);
  }

  private newScratch(size: number): void {
    const len = BigInt(Math.ceil(size / 4096) * 4096);
    const prot = BigInt(PROT_READ | PROT_WRITE);
    const addr = this.call('mmap', SYS.mmap, 0n, len, prot, BigInt(MAP_PRIVATE | MAP_ANONYMOUS), -1n, 0n);
    this.scratchMaps.push({ addr, size: len });
    this.scratchNext = addr;
    this.scratchEnd = addr + len;
  }

  /**
   * Wait for our syscall's entry or exit stop; returns the result at the exit. Signals that
   * interfere (SIGSTOP, or any before the mask is set) are suppressed and held for finish().
   */
  private waitSyscallStop(nr: number, op: typeof ENTRY | typeof EXIT, interrupted = false): bigint {
    for (;;) {
      let stop: WaitResult;
      try {
        // The entry stop comes at once (the tracee is about to execute `syscall`), the exit may
        // never come; both waits are bounded, so a tracee that dies or vanishes cannot hang cr.
        stop = waitStop(this.pid, this.timeoutMs);
      } catch (err) {
        if (err instanceof SyscallError || op !== EXIT || interrupted) throw err;
        // Still blocked inside our syscall: interrupt it, collect its exit, leave the tracee
        // in an event stop, usable by further calls and finish().
        interrupt(this.pid);
        this.waitSyscallStop(nr, op, true);
        toEventStop(this.pid, this.deferred);
        throw new Error(`pid ${this.pid}: injected syscall ${nr} did not return within ${this.timeoutMs} ms (interrupted)`);
      }
      if (stop.kind !== 'stopped') {
        this.done = true;
        this.gone = true;
        throw new Error(`pid ${this.pid} ${stop.kind} (code ${stop.code}, signal ${stop.signal}) during injected syscall ${nr}`);
      }
      if (stop.event === 0) {
        // All blockable signals are blocked, so a SIGTRAP stop is a syscall stop (reported as
        // SIGTRAP, or SIGTRAP|0x80 with TRACESYSGOOD, which we cannot assume). Entry and exit
        // stops alternate.
        if ((stop.signal & 0x7f) === SIGTRAP) {
          if (op === ENTRY) return 0n;
          const regs = this.work;
          getRegsInto(this.pid, regs);
          if (regs[R.orig_rax] === BigInt(nr) && regs[R.rip] === this.site + 2n) return regs[R.rax]!;
          throw new Error(`pid ${this.pid}: unexpected syscall stop (orig_rax ${regs[R.orig_rax]}, rip ${hex(regs[R.rip]!)}) in injected syscall ${nr}`);
        }
        this.deferred.push(stop.signal);
      }
      contSyscall(this.pid, 0);
    }
  }
}

/**
 * From the current stop, reach a PTRACE_EVENT_STOP without running tracee code: PTRACE_INTERRUPT
 * then resume; the tracee traps on its way back to user mode, so a blocking wait is safe.
 * Signal-delivery-stops met on the way are suppressed and recorded in `deferred`.
 */
function toEventStop(pid: number, deferred: number[], timeoutMs = 5000): void {
  interrupt(pid);
  cont(pid, 0);
  for (;;) {
    const stop = waitStop(pid, timeoutMs);
    if (stop.kind !== 'stopped') throw new Error(`pid ${pid} ${stop.kind} (code ${stop.code}, signal ${stop.signal}) while stopping it`);
    if (stop.event === PTRACE_EVENT_STOP) return;
    if (stop.event === 0) deferred.push(stop.signal);
    cont(pid, 0);
  }
}
