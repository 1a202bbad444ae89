// ptrace(2) for x86_64: seize-based attach (no SIGSTOP side effects), register access and
// word peek/poke. Every call is synchronous on the main JS thread, as ptrace requires.
import { check, SyscallError } from './errno.js';
import { addressOf, clearErrno, lastErrno, libc } from './libc.js';
import { REG_COUNT, REG_NAMES, type Regs } from './registers.js';
import { signalName } from './signal.js';
import { waitStop, type WaitResult } from './wait.js';

const PTRACE_PEEKDATA = 2;
const PTRACE_POKEDATA = 5;
const PTRACE_CONT = 7;
const PTRACE_SYSCALL = 24;
const PTRACE_DETACH = 17;
const PTRACE_GETREGS = 12;
const PTRACE_SETREGS = 13;
const PTRACE_GETSIGINFO = 0x4202;
const PTRACE_GETREGSET = 0x4204;
const PTRACE_SETREGSET = 0x4205;
const PTRACE_SEIZE = 0x4206;
const PTRACE_INTERRUPT = 0x4207;
const PTRACE_PEEKSIGINFO = 0x4209;
const PTRACE_GETSIGMASK = 0x420a;
const PTRACE_SETSIGMASK = 0x420b;
const PTRACE_GET_RSEQ_CONFIGURATION = 0x420f;
const PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG = 0x4211;
const PTRACE_PEEKSIGINFO_SHARED = 1;

export const PTRACE_O_TRACESYSGOOD = 0x01;
export const PTRACE_O_TRACEFORK = 0x02;
export const PTRACE_O_TRACEVFORK = 0x04;
export const PTRACE_O_TRACECLONE = 0x08;
export const PTRACE_O_TRACEEXEC = 0x10;
export const PTRACE_O_TRACEVFORKDONE = 0x20;
export const PTRACE_O_TRACEEXIT = 0x40;
export const PTRACE_O_TRACESECCOMP = 0x80;
export const PTRACE_O_EXITKILL = 0x100000;
export const PTRACE_O_SUSPEND_SECCOMP = 0x200000;

export const PTRACE_EVENT_FORK = 1;
export const PTRACE_EVENT_VFORK = 2;
export const PTRACE_EVENT_CLONE = 3;
export const PTRACE_EVENT_EXEC = 4;
export const PTRACE_EVENT_VFORK_DONE = 5;
export const PTRACE_EVENT_EXIT = 6;
export const PTRACE_EVENT_SECCOMP = 7;
export const PTRACE_EVENT_STOP = 128;

export const NT_PRSTATUS = 1;
export const NT_PRFPREG = 2;
export const NT_X86_XSTATE = 0x202;

// The register layout is plain data (the image format stores registers in it), so it lives in
// registers.ts, which loads no libc; the ptrace calls below read and write it, and their callers
// take the layout from here.
export { REG_COUNT, REG_INDEX, REG_NAMES, type RegName, type Regs } from './registers.js';

const regsRaw = new BigInt64Array(REG_COUNT);
const regsRawBuf = Buffer.from(regsRaw.buffer);

export function seize(pid: number, options: number): void {
  check(Number(libc.ptrace(PTRACE_SEIZE, pid, 0, options)), () => `ptrace(PTRACE_SEIZE, pid=${pid}, options=0x${options.toString(16)})`);
}

export function interrupt(pid: number): void {
  check(Number(libc.ptrace(PTRACE_INTERRUPT, pid, 0, 0)), () => `ptrace(PTRACE_INTERRUPT, pid=${pid})`);
}

export function cont(pid: number, sig = 0): void {
  check(Number(libc.ptrace(PTRACE_CONT, pid, 0, sig)), () => `ptrace(PTRACE_CONT, pid=${pid}, ${sig ? signalName(sig) : 'sig=0'})`);
}

/** Resume until the next syscall-entry or syscall-exit stop (PTRACE_SYSCALL). */
export function contSyscall(pid: number, sig = 0): void {
  check(Number(libc.ptrace(PTRACE_SYSCALL, pid, 0, sig)), () => `ptrace(PTRACE_SYSCALL, pid=${pid}, ${sig ? signalName(sig) : 'sig=0'})`);
}

export function detach(pid: number, sig = 0): void {
  check(Number(libc.ptrace(PTRACE_DETACH, pid, 0, sig)), () => `ptrace(PTRACE_DETACH, pid=${pid}, ${sig ? signalName(sig) : 'sig=0'})`);
}

/** PTRACE_GETREGS into a raw image (REG_COUNT signed words, REG_INDEX order): no object built. */
export function getRegsInto(pid: number, out: BigInt64Array): void {
  check(libc.ptraceBuf(PTRACE_GETREGS, pid, 0, regsRawBuf), () => `ptrace(PTRACE_GETREGS, pid=${pid})`);
  out.set(regsRaw);
}

/** PTRACE_SETREGS from a raw image (REG_COUNT signed words, REG_INDEX order). */
export function setRegsFrom(pid: number, regs: BigInt64Array): void {
  regsRaw.set(regs);
  check(libc.ptraceBuf(PTRACE_SETREGS, pid, 0, regsRawBuf), () => `ptrace(PTRACE_SETREGS, pid=${pid})`);
}

export function getRegs(pid: number): Regs {
  getRegsInto(pid, regsRaw);
  const regs = {} as Regs;
  for (let i = 0; i < REG_COUNT; i++) regs[REG_NAMES[i]!] = regsRaw[i]!;
  return regs;
}

export function setRegs(pid: number, regs: Regs): void {
  const raw = new BigInt64Array(REG_COUNT);
  for (let i = 0; i < REG_COUNT; i++) raw[i] = BigInt.asIntN(64, regs[REG_NAMES[i]!]);
  setRegsFrom(pid, raw);
}

export interface Siginfo {
  signo: number;
  errno: number;
  /** si_code: for ptrace event stops SIGTRAP | event << 8; SIGTRAP | 0x80 for syscall stops with TRACESYSGOOD. */
  code: number;
  /** The whole 128-byte siginfo_t, for fields not decoded here. */
  raw: Buffer;
}

export function getSiginfo(pid: number): Siginfo {
  const raw = Buffer.alloc(128);
  check(libc.ptraceBuf(PTRACE_GETSIGINFO, pid, 0, raw), () => `ptrace(PTRACE_GETSIGINFO, pid=${pid})`);
  return { signo: raw.readInt32LE(0), errno: raw.readInt32LE(4), code: raw.readInt32LE(8), raw };
}

/**
 * The tracee's blocked-signal mask, 8 bytes little-endian (bit n-1 is signal n). While it sits in
 * sigsuspend/ppoll/pselect/epoll_pwait with a temporary mask, this is the mask it will return to.
 */
export function getSigmask(pid: number): Buffer {
  const mask = Buffer.alloc(8);
  check(libc.ptraceBuf(PTRACE_GETSIGMASK, pid, mask.length, mask), () => `ptrace(PTRACE_GETSIGMASK, pid=${pid})`);
  return mask;
}

/**
 * Set the blocked mask of a stopped tracee (SIGKILL and SIGSTOP stay unblocked). No signal can
 * slip through before it takes effect, unlike an injected rt_sigprocmask. A temporary mask of an
 * interrupted sigsuspend-like call is dropped; the call re-applies it when it restarts.
 */
export function setSigmask(pid: number, mask: Buffer): void {
  check(libc.ptraceBuf(PTRACE_SETSIGMASK, pid, mask.length, mask), () => `ptrace(PTRACE_SETSIGMASK, pid=${pid})`);
}

const SIGINFO_SIZE = 128;
const PEEK_BATCH = 32;

/** Every queued signal's siginfo (the thread's queue, or the process's shared one), without dequeuing. */
export function peekSiginfo(pid: number, shared: boolean): Buffer[] {
  const found: Buffer[] = [];
  const args = Buffer.alloc(16); // struct ptrace_peeksiginfo_args { u64 off; u32 flags; s32 nr; }
  const buf = Buffer.alloc(PEEK_BATCH * SIGINFO_SIZE);
  for (;;) {
    args.writeBigUInt64LE(BigInt(found.length), 0);
    args.writeUInt32LE(shared ? PTRACE_PEEKSIGINFO_SHARED : 0, 8);
    args.writeInt32LE(PEEK_BATCH, 12);
    const n = check(
      libc.ptraceBuf(PTRACE_PEEKSIGINFO, pid, addressOf(args), buf),
      () => `ptrace(PTRACE_PEEKSIGINFO, pid=${pid}, off=${found.length}, ${shared ? 'shared' : 'thread'})`,
    );
    for (let i = 0; i < n; i++) found.push(Buffer.from(buf.subarray(i * SIGINFO_SIZE, (i + 1) * SIGINFO_SIZE)));
    if (n < PEEK_BATCH) return found;
  }
}

export interface RseqConfiguration {
  pointer: number;
  size: number;
  signature: number;
}

/** The thread's registered rseq area, or null when it has none. */
export function getRseqConfiguration(pid: number): RseqConfiguration | null {
  const buf = Buffer.alloc(24);
  check(
    libc.ptraceBuf(PTRACE_GET_RSEQ_CONFIGURATION, pid, buf.length, buf),
    () => `ptrace(PTRACE_GET_RSEQ_CONFIGURATION, pid=${pid})`,
  );
  const pointer = Number(buf.readBigUInt64LE(0));
  return pointer === 0 ? null : { pointer, size: buf.readUInt32LE(8), signature: buf.readUInt32LE(12) };
}

/** The stopped thread's syscall user dispatch mode (prctl PR_SET_SYSCALL_USER_DISPATCH): 0 when off. */
export function getSyscallUserDispatch(pid: number): number {
  // struct ptrace_sud_config: mode, selector, offset, len (u64 each)
  const buf = Buffer.alloc(32);
  check(
    libc.ptraceBuf(PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG, pid, buf.length, buf),
    () => `ptrace(PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG, pid=${pid})`,
  );
  return Number(buf.readBigUInt64LE(0));
}

/** PTRACE_GETREGSET into `buffer`; returns how many bytes the kernel filled. */
export function getRegset(pid: number, nt: number, buffer: Buffer): number {
  const io = Buffer.alloc(16);
  io.writeBigUInt64LE(addressOf(buffer), 0);
  io.writeBigUInt64LE(BigInt(buffer.length), 8);
  check(libc.ptraceBuf(PTRACE_GETREGSET, pid, nt, io), () => `ptrace(PTRACE_GETREGSET, pid=${pid}, nt=0x${nt.toString(16)})`);
  return Number(io.readBigUInt64LE(8));
}

export function setRegset(pid: number, nt: number, buffer: Buffer): void {
  const io = Buffer.alloc(16);
  io.writeBigUInt64LE(addressOf(buffer), 0);
  io.writeBigUInt64LE(BigInt(buffer.length), 8);
  check(libc.ptraceBuf(PTRACE_SETREGSET, pid, nt, io), () => `ptrace(PTRACE_SETREGSET, pid=${pid}, nt=0x${nt.toString(16)})`);
}

/** One 8-byte word of tracee memory (PTRACE_PEEKDATA), as an unsigned value. */
export function peek(pid: number, addr: bigint): bigint {
  clearErrno();
  const word = libc.ptrace(PTRACE_PEEKDATA, pid, addr, 0);
  if (word === -1 && lastErrno() !== 0) throw new SyscallError(`ptrace(PTRACE_PEEKDATA, pid=${pid}, addr=0x${addr.toString(16)})`, lastErrno());
  return BigInt.asUintN(64, BigInt(word));
}

/** Write one 8-byte word of tracee memory (PTRACE_POKEDATA); works on read-only code pages too. */
export function poke(pid: number, addr: bigint, word: bigint): void {
  check(
    Number(libc.ptrace(PTRACE_POKEDATA, pid, addr, BigInt.asUintN(64, word))),
    () => `ptrace(PTRACE_POKEDATA, pid=${pid}, addr=0x${addr.toString(16)})`,
  );
}

/**
 * Seize a running (or stopped) process and bring it to a PTRACE_EVENT_STOP, the stop from which
 * it can be inspected, injected into and detached without side effects. A signal that arrives
 * first is passed on (as the kernel would have delivered it), and the wait goes on.
 */
export function seizeAndStop(pid: number, options = 0, timeoutMs = 5000): WaitResult {
  seize(pid, options);
  interrupt(pid);
  for (;;) {
    const result = waitStop(pid, timeoutMs);
    if (result.kind !== 'stopped') throw new Error(`pid ${pid} ${result.kind} while being stopped for ptrace`);
    if (result.event === PTRACE_EVENT_STOP) return result;
    cont(pid, result.event === 0 ? result.signal : 0);
  }
}
