// Replaying a plan inside a stopped target: every op becomes a system call or a few (a pipe's
// bytes: one write per packet), queued with the result the plan expects and run in batches
// (src/inject/batch.ts); the first disagreement stops the replay. A failure before the plan's commit can be undone exactly
// (rollback): until then the plan only made fds at numbers the target did not have.
import { SyscallError } from '../../bridge/errno.js';
import { F_DUPFD, F_DUPFD_CLOEXEC, F_SETFD, F_SETFL, FD_CLOEXEC } from '../../bridge/fcntl.js';
import { closeSync, constants as fsConstants, openSync, readSync } from 'node:fs';
import { F_SETPIPE_SZ, pipe2, setPipeSize, SPLICE_F_NONBLOCK, tee } from '../../bridge/pipe.js';
import { encodeRlimit, RLIMIT_NOFILE } from '../../bridge/rlimit.js';
import { CrError, EXIT_BAD_INPUT } from '../errors.js';
import type { Injector } from '../inject/injector.js';
import { ANY_SUCCESS, Batch, BatchRunner, LOAD, RECORD_BYTES, type StagedData } from '../inject/batch.js';
import { fileAt, mismatch, OPENED_SCRATCH_BYTES, openedFrom, STATFS_AT, type Expected } from '../inject/opened.js';
import { SYS } from '../inject/syscalls.js';
import type { CallQueue } from '../kinds/kind.js';
import { kindOf } from '../kinds/registry.js';
import { O_CLOEXEC, O_NONBLOCK, O_PATH, pathOf, type Desc, type FdTable, type Pipe } from '../model/fdtable.js';
import { printable } from '../printable.js';
import { formatOp } from '../plan/format.js';
import { OP_NAMES, OpWords, Plan, STRIDE, type Op, type PlanRecords } from '../plan/ops.js';
import { listFds } from '../proc/fds.js';
import { readNofile } from '../proc/limits.js';
import type { TargetState } from '../proc/target-state.js';
import { now } from '../../bridge/clock.js';

const AT_FDCWD = -100n;
const SEEK_SET = 0n;
const FIONREAD = 0x541bn;
const ENXIO = 6n;

/** A replay that stopped at an op; `afterCommit` says whether rollback can still undo it. */
export class ReplayError extends CrError {
  constructor(
    message: string,
    readonly opIndex: number,
    readonly afterCommit: boolean,
    code = 1,
  ) {
    super(message, code);
    this.name = 'ReplayError';
  }
}

export interface ReplayStats {
  /** syscalls run in the target, pipe-data writes included */
  syscalls: number;
  /** the batches they ran in (one ptrace round trip each; call by call where none could be mapped) */
  batches: number;
  /** ms the batches took, writing them into the target and reading their results back included */
  batchMs: number;
}

/**
 * What went wrong inside one op: an errno, or a result the plan did not expect (`detail`). The op
 * is put into words only then, not for every op that succeeds.
 */
class OpFailure extends Error {
  constructor(
    readonly detail: string,
    readonly errno = 0,
    /** the call that failed, when it is not the op's own (a check cr adds) */
    readonly call?: string,
  ) {
    super(detail);
  }
}

/** A path that opened something other than what the image says: refused, in its own words. */
class WrongFile extends OpFailure {}

function describeFailure(op: Op, failure: OpFailure): string {
  const call = failure.call ?? callOf(op);
  return failure.errno ? new SyscallError(call, failure.errno).message : `${call}: ${failure.detail}`;
}

const isErrno = (r: bigint): boolean => r < 0n && r > -4096n;

/** The fd an op is about, for the one-line error. */
function fdOf(op: Op): string {
  switch (op.op) {
    case 'pipe2':
    case 'socketpair':
      return `fds ${op.fds[0]}, ${op.fds[1]}`;
    case 'dup2':
      return `fd ${op.to}`;
    case 'prlimit':
    case 'fork':
    case 'commit':
      return 'no fd';
    default:
      return `fd ${op.fd}`;
  }
}

/** formatOp without its trailing note (`description 3`, `pipe 0`). */
const callOf = (op: Op): string => formatOp(op).split(/\s{2,}/)[0]!;

/** What each path of the table must open, and the image's fds that name it, for the refusal. */
interface PathWant {
  want: Expected;
  fds: number[];
}

function pathWants(table: FdTable): Map<string, PathWant> {
  const wants = new Map<string, PathWant>();
  const byDesc = new Map<number, PathWant>();
  for (const d of table.descs) {
    const want = kindOf(d).opens?.(d);
    const path = pathOf(d);
    if (want === undefined || path === undefined) continue;
    // Validation lets a path name one thing (and one device) only: the first description says it.
    let w = wants.get(path);
    if (!w) wants.set(path, (w = { want, fds: [] }));
    byDesc.set(d.id, w);
  }
  for (const f of table.fds) byDesc.get(f.desc)?.fds.push(f.fd);
  return wants;
}

/**
 * One call queued in a batch: what to check once it ran, when there is more to it than its result
 * (the op it is part of is kept beside it, its expected result in the batch's record).
 */
interface Queued {
  /** the call, when it is not the op's own (a check cr adds), for the one-line error */
  call?: string;
  /** looks at what the call left in the target (pipe2's fds, what an open opened); throws OpFailure */
  check?: (data: StagedData) => void;
  /** what to say instead of the errno when the call fails with it (an open that hit ENXIO) */
  onErrno?: (errno: bigint) => void;
  /** what to say when the result is not `want` (a LOAD record's memory: pipe2's fds, a count) */
  mismatch?: (result: bigint) => OpFailure;
}

/** A call with nothing to check but that it succeeded. */
const NOTHING: Queued = Object.freeze({});

/** Bytes a batch takes for data of n bytes (Batch.put keeps 16-byte alignment). */
const padded = (n: number): number => (n + 15) & ~15;


/** Bytes pipe2 writes its two fds into (put() copies them: one zeroed buffer serves every pipe2). */
const PAIR = Buffer.alloc(8);

class Replayer {
  readonly stats: ReplayStats = { syscalls: 0, batches: 0, batchMs: 0 };
  private readonly pipes = new Map<number, Pipe>();
  /** descriptions by id and what each path must open: made when an op first needs them */
  private descsById: Map<number, Desc> | undefined;
  private pathsWanted: Map<string, PathWant> | undefined;
  /** pipes inside named FIFOs: opening the path may join a pipe someone else still holds */
  private readonly fifoPipes = new Set<number>();
  /** pipe2's fds checked in the batch: when they are not the plan's, the op says which it expected */
  private readonly pairCheck: Queued = {
    mismatch: (got) => {
      const made = [Number(BigInt.asIntN(32, got)), Number(BigInt.asIntN(32, got >> 32n))];
      const b = this.opIndex * STRIDE;
      return new OpFailure(`the kernel made fds [${made.join(', ')}], the plan expects [${this.words.words[b + 2]}, ${this.words.words[b + 3]}]`);
    },
  };
  private readonly runner: BatchRunner;
  /** Bytes of one pipe write: a stream is cut to fit a batch (half of one); a packet never is. */
  private readonly chunkMax: number;
  private batch: Batch;
  private queued: Queued[] = [];
  /** the plan op each queued call is part of */
  private queuedOps: number[] = [];
  /** how many of the queued calls have a check to make in cr once they ran */
  private checks = 0;
  /** index of the op being queued */
  private opIndex = 0;
  /** where each `pty` op holds the object it made, by description id */
  private readonly held = new Map<number, number>();

  constructor(
    private readonly inj: Injector,
    private readonly table: FdTable,
    /** the plan's ops, read by index */
    private readonly words: OpWords,
    private readonly opts: ReplayOptions,
  ) {
    for (const p of table.pipes) this.pipes.set(p.id, p);
    for (const d of table.descs) if (d.kind === 'fifo') this.fifoPipes.add(d.pipe);
    this.runner = opts.runner ?? BatchRunner.prepare(inj);
    this.chunkMax = this.runner.capacity / 2;
    this.batch = this.runner.batch();
  }

  private get descs(): Map<number, Desc> {
    if (this.descsById === undefined) {
      this.descsById = new Map();
      for (const d of this.table.descs) this.descsById.set(d.id, d);
    }
    return this.descsById;
  }

  private get paths(): Map<string, PathWant> {
    return (this.pathsWanted ??= pathWants(this.table));
  }

  /** The calls a kind queues for the op being queued (src/kinds/kind.ts CallQueue). */
  private callQueue(): CallQueue {
    return {
      call: (name, args, want, call) => this.queue(SYS[name], args, want, call === undefined ? NOTHING : { call }),
      // Data is staged in the batch of its calls: a batch without room runs first.
      put: (data) => this.stage(data, padded(data.length) + 4 * RECORD_BYTES),
      load: (addr, want, what) => this.queue(LOAD, [addr], want, { mismatch: (got) => new OpFailure(what(got)) }),
      held: (desc) => {
        const fd = this.held.get(desc);
        if (fd === undefined) throw new OpFailure(`description ${desc}'s object was not made before it (no pty op)`);
        return fd;
      },
      self: this.inj.pid,
    };
  }

  /**
   * Queue a call that must give `want` (any success when the plan names no result); the batch is
   * run first when it has no room for one more call.
   */
  private queue(nr: number, args: ReadonlyArray<bigint | number>, want: bigint | number = ANY_SUCCESS, q: Queued = NOTHING): void {
    // Only a call with no data of its own can find the batch full: an op that stages data
    // reserved room for all its calls with it.
    if (this.batch.room() < 0) this.flush();
    this.batch.call(nr, args, want);
    this.queued.push(q);
    this.queuedOps.push(this.opIndex);
    if (q.check) this.checks++;
  }

  /**
   * Stage data for the op being queued, running the batch first unless it has `room` bytes for
   * all the op's data and its calls after the first: an op's calls and data share one batch.
   */
  private stage(data: Buffer | string, room: number): bigint {
    if (this.batch.room() < room) this.flush();
    return this.batch.put(data);
  }

  /** The op the replay is at: the one being queued, or whose call a returned batch is checking. */
  get currentOp(): number {
    return this.opIndex;
  }

  /**
   * Run what is queued, then check each call's result and what it left, in order, as if run one
   * by one: the first failure throws (OpFailure, tagged with its op by replay()).
   */
  flush(): void {
    const calls = this.queued;
    const ops = this.queuedOps;
    if (calls.length === 0) return;
    const queueing = this.opIndex;
    this.opts.onBatch?.({ recordsAt: this.batch.recordsAt, calls: calls.length, lastOp: ops[ops.length - 1]! });
    const t = now();
    const ran = this.batch;
    // Only a call that did not give its expected result is looked at: the rest are not read back.
    const out = this.runner.run(this.batch, { readBack: this.checks > 0, unexpectedOnly: true });
    this.stats.batchMs += now() - t;
    this.stats.batches++;
    // A batch that stops early fails the replay: its count only says how far it went.
    this.stats.syscalls += out.matched === ran.length ? ran.syscalls : out.results.length;
    this.batch = this.runner.batch();
    this.queued = [];
    this.queuedOps = [];
    this.checks = 0;
    for (let i = 0; i < out.results.length; i++) {
      const q = calls[i]!;
      this.opIndex = ops[i]!;
      if (i < out.matched) {
        q.check?.(out.data!);
        continue;
      }
      const r = out.results[i]!;
      if (q.mismatch) throw q.mismatch(r);
      if (isErrno(r)) {
        q.onErrno?.(-r);
        throw new OpFailure('', Number(-r), q.call);
      }
      throw new OpFailure(`the kernel returned ${r}, the plan expects ${ran.expected(i)}`, 0, q.call);
    }
    this.opIndex = queueing;
  }

  /**
   * Queue op i of the plan. The calls of the ops a table has thousands of (pipe2, its write, dup2,
   * close, the fcntls) are queued from the plan's words, numbers as they are; the rest from
   * their records.
   */
  run(i: number): void {
    this.opIndex = i;
    const w = this.words.words;
    const b = i * STRIDE;
    const name = OP_NAMES[w[b]!];
    if (name === undefined) throw new Error(`plan words: unknown op kind ${w[b]} at op ${i}`);
    switch (name) {
      case 'pipe2': {
        // The two fds pipe2 wrote are checked in the batch (a LOAD record), so a write through
        // them can follow in the same batch: the routine stops before it if they are not the plan's.
        const pair = this.stage(PAIR, 16 + RECORD_BYTES);
        this.queue(SYS.pipe2, [pair, w[b + 1]!], 0);
        this.queue(LOAD, [pair], (BigInt(w[b + 3]!) << 32n) | BigInt(w[b + 2]!), this.pairCheck);
        return;
      }
      case 'open':
        this.open(this.words.op(i) as Extract<Op, { op: 'open' }>);
        return;
      case 'dup2': {
        const to = w[b + 2]!;
        if (w[b + 3] !== 0) this.queue(SYS.dup3, [w[b + 1]!, to, O_CLOEXEC], to);
        else this.queue(SYS.dup2, [w[b + 1]!, to], to);
        return;
      }
      case 'dupfd':
        this.queue(SYS.fcntl, [w[b + 1]!, w[b + 3] !== 0 ? F_DUPFD_CLOEXEC : F_DUPFD, w[b + 2]!], w[b + 4]!);
        return;
      case 'close':
        this.queue(SYS.close, [w[b + 1]!], 0);
        return;
      case 'setfl':
        this.queue(SYS.fcntl, [w[b + 1]!, F_SETFL, w[b + 2]!], 0);
        return;
      case 'setfd':
        this.queue(SYS.fcntl, [w[b + 1]!, F_SETFD, w[b + 2] !== 0 ? FD_CLOEXEC : 0], 0);
        return;
      case 'setpipesz':
        this.queue(SYS.fcntl, [w[b + 1]!, F_SETPIPE_SZ, w[b + 2]!], w[b + 2]!);
        return;
      case 'lseek': {
        const offset = BigInt(this.words.text(i));
        this.queue(SYS.lseek, [w[b + 1]!, offset, SEEK_SET], offset);
        return;
      }
      case 'create': {
        const op = this.words.op(i) as Extract<Op, { op: 'create' }>;
        const d = this.descs.get(op.desc);
        const kind = d === undefined ? undefined : kindOf(d);
        if (d === undefined || kind?.create === undefined) throw new OpFailure(`the image has no description ${op.desc} its kind makes`);
        // The kind's calls and their data go in one batch: reserve room for a few of each.
        if (this.batch.room() < 64 + 4 * RECORD_BYTES) this.flush();
        kind.create(d, op.cloexec, op.fd, this.callQueue());
        return;
      }
      case 'pty': {
        const op = this.words.op(i) as Extract<Op, { op: 'pty' }>;
        const d = this.descs.get(op.desc);
        const kind = d === undefined ? undefined : kindOf(d);
        if (d === undefined || kind?.prepare === undefined || kind.finish === undefined) throw new OpFailure(`the image has no description ${op.desc} whose object is made first`);
        // The kind's calls and their data (a termios, a window size) go in one batch.
        if (this.batch.room() < 256 + 8 * RECORD_BYTES) this.flush();
        if (op.done) {
          kind.finish(d, op.fd, this.callQueue());
          this.held.delete(op.desc);
        } else {
          kind.prepare(d, op.lowest, op.fd, this.callQueue());
          this.held.set(op.desc, op.fd);
        }
        return;
      }
      case 'socketpair': {
        const op = this.words.op(i) as Extract<Op, { op: 'socketpair' }>;
        const ends = op.descs.map((id) => (id < 0 ? undefined : this.descs.get(id)));
        const d = ends[0] ?? ends[1];
        const kind = d === undefined ? undefined : kindOf(d);
        if (d === undefined || kind?.createPair === undefined) throw new OpFailure(`the image has no pair of descriptions ${op.descs.join(', ')} their kind makes`);
        if (this.batch.room() < 64 + 8 * RECORD_BYTES) this.flush();
        kind.createPair(ends as never, op.cloexec, op.fds, this.callQueue());
        return;
      }
      case 'link': {
        const op = this.words.op(i) as Extract<Op, { op: 'link' }>;
        const d = this.descs.get(op.desc);
        const kind = d === undefined ? undefined : kindOf(d);
        if (d === undefined || kind?.link === undefined) throw new OpFailure(`the image has no description ${op.desc} with links`);
        if (this.batch.room() < 64 + 2 * RECORD_BYTES) this.flush();
        kind.link(d, op.item, op.fd, this.callQueue());
        return;
      }
      case 'write':
        this.write(w[b + 1]!, w[b + 2]!, w[b + 3]!);
        return;
      case 'prlimit': {
        const limit = this.stage(encodeRlimit({ soft: w[b + 1]!, hard: w[b + 2]! }), 32);
        this.queue(SYS.prlimit64, [0n, RLIMIT_NOFILE, limit, 0n], 0);
        return;
      }
      case 'fork':
        // Only a tree's restart runs plans with forks (src/restart/tree.ts): what was queued runs
        // first, so the child starts with the table the plan says.
        if (!this.opts.onFork) throw new OpFailure('a fork in the plan of one process');
        this.flush();
        this.opts.onFork(w[b + 1]!);
        return;
      case 'commit':
        // Nothing after the commit runs until all before it ran and passed its checks: up to
        // here the target only gained fds at numbers it did not have, which rollback undoes.
        this.flush();
        this.opts.onCommit?.();
        return;
      default: {
        const never: never = name;
        throw new Error(`unknown op ${JSON.stringify(never)}`);
      }
    }
  }

  /**
   * An open by path, judged by what it opened before anything goes through the fd (docs/restore.md,
   * "What a path opens"): fstat and fstatfs follow it in the batch, and their results are judged
   * when the batch is back, before the next batch runs; a pipe's bytes are only ever written by
   * a later batch. O_NONBLOCK is added for the open, so a path that became a FIFO (or a device that
   * waits for a carrier) cannot hold the target, then F_SETFL puts back the planned flags (only
   * O_NONBLOCK differs). Reopens through /proc/self/fd/N name a pipe cr just made.
   */
  private open(op: Extract<Op, { op: 'open' }>): void {
    const byPath = op.via < 0 ? this.paths.get(op.path) : undefined;
    // An O_PATH open waits for nothing, and F_SETFL on its fd is EBADF: it gets its flags as they are.
    const flags = byPath && (op.flags & O_PATH) === 0 ? op.flags | O_NONBLOCK : op.flags;
    const room = padded(Buffer.byteLength(op.path) + 1) + padded(OPENED_SCRATCH_BYTES) + 3 * RECORD_BYTES;
    const path = this.stage(op.path, room);
    this.queue(SYS.openat, [AT_FDCWD, path, flags, 0], op.fd, {
      onErrno: (errno) => {
        if (byPath && errno === ENXIO) this.lookAt(op.path, byPath);
      },
    });
    if (!byPath) return;
    const fd = op.fd;
    const stat = this.batch.put(Buffer.alloc(OPENED_SCRATCH_BYTES));
    this.queue(SYS.fstat, [fd, stat], 0, { call: `fstat(${op.fd})` });
    this.queue(SYS.fstatfs, [fd, stat + STATFS_AT], 0, {
      call: `fstatfs(${op.fd})`,
      check: (data) => {
        const why = mismatch(openedFrom(data.slice(stat, OPENED_SCRATCH_BYTES)), byPath.want);
        if (why !== null) this.refuse(op.path, byPath, why);
      },
    });
    if (flags !== op.flags) this.queue(SYS.fcntl, [fd, F_SETFL, op.flags], 0, { call: `fcntl(${op.fd}, F_SETFL)` });
  }

  /**
   * The open failed with ENXIO, which under O_NONBLOCK means a FIFO with no reader or a socket:
   * when that is not what the image says, say so rather than the errno. The path is looked at
   * through an O_PATH fd (it opens nothing), closed again, with injected calls (the batch is
   * done). The open has failed already: this only words the refusal.
   */
  private lookAt(text: string, byPath: PathWant): void {
    const path = this.inj.put(text);
    const fd = this.inj.syscall(SYS.openat, AT_FDCWD, path, BigInt(O_PATH | O_CLOEXEC), 0n);
    if (isErrno(fd)) return;
    let why: string | null;
    try {
      why = mismatch(fileAt(this.inj, fd, this.inj.scratch(OPENED_SCRATCH_BYTES)), byPath.want);
    } finally {
      this.inj.syscall(SYS.close, fd);
    }
    if (why !== null) this.refuse(text, byPath, why);
  }

  private refuse(path: string, byPath: PathWant, why: string): never {
    const [first, ...more] = byPath.fds;
    const fds = more.length === 0 ? `fd ${first}` : more.length <= 3 ? `fds ${byPath.fds.join(', ')}` : `fds ${byPath.fds.slice(0, 3).join(', ')} and ${more.length - 2} more`;
    throw new WrongFile(`${fds}: "${printable(path, '"')}" now opens ${why}; refused before anything was written through it`);
  }

  /**
   * A pipe's bytes, one write(2) per packet (a stream in chunks that fit a batch). Whatever is
   * queued with a check made in cr (what a path opened) runs and is checked first, so the fd is
   * known to be what the image says before a byte goes through it; pipe2's fds are checked by
   * the batch itself, before the write in it runs.
   */
  private write(fd: number, pipeId: number, planned: number): void {
    const pipe = this.pipes.get(pipeId);
    if (!pipe) throw new OpFailure(`the image has no pipe ${pipeId}`);
    if (this.checks > 0) this.flush();
    const bytes = pipe.data;
    if (this.fifoPipes.has(pipeId)) {
      // A FIFO's pipe outlives no holder: if it has bytes now, another process (the dumped one,
      // still running) holds it open. The count is checked in the batch (a LOAD of the int and
      // the zeros staged after it). Exactly the image's bytes: the restored process joins that
      // pipe, as the dumped one shares it, and nothing is written (it would queue them twice).
      // Any other bytes: refused, saying what was found.
      const count = this.stage(Buffer.alloc(4), 16 + RECORD_BYTES);
      this.queue(SYS.ioctl, [fd, FIONREAD, count], 0, { call: `ioctl(${fd}, FIONREAD)` });
      this.queue(LOAD, [count], 0, { mismatch: (queued) => new FifoHolds(Number(queued)) });
      try {
        this.flush();
      } catch (err) {
        if (!(err instanceof FifoHolds)) throw err;
        const found = peekFifo(this.inj.pid, fd, err.queued);
        if (found.equals(bytes)) return;
        throw new OpFailure(`the FIFO already holds ${fifoDifference(found, bytes)}; another process has it open (is the dumped process still running?)`);
      }
    }
    if (bytes.length !== planned) throw new OpFailure(`pipe ${pipeId} has ${bytes.length} bytes, not ${planned}`);
    // A packet goes in with one write; the kernel takes a stream whole into a pipe with room.
    if (pipe.packets === undefined) this.writeRun(fd, bytes, 0, bytes.length);
    else {
      let at = 0;
      for (const len of pipe.packets) {
        this.writeRun(fd, bytes, at, len);
        at += len;
      }
    }
  }

  /** The `len` bytes at `at` of a pipe's bytes, one write of each piece that fits a batch. */
  private writeRun(fd: number, bytes: Buffer, at: number, len: number): void {
    for (let from = at; from < at + len; from += this.chunkMax) {
      const to = Math.min(at + len, from + this.chunkMax);
      const chunk = from === 0 && to === bytes.length ? bytes : bytes.subarray(from, to);
      // The image's bytes, not a copy: nothing changes them before the batch runs.
      if (this.batch.room() < chunk.length + 16) this.flush();
      const addr = this.batch.putView(chunk);
      this.queue(SYS.write, [fd, addr, chunk.length], chunk.length);
    }
  }
}

/** A FIFO that holds bytes already (the batch's LOAD of its FIONREAD count was not 0). */
class FifoHolds extends OpFailure {
  constructor(readonly queued: number) {
    super(`the FIFO already holds ${queued} bytes`);
  }
}

/**
 * The bytes queued in the FIFO behind the target's fd, copied without taking them (tee() into a
 * scratch pipe of cr's, through a read-only open of /proc/PID/fd/N: the same pipe).
 */
function peekFifo(pid: number, fd: number, queued: number): Buffer {
  const source = openSync(`/proc/${pid}/fd/${fd}`, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK | O_CLOEXEC);
  try {
    const [r, w] = pipe2(O_CLOEXEC | O_NONBLOCK);
    try {
      setPipeSize(w, Math.max(queued, 4096));
      const n = tee(source, w, queued, SPLICE_F_NONBLOCK);
      const out = Buffer.alloc(n);
      for (let got = 0; got < n; ) got += readSync(r, out, got, n - got, null);
      return out;
    } finally {
      closeSync(r);
      closeSync(w);
    }
  } finally {
    closeSync(source);
  }
}

/** What a FIFO holds instead of the image's bytes, in a few words. */
function fifoDifference(found: Buffer, image: Buffer): string {
  if (found.length !== image.length) {
    const more = found.length > image.length && found.subarray(0, image.length).equals(image) ? `: the image's ${image.length} and ${found.length - image.length} more` : '';
    return `${found.length} bytes, not the image's ${image.length}${more}`;
  }
  let at = 0;
  while (found[at] === image[at]) at++;
  return `${found.length} bytes, as many as the image's but other ones (from byte ${at})`;
}

/** Where a replay is, for a journal (src/inject/journal.ts) that must know it if cr dies. */
export interface ReplayHooks {
  /** every op before the commit ran and passed its checks; nothing after it has run */
  onCommit?: () => void;
  /** a batch is about to run: its records' address in the target, how many, the last op it holds */
  onBatch?: (batch: { recordsAt: bigint; calls: number; lastOp: number }) => void;
}

export interface ReplayOptions extends ReplayHooks {
  /** the batches' runner, when the caller has one in the target already (the restart's husk) */
  runner?: BatchRunner;
  /** a fork op: make the child (a tree's restart); without it a plan that forks fails */
  onFork?: (pid: number) => void;
}


/**
 * Run every op of the plan in the target behind `inj`, in batches (src/inject/batch.ts). Throws
 * ReplayError naming the op, its fd and the errno (or the result the plan did not expect).
 */
export function replay(inj: Injector, table: FdTable, plan: Plan | PlanRecords, opts: ReplayOptions = {}): ReplayStats {
  // A plan the planner made is read as its words; one given as records (a test) is made words.
  const words = plan instanceof Plan ? plan.words : OpWords.fromOps(plan.ops);
  const replayer = new Replayer(inj, table, words, opts);
  const total = words.length;
  const fail = (err: unknown, i: number): never => {
    const op = words.op(i);
    if (err instanceof WrongFile) throw new ReplayError(err.detail, i, i > plan.commit, EXIT_BAD_INPUT);
    const what = err instanceof OpFailure ? describeFailure(op, err) : `${callOf(op)}: ${(err as Error).message}`;
    throw new ReplayError(`op ${i + 1} of ${total} (${fdOf(op)}): ${what}`, i, i > plan.commit);
  };
  try {
    for (let i = 0; i < total; i++) replayer.run(i);
    replayer.flush();
  } catch (err) {
    // A failure found when a batch came back belongs to the op whose call it was.
    fail(err, replayer.currentOp);
  }
  return replayer.stats;
}

/**
 * Undo a replay that failed before the commit: close every fd the target did not have and put
 * its RLIMIT_NOFILE back. Throws if the table then differs from `before` in its numbers.
 */
export function rollback(inj: Injector, before: TargetState): void {
  const had = new Set(before.fds);
  for (const fd of listFds(before.pid)) {
    if (!had.has(fd)) inj.call('close', SYS.close, BigInt(fd));
  }
  const now = readNofile(before.pid);
  if (now.soft !== before.rlimit.soft || now.hard !== before.rlimit.hard) {
    inj.call('prlimit64', SYS.prlimit64, 0n, BigInt(RLIMIT_NOFILE), inj.put(encodeRlimit(before.rlimit)), 0n);
  }
  const after = listFds(before.pid);
  if (after.join(',') !== before.fds.join(',')) {
    throw new Error(`rollback left fds [${after.join(', ')}], not the target's [${before.fds.join(', ')}]`);
  }
}
