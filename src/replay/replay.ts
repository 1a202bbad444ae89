// Replaying a plan inside a stopped target: every op becomes one injected syscall (a pipe's
// bytes: one write per packet), its result is checked against what the plan expects, and the
// first disagreement stops the replay. A failure before the plan's commit can be undone exactly
// (rollback): until then the plan only made fds at numbers the target did not have.
import { SyscallError } from '../../bridge/errno.js';
import { F_DUPFD, F_DUPFD_CLOEXEC, F_SETFD, F_SETFL, FD_CLOEXEC } from '../../bridge/fcntl.js';
import { F_SETPIPE_SZ } from '../../bridge/pipe.js';
import { encodeRlimit, RLIMIT_NOFILE } from '../../bridge/rlimit.js';
import { CrError, EXIT_BAD_INPUT } from '../errors.js';
import type { Injector } from '../inject/injector.js';
import { fileAt, mismatch, OPENED_SCRATCH_BYTES, type Expected } from '../inject/opened.js';
import { SYS } from '../inject/syscalls.js';
import { O_CLOEXEC, O_NONBLOCK, O_PATH, type DescKind, type FdTable, type Pipe } from '../model/fdtable.js';
import { printable } from '../printable.js';
import { formatOp } from '../plan/format.js';
import type { Op, Plan } from '../plan/ops.js';
import { listFds } from '../proc/fds.js';
import { readNofile } from '../proc/limits.js';
import type { TargetState } from './target.js';

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
  /** syscalls injected, pipe-data writes included */
  syscalls: number;
  /** how long each injected syscall took, ms (pipe-data writes and their checks excluded) */
  syscallMs: number[];
  /** ms spent putting pipe bytes in (copy into the target and the writes) */
  writeMs: number;
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
      return `fds ${op.fds[0]}, ${op.fds[1]}`;
    case 'dup2':
      return `fd ${op.to}`;
    case 'prlimit':
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

const TYPE_OF: Record<Exclude<DescKind, 'pipe' | 'other'>, Expected['type']> = { fifo: 'FIFO', file: 'regular file', chr: 'character device' };

function pathWants(table: FdTable): Map<string, PathWant> {
  const wants = new Map<string, PathWant>();
  const byDesc = new Map<number, PathWant>();
  for (const d of table.descs) {
    if (d.path === undefined || d.kind === 'pipe' || d.kind === 'other') continue;
    // Validation lets a path name one kind (and one device) only: the first description says it.
    let w = wants.get(d.path);
    if (!w) wants.set(d.path, (w = { want: { type: TYPE_OF[d.kind], rdev: d.rdev }, fds: [] }));
    byDesc.set(d.id, w);
  }
  for (const f of table.fds) byDesc.get(f.desc)?.fds.push(f.fd);
  return wants;
}

class Replayer {
  readonly stats: ReplayStats = { syscalls: 0, syscallMs: [], writeMs: 0 };
  private readonly pipes: Map<number, Pipe>;
  private readonly paths: Map<string, PathWant>;
  /** target memory for the fstat and fstatfs of what a path opened */
  private readonly statBuf: bigint;
  /** pipes inside named FIFOs: opening the path may join a pipe someone else still holds */
  private readonly fifoPipes: Set<number>;
  /** 16 bytes of target memory for pipe2's fds, rlimits and FIONREAD */
  private readonly word: bigint;
  private data: { addr: bigint; size: number } | null = null;

  constructor(
    private readonly inj: Injector,
    table: FdTable,
  ) {
    this.pipes = new Map(table.pipes.map((p) => [p.id, p]));
    this.fifoPipes = new Set(table.descs.filter((d) => d.kind === 'fifo').map((d) => d.pipe!));
    this.word = inj.scratch(16);
    this.paths = pathWants(table);
    this.statBuf = inj.scratch(OPENED_SCRATCH_BYTES);
  }

  private timed(nr: number, ...args: bigint[]): bigint {
    const t = performance.now();
    const r = this.inj.syscall(nr, ...args);
    this.stats.syscallMs.push(performance.now() - t);
    this.stats.syscalls++;
    return r;
  }

  /** The syscall's result, which must be `want` (when given) and not an errno. */
  private expect(r: bigint, want?: number, call?: string): number {
    if (isErrno(r)) throw new OpFailure('', Number(-r), call);
    if (want !== undefined && r !== BigInt(want)) throw new OpFailure(`the kernel returned ${r}, the plan expects ${want}`, 0, call);
    return Number(r);
  }

  run(op: Op): void {
    switch (op.op) {
      case 'pipe2': {
        this.expect(this.timed(SYS.pipe2, this.word, BigInt(op.flags)), 0);
        const got = this.inj.read(this.word, 8);
        const fds = [got.readInt32LE(0), got.readInt32LE(4)];
        if (fds[0] !== op.fds[0] || fds[1] !== op.fds[1]) {
          throw new OpFailure(`the kernel made fds [${fds.join(', ')}], the plan expects [${op.fds.join(', ')}]`);
        }
        return;
      }
      case 'open':
        this.open(op);
        return;
      case 'dup2':
        if (op.cloexec) this.expect(this.timed(SYS.dup3, BigInt(op.from), BigInt(op.to), BigInt(O_CLOEXEC)), op.to);
        else this.expect(this.timed(SYS.dup2, BigInt(op.from), BigInt(op.to)), op.to);
        return;
      case 'dupfd':
        this.expect(this.timed(SYS.fcntl, BigInt(op.from), BigInt(op.cloexec ? F_DUPFD_CLOEXEC : F_DUPFD), BigInt(op.min)), op.fd);
        return;
      case 'close':
        this.expect(this.timed(SYS.close, BigInt(op.fd)), 0);
        return;
      case 'setfl':
        this.expect(this.timed(SYS.fcntl, BigInt(op.fd), BigInt(F_SETFL), BigInt(op.flags)), 0);
        return;
      case 'setfd':
        this.expect(this.timed(SYS.fcntl, BigInt(op.fd), BigInt(F_SETFD), op.cloexec ? BigInt(FD_CLOEXEC) : 0n), 0);
        return;
      case 'setpipesz':
        this.expect(this.timed(SYS.fcntl, BigInt(op.fd), BigInt(F_SETPIPE_SZ), BigInt(op.size)), op.size);
        return;
      case 'lseek':
        this.expect(this.timed(SYS.lseek, BigInt(op.fd), BigInt(op.offset), SEEK_SET), op.offset);
        return;
      case 'write':
        this.write(op);
        return;
      case 'prlimit': {
        this.inj.write(this.word, encodeRlimit({ soft: op.soft, hard: op.hard }));
        this.expect(this.timed(SYS.prlimit64, 0n, BigInt(RLIMIT_NOFILE), this.word, 0n), 0);
        return;
      }
      case 'commit':
        return;
    }
  }

  /**
   * An open by path, judged by what it opened before anything else touches the fd (docs/restore.md,
   * "What a path opens"). O_NONBLOCK is added for the open, so a path that became a FIFO (or a
   * device that waits for a carrier) cannot hold the target, then F_SETFL puts back the planned
   * flags (only O_NONBLOCK differs). Reopens through /proc/self/fd/N name a pipe cr just made.
   */
  private open(op: Extract<Op, { op: 'open' }>): void {
    const byPath = op.via < 0 ? this.paths.get(op.path) : undefined;
    const flags = byPath ? op.flags | O_NONBLOCK : op.flags;
    const path = this.inj.put(op.path);
    const r = this.timed(SYS.openat, AT_FDCWD, path, BigInt(flags), 0n);
    if (byPath && r === -ENXIO) this.lookAt(op.path, path, byPath);
    this.expect(r, op.fd);
    if (!byPath) return;
    this.judge(op.path, byPath, BigInt(op.fd));
    if (flags !== op.flags) this.expect(this.timed(SYS.fcntl, BigInt(op.fd), BigInt(F_SETFL), BigInt(op.flags)), 0, `fcntl(${op.fd}, F_SETFL)`);
  }

  /**
   * The open failed with ENXIO, which under O_NONBLOCK means a FIFO with no reader or a socket:
   * when that is not what the image says, say so rather than the errno. The path is looked at
   * through an O_PATH fd (it opens nothing), closed again. The open has failed already: this only
   * words the refusal.
   */
  private lookAt(text: string, path: bigint, byPath: PathWant): void {
    const fd = this.timed(SYS.openat, AT_FDCWD, path, BigInt(O_PATH | O_CLOEXEC), 0n);
    if (isErrno(fd)) return;
    let why: string | null;
    try {
      why = mismatch(fileAt(this.inj, fd, this.statBuf), byPath.want);
    } finally {
      this.timed(SYS.close, fd);
    }
    if (why !== null) this.refuse(text, byPath, why);
  }

  /** Throw WrongFile unless fd is what the image says the path opens. */
  private judge(path: string, byPath: PathWant, fd: bigint): void {
    const why = mismatch(fileAt(this.inj, fd, this.statBuf), byPath.want);
    this.stats.syscalls += 2;
    if (why !== null) this.refuse(path, byPath, why);
  }

  private refuse(path: string, byPath: PathWant, why: string): never {
    const [first, ...more] = byPath.fds;
    const fds = more.length === 0 ? `fd ${first}` : more.length <= 3 ? `fds ${byPath.fds.join(', ')}` : `fds ${byPath.fds.slice(0, 3).join(', ')} and ${more.length - 2} more`;
    throw new WrongFile(`${fds}: "${printable(path, '"')}" now opens ${why}; refused before anything was written through it`);
  }

  /** Copy the pipe's bytes into the target once, then write them: one write(2) per packet. */
  private write(op: Extract<Op, { op: 'write' }>): void {
    const pipe = this.pipes.get(op.pipe);
    if (!pipe) throw new OpFailure(`the image has no pipe ${op.pipe}`);
    const t = performance.now();
    const fd = BigInt(op.fd);
    if (this.fifoPipes.has(op.pipe)) {
      // A FIFO's pipe outlives no holder: if it has bytes now, another process (the dumped one,
      // still running?) holds it open, and writing the image's bytes would queue them twice.
      this.expect(this.inj.syscall(SYS.ioctl, fd, FIONREAD, this.word), 0, `ioctl(${op.fd}, FIONREAD)`);
      this.stats.syscalls++;
      const queued = this.inj.read(this.word, 4).readInt32LE(0);
      if (queued !== 0) {
        throw new OpFailure(`the FIFO already holds ${queued} bytes; another process has it open (is the dumped process still running?)`);
      }
    }
    const bytes = Buffer.from(pipe.data, 'base64');
    if (bytes.length !== op.bytes) throw new OpFailure(`pipe ${op.pipe} has ${bytes.length} bytes, not ${op.bytes}`);
    if (!this.data || this.data.size < bytes.length) this.data = { addr: this.inj.scratch(bytes.length), size: bytes.length };
    this.inj.write(this.data.addr, bytes);
    let at = 0;
    for (const len of pipe.packets ?? [bytes.length]) {
      // A packet goes in with one write; a byte stream may take several if the kernel splits it.
      const end = at + len;
      while (at < end) {
        const n = this.expect(this.inj.syscall(SYS.write, fd, this.data.addr + BigInt(at), BigInt(end - at)));
        this.stats.syscalls++;
        if (n === 0 || (pipe.packets && n !== len)) throw new OpFailure(`wrote ${n} of a ${len}-byte ${pipe.packets ? 'packet' : 'chunk'}`);
        at += n;
      }
    }
    this.stats.writeMs += performance.now() - t;
  }
}

/**
 * Run every op of the plan in the target behind `inj`. Throws ReplayError naming the op, its fd
 * and the errno (or the result the plan did not expect).
 */
export function replay(inj: Injector, table: FdTable, plan: Plan): ReplayStats {
  const replayer = new Replayer(inj, table);
  const total = plan.ops.length;
  plan.ops.forEach((op, i) => {
    try {
      replayer.run(op);
    } catch (err) {
      if (err instanceof WrongFile) throw new ReplayError(err.detail, i, i > plan.commit, EXIT_BAD_INPUT);
      const what = err instanceof OpFailure ? describeFailure(op, err) : `${callOf(op)}: ${(err as Error).message}`;
      throw new ReplayError(`op ${i + 1} of ${total} (${fdOf(op)}): ${what}`, i, i > plan.commit);
    }
  });
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
