// The plan: a flat list of syscalls to run inside the target, in order.
// Produced by the wasm planner (assembly/), checked by the simulator (src/sim/),
// executed by replay. Every op that lets the kernel pick an fd number carries the
// number the planner expects; whoever runs the plan must stop if the kernel disagrees.

import {
  OP_CLOSE, OP_COMMIT, OP_CREATE, OP_DUP2, OP_DUPFD, OP_LSEEK, OP_OPEN, OP_PIPE2, OP_PRLIMIT, OP_SETFD, OP_SETFL,
  OP_SETPIPESZ, OP_SOCKETPAIR, OP_WORDS, OP_WRITE,
} from '../abi.js';

export type Op =
  /** pipe2(int[2], flags): read end lands at fds[0], write end at fds[1] */
  | { op: 'pipe2'; flags: number; fds: [number, number]; pipe: number }
  /**
   * open(path, flags, 0): `desc` is the image description being created, or -1 for
   * a temporary. `via` >= 0 means path is /proc/self/fd/<via> (another description
   * of the same pipe); otherwise path is the description's own path.
   */
  | { op: 'open'; desc: number; path: string; via: number; flags: number; fd: number }
  /** dup2(from, to) when cloexec is false, dup3(from, to, O_CLOEXEC) when true */
  | { op: 'dup2'; from: number; to: number; cloexec: boolean }
  /** fcntl(from, F_DUPFD or F_DUPFD_CLOEXEC, min): lands at fd */
  | { op: 'dupfd'; from: number; min: number; cloexec: boolean; fd: number }
  | { op: 'close'; fd: number }
  /** fcntl(fd, F_SETFL, flags) */
  | { op: 'setfl'; fd: number; flags: number }
  /** fcntl(fd, F_SETFD, cloexec ? FD_CLOEXEC : 0) */
  | { op: 'setfd'; fd: number; cloexec: boolean }
  /** fcntl(fd, F_SETPIPE_SZ, size) */
  | { op: 'setpipesz'; fd: number; size: number }
  /** lseek(fd, offset, SEEK_SET); offset in decimal (a directory's position may pass 2^53) */
  | { op: 'lseek'; fd: number; offset: string }
  /**
   * A description its kind makes with one call (an eventfd: eventfd2, then its counter
   * written), landing at fd, close-on-exec as given (src/kinds/, creation class CLASS_SINGLE);
   * `call` says it in words.
   */
  | { op: 'create'; desc: number; cloexec: boolean; fd: number; call: string }
  /**
   * A link its kind makes once every description exists (an epoll's item `item`: epoll_ctl ADD
   * of the description at `fd` watching the one at the item's fd number, src/plan/links.ts);
   * `call` says it in words.
   */
  | { op: 'link'; desc: number; item: number; fd: number; call: string }
  /**
   * The object of description `desc` made before the descriptions that come from it (a pty, for
   * its master and slaves, src/plan/ptys.ts): made through the lowest free number `lowest` and
   * held at `fd` (done false), or finished and closed at `fd` once every description exists (done
   * true); `call` says it in words.
   */
  | { op: 'pty'; desc: number; lowest: number; fd: number; done: boolean; call: string }
  /**
   * A pair its kind makes with one call (a unix socketpair, its queued bytes sent through each
   * end): ends `descs` (-1: a temporary end, closed later) landing at `fds`; `call` says it in words.
   */
  | { op: 'socketpair'; cloexec: boolean; fds: [number, number]; descs: [number, number]; call: string }
  /** write the pipe's queued bytes (all of Pipe.data, one write per packet if packets) into fd */
  | { op: 'write'; fd: number; pipe: number; bytes: number }
  /** prlimit(0, RLIMIT_NOFILE, {soft, hard}) */
  | { op: 'prlimit'; soft: number; hard: number }
  /**
   * fork(): the child `pid` of a tree starts with a copy of this process's fd table (src/plan/tree.ts).
   * Only in a tree's plan, after the forking process's own ops; replay hands it to its onFork.
   */
  | { op: 'fork'; pid: number }
  /**
   * Marker, no syscall: ops before it only create fds at numbers the target did not
   * have open, so undoing them (closing those numbers) restores the target exactly.
   */
  | { op: 'commit' };

/**
 * A plan as records: what a caller that writes or edits a plan by hand builds (a test). verify and
 * replay take it as well as a Plan.
 */
export interface PlanRecords {
  ops: Op[];
  /** a lower bound on the number of ops any plan for this input needs */
  lowerBound: number;
  /** index of the commit marker in ops */
  commit: number;
  /** things the plan could not do exactly (e.g. a hard limit above the target's) */
  warnings: string[];
}

/**
 * Each op's kind as a word: its index here. Not the wasm planner's op codes (src/abi.ts): a plan
 * holds ops the planner never emits (link, pty, fork), and decode maps one to the other.
 */
export const OP_NAMES = ['pipe2', 'open', 'dup2', 'dupfd', 'close', 'setfl', 'setfd', 'setpipesz', 'lseek', 'create', 'link', 'pty', 'socketpair', 'write', 'prlimit', 'fork', 'commit'] as const satisfies readonly Op['op'][];
// The kinds the wasm planner writes are its op codes (scripts/abi.mjs), so its output is a plan's
// words as they stand; link, pty and fork are added after it, in TypeScript.
export const K_PIPE2 = OP_PIPE2;
export const K_OPEN = OP_OPEN;
export const K_DUP2 = OP_DUP2;
export const K_DUPFD = OP_DUPFD;
export const K_CLOSE = OP_CLOSE;
export const K_SETFL = OP_SETFL;
export const K_SETFD = OP_SETFD;
export const K_SETPIPESZ = OP_SETPIPESZ;
export const K_LSEEK = OP_LSEEK;
export const K_CREATE = OP_CREATE;
export const K_LINK = 10;
export const K_PTY = 11;
export const K_SOCKETPAIR = OP_SOCKETPAIR;
export const K_WRITE = OP_WRITE;
export const K_PRLIMIT = OP_PRLIMIT;
export const K_FORK = 15;
export const K_COMMIT = OP_COMMIT;

/**
 * Words per op: its kind, up to five integer fields in the order its Op record names them (pipe2:
 * flags, fds[0], fds[1], pipe; socketpair: cloexec, fds[0], fds[1], descs[0], descs[1]; a boolean
 * as 0 or 1), and the index of its text in `texts` (open's path, lseek's offset, the call of
 * create, link, pty and socketpair) or -1. An open through /proc/self/fd/<via> keeps no text.
 */
export const STRIDE = OP_WORDS;
/** the word of an op that holds its text's index */
export const TEXT = 6;

/**
 * The ops of a plan as typed words, read by index: a table of 100,000 fds plans about 184,000 ops,
 * and an object per op (and the collection of them) cost more than the wasm planner itself.
 */
export class OpWords {
  words: Int32Array;
  length = 0;
  readonly texts: string[] = [];

  constructor(capacity = 16) {
    this.words = new Int32Array(Math.max(1, capacity) * STRIDE);
  }

  /** Append an op; its base word is returned for the caller to fill fields 1-5 (`words[base + k]`). */
  push(kind: number, text?: string): number {
    if ((this.length + 1) * STRIDE > this.words.length) {
      const grown = new Int32Array(this.words.length * 2);
      grown.set(this.words);
      this.words = grown;
    }
    const base = this.length++ * STRIDE;
    const w = this.words;
    w[base] = kind;
    w[base + 1] = w[base + 2] = w[base + 3] = w[base + 4] = w[base + 5] = 0;
    if (text === undefined) w[base + TEXT] = -1;
    else {
      w[base + TEXT] = this.texts.length;
      this.texts.push(text);
    }
    return base;
  }

  kind(i: number): number {
    return this.words[i * STRIDE]!;
  }

  /** Field k (1-5) of op i. */
  field(i: number, k: number): number {
    return this.words[i * STRIDE + k]!;
  }

  /** Op i's text: open's path, lseek's offset, the call of create, link, pty and socketpair. */
  text(i: number): string {
    const at = this.words[i * STRIDE + TEXT]!;
    if (at >= 0) return this.texts[at]!;
    // An open through another description of the same pipe keeps no text: its path is this.
    return this.kind(i) === K_OPEN ? `/proc/self/fd/${this.field(i, 2)}` : '';
  }

  /** The index of the first op of `kind` at or after `from`, or -1. */
  find(kind: number, from = 0): number {
    const w = this.words;
    for (let i = from; i < this.length; i++) if (w[i * STRIDE] === kind) return i;
    return -1;
  }

  /** Op i as its record. */
  op(i: number): Op {
    const b = i * STRIDE;
    const w = this.words;
    const kind = w[b]!;
    switch (kind) {
      case K_PIPE2:
        return { op: 'pipe2', flags: w[b + 1]!, fds: [w[b + 2]!, w[b + 3]!], pipe: w[b + 4]! };
      case K_OPEN:
        return { op: 'open', desc: w[b + 1]!, path: this.text(i), via: w[b + 2]!, flags: w[b + 3]!, fd: w[b + 4]! };
      case K_DUP2:
        return { op: 'dup2', from: w[b + 1]!, to: w[b + 2]!, cloexec: w[b + 3] !== 0 };
      case K_DUPFD:
        return { op: 'dupfd', from: w[b + 1]!, min: w[b + 2]!, cloexec: w[b + 3] !== 0, fd: w[b + 4]! };
      case K_CLOSE:
        return { op: 'close', fd: w[b + 1]! };
      case K_SETFL:
        return { op: 'setfl', fd: w[b + 1]!, flags: w[b + 2]! };
      case K_SETFD:
        return { op: 'setfd', fd: w[b + 1]!, cloexec: w[b + 2] !== 0 };
      case K_SETPIPESZ:
        return { op: 'setpipesz', fd: w[b + 1]!, size: w[b + 2]! };
      case K_LSEEK:
        return { op: 'lseek', fd: w[b + 1]!, offset: this.text(i) };
      case K_CREATE:
        return { op: 'create', desc: w[b + 1]!, cloexec: w[b + 2] !== 0, fd: w[b + 3]!, call: this.text(i) };
      case K_LINK:
        return { op: 'link', desc: w[b + 1]!, item: w[b + 2]!, fd: w[b + 3]!, call: this.text(i) };
      case K_PTY:
        return { op: 'pty', desc: w[b + 1]!, lowest: w[b + 2]!, fd: w[b + 3]!, done: w[b + 4] !== 0, call: this.text(i) };
      case K_SOCKETPAIR:
        return { op: 'socketpair', cloexec: w[b + 1] !== 0, fds: [w[b + 2]!, w[b + 3]!], descs: [w[b + 4]!, w[b + 5]!], call: this.text(i) };
      case K_WRITE:
        return { op: 'write', fd: w[b + 1]!, pipe: w[b + 2]!, bytes: w[b + 3]! };
      case K_PRLIMIT:
        return { op: 'prlimit', soft: w[b + 1]!, hard: w[b + 2]! };
      case K_FORK:
        return { op: 'fork', pid: w[b + 1]! };
      case K_COMMIT:
        return { op: 'commit' };
      default:
        throw new Error(`plan words: unknown op kind ${kind} at op ${i}`);
    }
  }

  /** Every op as its record. */
  toOps(): Op[] {
    const out: Op[] = new Array(this.length);
    for (let i = 0; i < this.length; i++) out[i] = this.op(i);
    return out;
  }

  /** Append an op given as its record (its integer fields must fit 32 bits: see fits). */
  pushOp(op: Op): void {
    const set = (kind: number, text: string | undefined, ...fields: Array<number | boolean>): void => {
      const b = this.push(kind, text);
      fields.forEach((f, k) => (this.words[b + 1 + k] = typeof f === 'boolean' ? (f ? 1 : 0) : f));
    };
    switch (op.op) {
      case 'pipe2':
        return set(K_PIPE2, undefined, op.flags, op.fds[0], op.fds[1], op.pipe);
      case 'open':
        return set(K_OPEN, op.path, op.desc, op.via, op.flags, op.fd);
      case 'dup2':
        return set(K_DUP2, undefined, op.from, op.to, op.cloexec);
      case 'dupfd':
        return set(K_DUPFD, undefined, op.from, op.min, op.cloexec, op.fd);
      case 'close':
        return set(K_CLOSE, undefined, op.fd);
      case 'setfl':
        return set(K_SETFL, undefined, op.fd, op.flags);
      case 'setfd':
        return set(K_SETFD, undefined, op.fd, op.cloexec);
      case 'setpipesz':
        return set(K_SETPIPESZ, undefined, op.fd, op.size);
      case 'lseek':
        return set(K_LSEEK, op.offset, op.fd);
      case 'create':
        return set(K_CREATE, op.call, op.desc, op.cloexec, op.fd);
      case 'link':
        return set(K_LINK, op.call, op.desc, op.item, op.fd);
      case 'pty':
        return set(K_PTY, op.call, op.desc, op.lowest, op.fd, op.done);
      case 'socketpair':
        return set(K_SOCKETPAIR, op.call, op.cloexec, op.fds[0], op.fds[1], op.descs[0], op.descs[1]);
      case 'write':
        return set(K_WRITE, undefined, op.fd, op.pipe, op.bytes);
      case 'prlimit':
        return set(K_PRLIMIT, undefined, op.soft, op.hard);
      case 'fork':
        return set(K_FORK, undefined, op.pid);
      case 'commit':
        return set(K_COMMIT, undefined);
      default: {
        const never: never = op;
        throw new Error(`plan words: unknown op ${JSON.stringify(never)}`);
      }
    }
  }

  static fromOps(ops: readonly Op[]): OpWords {
    const out = new OpWords(ops.length);
    for (const op of ops) out.pushOp(op);
    return out;
  }

  /** These ops, then `more`. */
  concat(more: readonly Op[]): OpWords {
    if (more.length === 0) return this;
    const out = new OpWords(this.length + more.length);
    out.words.set(this.words.subarray(0, this.length * STRIDE));
    out.length = this.length;
    out.texts.push(...this.texts);
    for (const op of more) out.pushOp(op);
    return out;
  }
}

/** Can `n` be held in a plan's word (a 32-bit signed integer)? */
export const fits = (n: number): boolean => (n | 0) === n;

/**
 * The plan the planner makes: its ops as words (`words`), read by index. `ops` gives them as
 * records, made on first use, for a caller that edits a plan (a test): once taken, those records
 * are the plan (`edited`), and verify and replay read them instead of the words. `ops` is an own
 * property, so that a copy (a spread, structuredClone) is a PlanRecords with the plan's records.
 */
export class Plan implements PlanRecords {
  #stored: OpWords;
  #records: Op[] | undefined;
  declare ops: Op[];

  constructor(
    stored: OpWords,
    public lowerBound: number,
    public commit: number,
    public warnings: string[],
  ) {
    this.#stored = stored;
    Object.defineProperty(this, 'ops', {
      enumerable: true,
      get: (): Op[] => (this.#records ??= this.#stored.toOps()),
      set: (ops: Op[]) => {
        this.#records = ops;
      },
    });
  }

  /** Were the records taken (and so perhaps changed)? */
  get edited(): boolean {
    return this.#records !== undefined;
  }

  /** The ops as words: the planner's, or the records' once taken. */
  get words(): OpWords {
    return this.#records === undefined ? this.#stored : OpWords.fromOps(this.#records);
  }

  get length(): number {
    return this.#records === undefined ? this.#stored.length : this.#records.length;
  }

  /** The plan as `cr plan --json` prints it (and a record plan's shape): ops, lowerBound, commit, warnings. */
  toRecords(): PlanRecords {
    return { ops: this.#records ?? this.#stored.toOps(), lowerBound: this.lowerBound, commit: this.commit, warnings: this.warnings };
  }
}
