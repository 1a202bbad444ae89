// The trace of remote calls that `--log FILE` writes: one line for every system call cr runs
// inside another process (by the Injector one at a time, or in a batch), with its arguments,
// its result or errno, and when it ran, so that a failure in the field can be explained after
// the fact. The command that was given --log opens a CallLog (src/commands/*); the engine only
// reports to it, and builds no line when no one listens.
import { errnoName } from '../../bridge/errno.js';
import { OutputFile } from '../output-file.js';
import { syscallName } from './syscalls.js';
import { now } from '../../bridge/clock.js';

let sink: ((line: string) => void) | null = null;
let origin = 0;

/** Send every remote call from now on to `write`, one line each (null: stop). */
export function traceTo(write: ((line: string) => void) | null): void {
  sink = write;
  origin = now();
}

/** Whether anyone listens: callers skip the work of a trace line when not. */
export const tracing = (): boolean => sink !== null;

/** An argument as a person reads it: small values in decimal, addresses and masks in hex. */
const arg = (v: bigint): string => (v > -4096n && v < 65536n ? String(v) : v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`);

/** A result: the value, or -1 and the errno's name. */
const result = (r: bigint): string => (r < 0n && r > -4096n ? `-1 ${errnoName(Number(-r))}` : arg(r));

const stamp = (ms: number): string => `${((ms - origin) / 1000).toFixed(6)}`;

/** One injected call: started at `start` (bridge/clock.ts's now()), took `ms`. */
export function traceCall(pid: number, nr: number, args: readonly bigint[], r: bigint, start: number, ms: number): void {
  sink?.(`${stamp(start)} pid ${pid} ${syscallName(nr)}(${args.map(arg).join(', ')}) = ${result(r)} (${ms.toFixed(3)} ms)`);
}

/**
 * The calls of one batch that ran, in order, with the batch's round trip: `ran` results for the
 * first calls (the last the mismatching one when fewer than all matched). The calls a batch did
 * not reach are counted, not listed.
 */
export function traceBatch(
  pid: number,
  /** expect null: any success */
  calls: ReadonlyArray<{ nr: number; args: readonly bigint[]; expect: bigint | null }>,
  results: readonly bigint[],
  matched: number,
  start: number,
  ms: number,
): void {
  if (!sink) return;
  const n = calls.length;
  for (let i = 0; i < results.length; i++) {
    const c = calls[i]!;
    const miss = i >= matched ? `, not the expected ${c.expect === null ? 'success' : result(c.expect)}` : '';
    // A LOAD record (a negative number) is no call: a check of memory an earlier call wrote.
    sink(`${stamp(start)} pid ${pid} ${c.nr < 0 ? 'load' : syscallName(c.nr)}(${c.args.map(arg).join(', ')}) = ${result(results[i]!)}${miss} (batch call ${i + 1} of ${n})`);
  }
  const skipped = n - results.length;
  sink(`${stamp(start)} pid ${pid} batch of ${n} calls: ${matched} as expected${skipped > 0 ? `, ${skipped} not run` : ''} (${ms.toFixed(3)} ms)`);
}

/**
 * The file --log names, collecting the trace from open() to close(). Written through
 * src/output-file.ts (a FIFO, device, socket or directory at the path is refused before anything
 * starts, never written into); its lines are kept in memory and the file is put at its name by
 * close(), which a command calls whether it succeeded or failed: a failure is when it is read.
 */
export class CallLog {
  private readonly lines: string[];

  private constructor(
    private readonly out: OutputFile,
    title: string,
  ) {
    this.lines = [`# ${title}; each line: seconds since the start, pid, call(arguments) = result or -1 ERRNO, then its time or its batch`];
  }

  /**
   * Run `work` with the trace going to path (when given); the log is put in place afterwards,
   * whether work succeeded or failed (its own failure to write is then not what is reported).
   */
  static async around<T>(path: string | undefined, title: string, work: () => Promise<T>): Promise<T> {
    if (path === undefined) return work();
    const log = CallLog.open(path, title);
    let result: T;
    try {
      result = await work();
    } catch (err) {
      try {
        log.close();
      } catch {
        // the work's error says more
      }
      throw err;
    }
    log.close();
    return result;
  }

  static open(path: string, title: string): CallLog {
    const log = new CallLog(OutputFile.create(path, { force: true, mode: 0o600, label: `the log ${path}` }), title);
    traceTo((line) => log.lines.push(line));
    return log;
  }

  close(): void {
    traceTo(null);
    try {
      this.out.write([Buffer.from(`${this.lines.join('\n')}\n`)]);
      this.out.commit();
    } finally {
      this.out.abort();
    }
  }
}
