// Batched remote execution: many system calls in the tracee for one ptrace round trip. The
// per-call injector (injector.ts) costs two ptrace stops a call (~25 µs); a plan of thousands of
// ops spends nearly all its time there. Here cr writes a list of syscall records and the data
// they point at into a private anonymous area of the tracee, and a small position-independent
// routine (batch.S, its bytes below) runs them one after another, stopping at the first result
// that is not the expected one, then stops itself with SIGSTOP. Nothing in the routine touches
// the program's memory, stack or signal handlers: SIGSTOP cannot be blocked, caught or ignored,
// so unlike int3 no trap signal is forced (which would reset a SIGTRAP handler).
// A tracee that may not map executable memory (MDWE) gets the same batches one injected call at
// a time: callers see one interface either way.
import { copyRanges, MAX_RANGES, readMemory, writeMemory } from '../../bridge/memory.js';
import { cont, getRegs, getSiginfo, interrupt, PTRACE_EVENT_STOP, setRegs } from '../../bridge/ptrace.js';
import { signalName, SIGSTOP } from '../../bridge/signal.js';
import { waitStop } from '../../bridge/wait.js';
import { SyscallError } from '../../bridge/errno.js';
import type { Injector } from './injector.js';
import { PROT_EXEC, PROT_READ, SYS } from './syscalls.js';
import { traceBatch, tracing } from './trace.js';
import { now } from '../../bridge/clock.js';

/** batch.S assembled (`as --64 batch.S && objcopy -O binary -j .text`); a test checks they agree. */
export const BATCH_CODE = Buffer.from(
  '4d85e47454488b03488b7b08488b7310488b53184c8b53204c8b43284c8b4b304885c078040f05eb03488b0748894340488b4b384839c8741749bb00000000000000804c39d97511483d01f0ffff73094883c34849ffcceba7b8270000000f054189c5b8ba0000000f0589c64489efba13000000b8ea0000000f05ebdc',
  'hex',
);
/** The record layout batch.S reads: nr, six arguments, expected result, result. */
export const RECORD_BYTES = 72;
const EXPECT_AT = 56;
const RESULT_AT = 64;
/** As an expected result: any result that is not an error (-4095..-1). */
export const ANY_SUCCESS = -(1n << 63n);
/**
 * As a record's number: no call; the result is the 8 bytes at the first argument. Checks what an
 * earlier call of the same batch wrote (pipe2's two fds, FIONREAD's count) inside the batch.
 */
export const LOAD = -1;
const PAGE = 4096;
const SI_TKILL = -6;
/** Default bytes of records and data one batch may hold. */
export const BATCH_CAPACITY = 1 << 20;

const isErrno = (r: bigint): boolean => r < 0n && r > -4096n;
const matches = (result: bigint, expect: bigint): boolean => result === expect || (expect === ANY_SUCCESS && !isErrno(result));

export interface BatchCall {
  nr: number;
  args: bigint[];
  /** the result the plan expects; ANY_SUCCESS for any non-error */
  expect: bigint;
}

export interface BatchOutcome {
  /** how many calls ran and gave what was expected (all of them: calls.length) */
  matched: number;
  /** results of the calls that ran, the mismatching one last when matched < calls.length */
  results: bigint[];
  /** the batch's staged data as the calls left it, when run() was asked to read it back */
  data: StagedData | null;
}

/** A batch's staged data read back after it ran (pipe2's fds, fstat's struct stat, ...). */
export class StagedData {
  constructor(
    private readonly start: bigint,
    private readonly bytes: Buffer,
  ) {}

  /** The len bytes at addr, an address Batch.put() gave. */
  slice(addr: bigint, len: number): Buffer {
    const from = Number(addr - this.start);
    return this.bytes.subarray(from, from + len);
  }
}

/** Words of a record: nr, six arguments, expected result, result. */
const RECORD_WORDS = RECORD_BYTES / 8;
/** First sizes of a batch's buffers; each doubles as needed, up to the batch's capacity. */
const FIRST_DATA = 4096;
const FIRST_RECORDS = 64;

/**
 * A batch being built: calls, and the data they point at, staged at addresses in the tracee. Both
 * are written as they are added into buffers of the layout batch.S reads (records as nine 64-bit
 * words; data 16-byte aligned), so running it is one write of the two: no object per call, no
 * copy of every piece at the end. Data given as a view (putView: a pipe's bytes, held in the
 * image already) is not copied at all: the write takes it from where it is, one range of the
 * process_vm_writev each.
 */
export class Batch {
  /** the data put() copied, packed: its bytes go to the tracee in `pieces`' order */
  private data = Buffer.alloc(FIRST_DATA);
  private copied = 0;
  /**
   * The staged data as the ranges it is written in, in address order: a view putView() gave
   * (`view`), or bytes of `data` from `from` (the copies between two views, as one range).
   */
  private pieces: Array<{ at: number; length: number; from: number; view: Buffer | null }> = [];
  private staged = 0;
  private words = new BigInt64Array(FIRST_RECORDS * RECORD_WORDS);
  /** the same records as 32-bit halves: a small number goes in without a BigInt made for it */
  private halves = new Int32Array(this.words.buffer);
  /** each call's count of arguments, for calls (a trace names only the ones given) */
  private argc = new Uint8Array(FIRST_RECORDS);
  private count = 0;
  private loads = 0;

  constructor(
    /** where the batch's data goes in the tracee */
    readonly dataAt: bigint,
    /** bytes of data and records the area holds */
    readonly capacity: number,
  ) {}

  /** Bytes left for one more call's data. */
  room(): number {
    return this.capacity - this.staged - (this.count + 1) * RECORD_BYTES;
  }

  /** Stage data (strings NUL-terminated) for a call, copied; its address in the tracee. */
  put(data: Buffer | string): bigint {
    const length = typeof data === 'string' ? Buffer.byteLength(data) + 1 : data.length;
    const size = (length + 15) & ~15;
    if (size > this.room()) throw new Error(`batch area full (${length} bytes more asked, ${this.room()} left)`);
    if (this.copied + size > this.data.length) {
      let grown = this.data.length * 2;
      while (grown < this.copied + size) grown *= 2;
      const next = Buffer.alloc(grown);
      this.data.copy(next, 0, 0, this.copied);
      this.data = next;
    }
    // Padding and a string's NUL are the zeros of the fresh buffer: nothing is written twice.
    if (typeof data === 'string') this.data.write(data, this.copied, 'utf8');
    else data.copy(this.data, this.copied);
    const last = this.pieces[this.pieces.length - 1];
    if (last !== undefined && last.view === null) last.length += size;
    else this.pieces.push({ at: this.staged, length: size, from: this.copied, view: null });
    this.copied += size;
    return this.stageAt(size);
  }

  /**
   * Stage data for a call without copying it: its bytes are read from `data` itself when the
   * batch runs, so they must not change until then (bytes an image holds). The 0-15 bytes that
   * pad it to the next piece are not written: a call reads only the bytes it is given.
   */
  putView(data: Buffer): bigint {
    const size = (data.length + 15) & ~15;
    if (size > this.room()) throw new Error(`batch area full (${data.length} bytes more asked, ${this.room()} left)`);
    if (data.length > 0) this.pieces.push({ at: this.staged, length: data.length, from: 0, view: data });
    return this.stageAt(size);
  }

  private stageAt(size: number): bigint {
    const addr = this.dataAt + BigInt(this.staged);
    this.staged += size;
    return addr;
  }

  /** A LOAD record: the 8 bytes at addr (an address put() gave) must be `expect`. */
  load(addr: bigint, expect: bigint | number): void {
    this.call(LOAD, [addr], expect);
  }

  /**
   * Add a call. Arguments and the expected result may be numbers (fds, flags, counts: any safe
   * integer, written as its 64-bit two's complement) or bigints (addresses, ANY_SUCCESS).
   */
  call(nr: number, args: ReadonlyArray<bigint | number>, expect: bigint | number): void {
    if (args.length > 6) throw new Error(`syscall ${nr}: at most 6 arguments`);
    if (this.room() < 0) throw new Error('batch area full');
    if (this.count === this.argc.length) {
      const words = new BigInt64Array(this.words.length * 2);
      words.set(this.words);
      this.words = words;
      this.halves = new Int32Array(words.buffer);
      const argc = new Uint8Array(this.argc.length * 2);
      argc.set(this.argc);
      this.argc = argc;
    }
    const w = this.count * RECORD_WORDS;
    this.setWord(w, nr);
    for (let a = 0; a < args.length; a++) this.setWord(w + 1 + a, args[a]!);
    this.setWord(w + EXPECT_AT / 8, expect);
    this.argc[this.count] = args.length;
    this.count++;
    if (nr === LOAD) this.loads++;
  }

  /**
   * Record word i: x86_64 is little-endian, as the routine reads the words; a BigInt64Array stores
   * each value modulo 2^64, as the registers take it. A 32-bit number goes in as its two halves
   * (sign-extended): the replay of a dense table adds thousands of calls, each a BigInt otherwise.
   */
  private setWord(i: number, v: bigint | number): void {
    if (typeof v === 'bigint') this.words[i] = v;
    else if ((v | 0) === v) {
      this.halves[2 * i] = v;
      this.halves[2 * i + 1] = v < 0 ? -1 : 0;
    } else this.words[i] = BigInt(v);
  }

  /** The result call i must give (ANY_SUCCESS: any that is not an error). */
  expected(i: number): bigint {
    return this.words[i * RECORD_WORDS + EXPECT_AT / 8]!;
  }

  /** Calls added so far. */
  get length(): number {
    return this.count;
  }

  /** Of them, the system calls (not LOAD records). */
  get syscalls(): number {
    return this.count - this.loads;
  }

  /** The calls added, read back from their records (a trace, a batch run call by call). */
  get calls(): BatchCall[] {
    const out: BatchCall[] = [];
    for (let i = 0; i < this.count; i++) {
      const w = i * RECORD_WORDS;
      out.push({ nr: Number(this.words[w]), args: Array.from(this.words.subarray(w + 1, w + 1 + this.argc[i]!)), expect: this.words[w + EXPECT_AT / 8]! });
    }
    return out;
  }

  /** Bytes of data staged so far. */
  get dataBytes(): number {
    return this.staged;
  }

  /** Where the records go in the tracee: right after the data. */
  get recordsAt(): bigint {
    return this.dataAt + BigInt(this.staged);
  }

  /**
   * The staged data and the records, as batch.S reads them from dataAt on (views, not copies):
   * the data as ranges in address order (`at`: its offset from dataAt), the records whole.
   */
  image(): { data: Array<{ at: number; data: Buffer }>; records: Buffer; recordsAt: bigint } {
    return {
      data: this.pieces.map((p) => ({ at: p.at, data: p.view ?? this.data.subarray(p.from, p.from + p.length) })),
      records: Buffer.from(this.words.buffer, this.words.byteOffset, this.count * RECORD_BYTES),
      recordsAt: this.recordsAt,
    };
  }
}

/**
 * Runs batches in a tracee an Injector holds (stopped, signals blocked). Its areas are the
 * injector's scratch memory, so finish() unmaps them with the rest.
 */
export class BatchRunner {
  private constructor(
    private readonly inj: Injector,
    /** the routine's address; null: run each call through the injector (no executable memory) */
    private readonly code: bigint | null,
    private readonly area: bigint,
    readonly capacity: number,
    private readonly timeoutMs: number,
  ) {}

  /**
   * Map the routine (a page of its own, executable) and a data area of `capacity` bytes.
   */
  static prepare(inj: Injector, opts: { capacity?: number; timeoutMs?: number } = {}): BatchRunner {
    const capacity = opts.capacity ?? BATCH_CAPACITY;
    const timeoutMs = opts.timeoutMs ?? 5000;
    const raw = inj.scratch(2 * PAGE + capacity);
    const code = (raw + BigInt(PAGE - 1)) & ~BigInt(PAGE - 1);
    const area = code + BigInt(PAGE);
    writeMemory(inj.pid, code, BATCH_CODE);
    // In the injector's own area (read+write+exec) the routine runs as it is: a small batch (the
    // dump's reads) saves the mprotect's two stops, a round trip to a frozen process each. Scratch
    // mapped beyond the area is read+write only: made read+exec, which a process that may not
    // gain executable memory (MDWE) refuses: call by call then.
    if (inj.executable(code, PAGE)) return new BatchRunner(inj, code, area, capacity, timeoutMs);
    const r = inj.syscall(SYS.mprotect, code, BigInt(PAGE), BigInt(PROT_READ | PROT_EXEC));
    return new BatchRunner(inj, isErrno(r) ? null : code, area, capacity, timeoutMs);
  }

  /** The same routine and area in a forked copy of the tracee, run through its injector. */
  forCopy(inj: Injector): BatchRunner {
    return new BatchRunner(inj, this.code, this.area, this.capacity, this.timeoutMs);
  }

  /** True when batches run in one round trip, false when call by call. */
  get batched(): boolean {
    return this.code !== null;
  }

  batch(): Batch {
    return new Batch(this.area, this.capacity);
  }

  /**
   * Run a batch: one write of its area, one resume, one stop (or, call by call, as many
   * injections). Signals other than our own SIGSTOP that stop the tracee on the way (only
   * SIGSTOP can: the rest are blocked) are suppressed and handed to the injector, which sends
   * them again at its finish: a stop asked for during the batch is not lost. `from`: go on with a
   * batch that ran before and stopped short, from its call `from` (its data and records are in
   * the tracee already); matched and results count from there. `unexpectedOnly`: of the results,
   * only the one that was not what its call expected is read (the others are left empty, holes in
   * `results`), for a caller that looks at no other: the dense table's replay reads back 215 KB of
   * records for that one otherwise. A trace (--log) reads them all.
   */
  run(batch: Batch, opts: { readBack?: boolean; from?: number; unexpectedOnly?: boolean } = {}): BatchOutcome {
    const from = opts.from ?? 0;
    const n = batch.length - from;
    const { data: staged, records, recordsAt: firstAt } = batch.image();
    const recordsAt = firstAt + BigInt(from * RECORD_BYTES);
    // Data and records are contiguous in the tracee: process_vm_writev of every piece, MAX_RANGES at a time.
    if (from === 0) {
      const ranges = staged.map((p) => ({ addr: Number(batch.dataAt) + p.at, data: p.data }));
      if (records.length > 0) ranges.push({ addr: Number(recordsAt), data: records });
      for (let i = 0; i < ranges.length; i += MAX_RANGES) {
        const part = ranges.slice(i, i + MAX_RANGES);
        const total = part.reduce((n, r) => n + r.data.length, 0);
        const done = copyRanges(this.inj.pid, part, true);
        if (done !== total) throw new Error(`process_vm_writev(pid=${this.inj.pid}, 0x${part[0]!.addr.toString(16)}, ${total} bytes in ${part.length} ranges): ${done} written`);
      }
    }
    // Call by call, each injected call is traced by the injector itself.
    const start = this.code !== null && tracing() ? now() : 0;
    const { matched, results } = this.code === null ? this.oneByOne(batch, from) : this.inOneGo(n, recordsAt, (opts.unexpectedOnly ?? false) && !start);
    if (start) {
      const calls = batch.calls.slice(from).map((c) => ({ nr: c.nr, args: c.args, expect: c.expect === ANY_SUCCESS ? null : c.expect }));
      traceBatch(this.inj.pid, calls, results, matched, start, now() - start);
    }
    const data = opts.readBack && batch.dataBytes > 0 ? new StagedData(batch.dataAt, readMemory(this.inj.pid, batch.dataAt, batch.dataBytes)) : null;
    return { matched, results, data };
  }

  private oneByOne(batch: Batch, from: number): { matched: number; results: bigint[] } {
    const results: bigint[] = [];
    let matched = 0;
    for (const c of batch.calls.slice(from)) {
      const r = c.nr === LOAD ? this.inj.read(c.args[0]!, 8).readBigInt64LE(0) : this.inj.syscall(c.nr, ...c.args);
      results.push(r);
      if (!matches(r, c.expect)) break;
      matched++;
    }
    return { matched, results };
  }

  private inOneGo(n: number, recordsAt: bigint, unexpectedOnly: boolean): { matched: number; results: bigint[] } {
    if (n === 0) return { matched: 0, results: [] };
    const pid = this.inj.pid;
    const regs = getRegs(pid);
    // orig_rax -1: resuming from a stop inside signal handling must not apply the kernel's
    // syscall-restart fixup to these registers.
    setRegs(pid, { ...regs, rip: this.code!, rbx: recordsAt, r12: BigInt(n), orig_rax: -1n });
    cont(pid, 0);
    // One bound for the whole batch: a stop that keeps coming (a SIGSTOP taken for someone else's)
    // must not keep it going either.
    const deadline = now() + this.timeoutMs;
    for (;;) {
      let stop;
      try {
        stop = waitStop(pid, Math.max(0, deadline - now()));
      } catch (err) {
        if (err instanceof SyscallError) throw err; // the wait itself failed: no tracee to stop
        this.halt(pid);
        throw new Error(`pid ${pid}: a batch of ${n} calls did not finish within ${this.timeoutMs} ms (interrupted)`);
      }
      if (stop.kind !== 'stopped') throw new Error(`pid ${pid} ${stop.kind} (code ${stop.code}, signal ${stop.signal}) during a batch of ${n} calls`);
      if (stop.event === 0 && stop.signal === SIGSTOP) {
        if (this.isRoutineStop(pid)) break;
        this.inj.defer(SIGSTOP);
      } else if (stop.event === 0) {
        throw new Error(`pid ${pid} got ${signalName(stop.signal)} during a batch of ${n} calls`);
      } else if (stop.event !== PTRACE_EVENT_STOP) {
        throw new Error(`pid ${pid}: ptrace event ${stop.event} during a batch of ${n} calls`);
      }
      cont(pid, 0);
    }
    const matched = Number((getRegs(pid).rbx - recordsAt) / BigInt(RECORD_BYTES));
    const ran = Math.min(n, matched + 1);
    const results: bigint[] = new Array(ran);
    if (unexpectedOnly) {
      if (matched < n) results[matched] = readMemory(pid, recordsAt + BigInt(matched * RECORD_BYTES + RESULT_AT), 8).readBigInt64LE(0);
      return { matched, results };
    }
    const records = readMemory(pid, recordsAt, ran * RECORD_BYTES);
    if (records.byteOffset % 8 === 0) {
      const words = new BigInt64Array(records.buffer, records.byteOffset, ran * RECORD_WORDS);
      for (let i = 0; i < ran; i++) results[i] = words[i * RECORD_WORDS + RESULT_AT / 8]!;
    } else {
      for (let i = 0; i < ran; i++) results[i] = records.readBigInt64LE(i * RECORD_BYTES + RESULT_AT);
    }
    return { matched, results };
  }

  /** The routine's closing SIGSTOP: a tgkill whose sender (si_pid) is the tracee's own thread group (cr holds its other threads meanwhile). */
  private isRoutineStop(pid: number): boolean {
    const info = getSiginfo(pid);
    return info.code === SI_TKILL && info.raw.readInt32LE(16) === this.inj.tgid;
  }

  /**
   * A batch overran its bound: stop the tracee where it is (PTRACE_INTERRUPT; a blocking call
   * returns to be restarted) and wait for that stop, so that finish() can put its registers back.
   * (No batch may hold a call that keeps its restart in the thread's restart block, a sleep or a
   * poll with a timeout: interrupted, it would overwrite the tracee's own interrupted sleep's.)
   * Without the wait, finish() found it still running and failed (ESRCH), leaving it traced.
   */
  private halt(pid: number): void {
    interrupt(pid);
    for (;;) {
      // Not the batch's own bound, which may be short: the stop comes once the tracee is scheduled.
      const stop = waitStop(pid, Math.max(this.timeoutMs, HALT_MS));
      if (stop.kind !== 'stopped') throw new Error(`pid ${pid} ${stop.kind} (code ${stop.code}, signal ${stop.signal}) while stopping an overrun batch`);
      if (stop.event === PTRACE_EVENT_STOP) return;
      // A signal met on the way: held for finish(), except the routine's own stop (the batch ended just then).
      if (stop.event === 0 && !(stop.signal === SIGSTOP && this.isRoutineStop(pid))) this.inj.defer(stop.signal);
      cont(pid, 0);
    }
  }
}

/** How long an overrun batch's tracee is given to reach the stop that halts it. */
const HALT_MS = 5000;

const hex = (v: bigint): string => (v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`);

interface Named {
  name: string;
  args: bigint[];
  want: bigint;
  /** the error to throw when the call gives another result than `want` (default: one naming it) */
  fail?: (result: bigint) => Error;
  /** an attempt's: told the result when the call fails; the calls after it run on */
  failed?: (result: bigint) => void;
}

/**
 * Calls queued by name, each with the result it must give, run in batches: the first that gives
 * another result throws, named with its arguments (`mmap(0x…, …) in the husk (pid N): EEXIST
 * (…)`), and nothing after it runs. For sequences whose results need no look before the next
 * call (the restart's munmaps, mremaps, mmaps, signal actions...). A call, or data put for the
 * calls that follow, that does not fit runs what is queued first. An attempt's failure is told,
 * not thrown, and the calls after it run on (the batch goes on from the next call).
 */
export class CallQueue {
  private batch: Batch;
  private named: Named[] = [];

  constructor(
    private readonly runner: BatchRunner,
    /** how errors place the calls: `in the husk (pid N)` */
    private readonly where: string,
  ) {
    this.batch = runner.batch();
  }

  /** Whether `bytes` of data and `calls` more calls fit in the batch being built. */
  fits(bytes: number, calls: number): boolean {
    return this.batch.room() >= ((bytes + 15) & ~15) + calls * RECORD_BYTES;
  }

  /** Stage data for the next `calls` calls (strings NUL-terminated); its address in the tracee. */
  put(data: Buffer | string, calls = 1): bigint {
    const length = typeof data === 'string' ? Buffer.byteLength(data) + 1 : data.length;
    if (!this.fits(length, calls)) this.run();
    return this.batch.put(data);
  }

  /** Queue a call; `want` the result it must give (default: any success). */
  add(name: string, nr: number, args: bigint[], want: bigint = ANY_SUCCESS, fail?: (result: bigint) => Error): void {
    // No room only when no data was put for this call: put() keeps room for the calls it serves.
    if (this.batch.room() < 0) this.run();
    this.batch.call(nr, args, want);
    this.named.push({ name, args, want, fail });
  }

  /** Queue a call whose failure (an errno) is told to `failed`, not thrown: the calls after it run on. */
  attempt(name: string, nr: number, args: bigint[], failed: (result: bigint) => void): void {
    if (this.batch.room() < 0) this.run();
    this.batch.call(nr, args, ANY_SUCCESS);
    this.named.push({ name, args, want: ANY_SUCCESS, failed });
  }

  /** Run what is queued; the results, and the staged data as the calls left it with `readBack`. */
  run(opts: { readBack?: boolean } = {}): { results: bigint[]; data: StagedData | null } {
    const named = this.named;
    const batch = this.batch;
    this.batch = this.runner.batch();
    this.named = [];
    if (named.length === 0) return { results: [], data: null };
    const results: bigint[] = [];
    for (let from = 0; ; ) {
      const out = this.runner.run(batch, { readBack: opts.readBack, from });
      results.push(...out.results);
      const at = from + out.matched;
      if (at === named.length) return { results, data: out.data };
      const c = named[at]!;
      const r = out.results[out.matched]!;
      if (c.failed) {
        c.failed(r);
        from = at + 1;
        if (from === named.length) return { results, data: out.data };
        continue;
      }
      if (c.fail) throw c.fail(r);
      const call = `${c.name}(${c.args.map(hex).join(', ')}) ${this.where}`;
      if (isErrno(r)) throw new SyscallError(call, Number(-r));
      throw new Error(`${call} returned ${hex(r)}, not ${hex(c.want)}`);
    }
  }
}
