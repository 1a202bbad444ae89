// A plan as people read it: one syscall a line, with the fd the kernel must return. Written from
// the plan's words straight into bytes: a table of 100,000 fds prints 184,000 lines, and a string
// per line and per number (then joined) cost more than the plan itself.

import { flagNames } from '../model/flags.js';
import {
  K_CLOSE, K_COMMIT, K_CREATE, K_DUP2, K_DUPFD, K_FORK, K_LINK, K_LSEEK, K_OPEN, K_PIPE2, K_PRLIMIT, K_PTY, K_SETFD,
  K_SETFL, K_SETPIPESZ, K_SOCKETPAIR, K_WRITE, OpWords, STRIDE, type Op,
} from './ops.js';
import { printable } from '../printable.js';

/** Text built as UTF-8 bytes in one growing buffer. */
export class TextOut {
  private buf: Buffer;
  private at = 0;

  constructor(capacity = 256) {
    this.buf = Buffer.allocUnsafe(capacity);
  }

  private room(n: number): void {
    if (this.at + n <= this.buf.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.at + n));
    this.buf.copy(grown, 0, 0, this.at);
    this.buf = grown;
  }

  /** `s`, which is ASCII (cr's own words, numbers, flag names): a byte per character. */
  ascii(s: string): this {
    this.room(s.length);
    const buf = this.buf;
    let at = this.at;
    for (let k = 0; k < s.length; k++) buf[at++] = s.charCodeAt(k);
    this.at = at;
    return this;
  }

  /** Any text (a path from an image), as UTF-8. */
  text(s: string): this {
    this.room(3 * s.length);
    this.at += this.buf.write(s, this.at, 'utf8');
    return this;
  }

  /** These bytes (a few: copied one by one). */
  copy(bytes: Uint8Array): this {
    this.room(bytes.length);
    const buf = this.buf;
    let at = this.at;
    for (let k = 0; k < bytes.length; k++) buf[at++] = bytes[k]!;
    this.at = at;
    return this;
  }

  newline(): this {
    this.room(1);
    this.buf[this.at++] = 10;
    return this;
  }

  /** An integer in decimal, as a template literal writes it. */
  int(n: number): this {
    this.room(12);
    const buf = this.buf;
    if (n < 0) {
      if (n === -2147483648 || !Number.isSafeInteger(n)) return this.ascii(String(n));
      buf[this.at++] = 45; // '-'
      n = -n;
    }
    let digits = 1;
    for (let m = n; m >= 10; m = Math.floor(m / 10)) digits++;
    let at = this.at + digits;
    this.at = at;
    do {
      buf[--at] = 48 + (n % 10);
      n = Math.floor(n / 10);
    } while (n > 0);
    return this;
  }

  /** `s` (any text) and a newline. */
  line(s: string): this {
    return this.text(s).ascii('\n');
  }

  /** The text, less its last `trim` bytes (a final newline the console adds again). */
  toString(trim = 0): string {
    return this.buf.toString('utf8', 0, Math.max(0, this.at - trim));
  }
}

const described = (out: TextOut, desc: number): TextOut => (desc >= 0 ? out.ascii('description ').int(desc) : out.ascii('temporary'));

/** Op i of `ops` as its line, from its words, onto `out`. */
export function writeOp(out: TextOut, ops: OpWords, i: number): void {
  const w = ops.words;
  const b = i * STRIDE;
  const kind = w[b]!;
  switch (kind) {
    case K_PIPE2:
      out.ascii(w[b + 1] ? 'pipe2(O_CLOEXEC) = [' : 'pipe2(0) = [').int(w[b + 2]!).ascii(', ').int(w[b + 3]!).ascii(']    pipe ').int(w[b + 4]!);
      return;
    case K_OPEN:
      out.ascii('open("').text(printable(ops.text(i), '"')).ascii('", ').ascii(flagNames(w[b + 3]!)).ascii(') = ').int(w[b + 4]!).ascii('    ');
      described(out, w[b + 1]!);
      return;
    case K_DUP2:
      if (w[b + 3]) out.ascii('dup3(').int(w[b + 1]!).ascii(', ').int(w[b + 2]!).ascii(', O_CLOEXEC)');
      else out.ascii('dup2(').int(w[b + 1]!).ascii(', ').int(w[b + 2]!).ascii(')');
      return;
    case K_DUPFD:
      out.ascii('fcntl(').int(w[b + 1]!).ascii(w[b + 3] ? ', F_DUPFD_CLOEXEC, ' : ', F_DUPFD, ').int(w[b + 2]!).ascii(') = ').int(w[b + 4]!);
      return;
    case K_CLOSE:
      out.ascii('close(').int(w[b + 1]!).ascii(')');
      return;
    case K_SETFL:
      out.ascii('fcntl(').int(w[b + 1]!).ascii(', F_SETFL, ').ascii(flagNames(w[b + 2]!)).ascii(')');
      return;
    case K_SETFD:
      out.ascii('fcntl(').int(w[b + 1]!).ascii(w[b + 2] ? ', F_SETFD, FD_CLOEXEC)' : ', F_SETFD, 0)');
      return;
    case K_SETPIPESZ:
      out.ascii('fcntl(').int(w[b + 1]!).ascii(', F_SETPIPE_SZ, ').int(w[b + 2]!).ascii(')');
      return;
    case K_SOCKETPAIR:
      out.text(ops.text(i)).ascii(' = [').int(w[b + 2]!).ascii(', ').int(w[b + 3]!).ascii(']    ');
      described(out, w[b + 4]!).ascii(', ');
      described(out, w[b + 5]!);
      return;
    case K_CREATE:
      out.text(ops.text(i)).ascii(' = ').int(w[b + 3]!).ascii('    description ').int(w[b + 1]!);
      return;
    case K_LINK:
      out.text(ops.text(i)).ascii('    description ').int(w[b + 1]!).ascii(' item ').int(w[b + 2]!);
      return;
    case K_PTY:
      out.text(ops.text(i)).ascii('    description ').int(w[b + 1]!);
      return;
    case K_LSEEK:
      out.ascii('lseek(').int(w[b + 1]!).ascii(', ').text(ops.text(i)).ascii(', SEEK_SET)');
      return;
    case K_WRITE:
      out.ascii('write(').int(w[b + 1]!).ascii(', <').int(w[b + 3]!).ascii(' bytes of pipe ').int(w[b + 2]!).ascii('>)');
      return;
    case K_PRLIMIT:
      out.ascii('prlimit(0, RLIMIT_NOFILE, {').int(w[b + 1]!).ascii(', ').int(w[b + 2]!).ascii('})');
      return;
    case K_FORK:
      out.ascii('fork() = ').int(w[b + 1]!).ascii('    child process');
      return;
    case K_COMMIT:
      out.ascii('-- commit: everything above touched only new fd numbers --');
      return;
    default:
      throw new Error(`plan words: unknown op kind ${kind} at op ${i}`);
  }
}

/** Every op of `ops` a line (each ending in a newline), numbered from 1 and indented by `indent`. */
export function writeOps(out: TextOut, ops: OpWords, indent: string): void {
  const width = String(ops.length).length;
  // Each line's start (the indent, its number right-aligned, two spaces) kept as bytes and counted
  // up in place: no division per digit, no call per piece, on each of a big plan's 184,000 lines.
  const start = Buffer.from(`${indent}${'1'.padStart(width)}  `, 'latin1');
  const units = indent.length + width - 1;
  for (let i = 0; i < ops.length; i++) {
    // Number i + 1 (it has at most `width` digits): carry past each 9; a space reached becomes the new leading 1.
    for (let d = units; i > 0; d--) {
      const c = start[d]!;
      if (c === 57) {
        start[d] = 48;
      } else {
        start[d] = c === 32 ? 49 : c + 1;
        break;
      }
    }
    out.copy(start);
    writeOp(out, ops, i);
    out.newline();
  }
}

/** One op given as its record, as its line. */
export function formatOp(op: Op): string {
  const out = new TextOut();
  writeOp(out, OpWords.fromOps([op]), 0);
  return out.toString();
}
