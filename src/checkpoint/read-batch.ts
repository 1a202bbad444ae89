// The dump's questions to a frozen process, asked in one batch (src/inject/batch.ts) instead of
// one injected call each: an injected call costs two ptrace stops, and a dump asks about a
// hundred (64 signal actions alone), all while the process is frozen. Each call writes into an
// output buffer of its own, staged in the batch area and read back once the batch has run.
// Some getters fail on kernels without the option (EINVAL) or on CPUs without the feature
// (ENODEV): such a call names the errnos it may give, and the batch, which stops at the first
// failure, goes on from the next call (its outputs so far staged again as they were read back).
import { SyscallError } from '../../bridge/errno.js';
import { ANY_SUCCESS, BatchRunner, RECORD_BYTES, type Batch } from '../inject/batch.js';
import type { Injector } from '../inject/injector.js';

interface Queued {
  name: string;
  nr: number;
  args: Arg[];
  /** negative errnos the call may give instead of succeeding ('any': every failure is an answer) */
  tolerated: readonly bigint[] | 'any';
}

/** An output buffer: where it is in the tracee, and its bytes once the batch ran. */
export interface Output {
  /** its address in the tracee: known once the batch area is (run) */
  addr: bigint;
  readonly length: number;
}

/** An argument: a number, an output buffer's address, or an address inside one. */
export type Arg = bigint | Output | { of: Output; offset: number };

const hex = (v: bigint): string => (v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`);
const PAGE = 4096;

const argsOf = (c: Queued): bigint[] => c.args.map((a) => (typeof a === 'bigint' ? a : 'of' in a ? a.of.addr + BigInt(a.offset) : a.addr));
const failure = (c: Queued, args: bigint[], r: bigint, pid: number): SyscallError => new SyscallError(`${c.name}(${args.map(hex).join(', ')}) injected in pid ${pid}`, Number(-r));

export class ReadBatch {
  private readonly calls: Queued[] = [];
  private readonly outputs: Output[] = [];
  private staged = 0;
  private results: bigint[] | null = null;
  private bytes: Buffer[] = [];

  constructor(private readonly inj: Injector) {}

  /** A zeroed output buffer of len bytes for a call to fill. */
  output(len: number): Output {
    const out = { addr: 0n, length: len };
    this.outputs.push(out);
    this.staged += (len + 15) & ~15;
    return out;
  }

  /** Queue a call; its index in results(). `tolerated`: errnos (negative) that are an answer, not a failure. */
  add(name: string, nr: number, args: Arg[], tolerated: readonly bigint[] | 'any' = []): number {
    this.calls.push({ name, nr, args, tolerated });
    return this.calls.length - 1;
  }

  /**
   * Run every queued call in order, in as few batches as the tolerated failures allow (one when
   * there are none). A failure not tolerated throws, naming the call; nothing after it runs.
   */
  run(): void {
    // The area holds the outputs, then the records.
    const capacity = Math.ceil((this.staged + (this.calls.length + 1) * RECORD_BYTES + 16) / PAGE) * PAGE;
    const runner = BatchRunner.prepare(this.inj, { capacity });
    const results: bigint[] = [];
    this.bytes = this.outputs.map((o) => Buffer.alloc(o.length));
    for (let from = 0; from < this.calls.length; ) {
      const batch = runner.batch();
      this.stage(batch);
      for (let i = from; i < this.calls.length; i++) batch.call(this.calls[i]!.nr, argsOf(this.calls[i]!), ANY_SUCCESS);
      const out = runner.run(batch, { readBack: this.outputs.length > 0 });
      if (out.data) this.bytes = this.outputs.map((o) => Buffer.from(out.data!.slice(o.addr, o.length)));
      results.push(...out.results);
      const stopped = from + out.matched;
      if (stopped === this.calls.length) break;
      const c = this.calls[stopped]!;
      const r = out.results[out.matched]!;
      if (c.tolerated !== 'any' && !c.tolerated.includes(r)) throw failure(c, argsOf(c), r, this.inj.pid);
      from = stopped + 1;
    }
    this.results = results;
  }

  /** The raw result of call i (a tolerated failure as -errno). */
  result(i: number): bigint {
    if (this.results === null) throw new Error('ReadBatch: results before run()');
    return this.results[i]!;
  }

  /** What a call wrote into an output buffer. */
  read(o: Output): Buffer {
    if (this.results === null) throw new Error('ReadBatch: outputs before run()');
    return this.bytes[this.outputs.indexOf(o)]!;
  }

  /** Outputs are staged first, in the order asked for, so every batch puts them at the same addresses. */
  private stage(batch: Batch): void {
    this.outputs.forEach((o, i) => {
      const addr = batch.put(this.bytes[i]!);
      if (o.addr !== 0n && o.addr !== addr) throw new Error('ReadBatch: an output moved between batches');
      o.addr = addr;
    });
  }
}
