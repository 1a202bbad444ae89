// Copying a pipe's queued bytes without consuming them. tee() links the pipe's buffers into a
// scratch pipe of cr's (the target's pipe is never read, so it, and anyone else reading it,
// sees the same bytes afterwards); cr then reads the scratch pipe.
//
// Packet mode: a write through an O_DIRECT description makes "packet" buffers, and a read
// returns at most one packet (dropping what the reader's buffer could not hold). tee() keeps
// that mark, so reads of the scratch pipe stop at packet ends. Whether each stretch so read is
// one whole packet, or ordinary bytes followed by a packet, is found by probing further scratch
// copies (a 1-byte read of a packet consumes all of it). The image keeps pure packet streams
// (Pipe.packets) and pure byte streams; a pipe holding both is refused.
import { SyscallError } from '../../bridge/errno.js';
import { closeFd, openFile, readFd, writeFd } from '../../bridge/file.js';
import { pidfdGetfd } from '../../bridge/pidfd.js';
import { getPipeSize, pipe2, pipeQueued, setPipeSize, splice, SPLICE_F_NONBLOCK, tee } from '../../bridge/pipe.js';
import { CrError } from '../errors.js';
import { O_ACCMODE, O_CLOEXEC, O_NONBLOCK, O_RDONLY, O_WRONLY } from '../model/fdtable.js';

/** Largest length tee/splice take in one call (the kernel caps at the pipe's contents anyway). */
const ALL = 0x7fffffff;
const PAGE_SIZE = 4096;

export interface PipeBytes {
  capacity: number;
  data: Buffer;
  /** lengths of the packets, when the bytes are all packet-mode buffers */
  packets?: number[];
}

/** A scratch pipe of cr's, non-blocking, of `capacity`: as many buffers as the pipe it copies. */
class Scratch {
  readonly r: number;
  readonly w: number;
  constructor(readonly capacity: number) {
    [this.r, this.w] = pipe2(O_NONBLOCK | O_CLOEXEC);
    try {
      if (getPipeSize(this.w) !== capacity) setPipeSize(this.w, capacity);
    } catch (err) {
      this.close();
      throw err;
    }
  }
  close(): void {
    closeFd(this.r);
    closeFd(this.w);
  }
}

/**
 * Scratch pipes reused from one pipe's copy to the next (a dump copies hundreds): making one costs
 * pipe2, F_GETPIPE_SZ, perhaps F_SETPIPE_SZ and two closes, more than the copy itself. A pipe
 * comes back only empty; close() closes them all.
 */
export class ScratchPipes {
  private readonly idle: Scratch[] = [];

  /** An empty scratch pipe of `capacity`. */
  take(capacity: number): Scratch {
    const at = this.idle.findIndex((s) => s.capacity === capacity);
    return at >= 0 ? this.idle.splice(at, 1)[0]! : new Scratch(capacity);
  }

  /** Give back a scratch pipe known to be empty. */
  give(s: Scratch): void {
    this.idle.push(s);
  }

  /** Give back a scratch pipe that may still hold bytes: kept only if it is empty. */
  giveChecked(s: Scratch): void {
    if (pipeQueued(s.r) === 0) this.idle.push(s);
    else s.close();
  }

  close(): void {
    for (const s of this.idle.splice(0)) s.close();
  }
}

const isEagain = (err: unknown): boolean => err instanceof SyscallError && err.code === 'EAGAIN';

/** tee() everything queued in `from` into `to`; 0 when empty. */
function teeAll(from: number, to: number): number {
  try {
    return tee(from, to, ALL, SPLICE_F_NONBLOCK);
  } catch (err) {
    if (isEagain(err)) return 0;
    throw err;
  }
}

/** One read(2) of at most buf.length bytes; 0 when the pipe is empty. */
function readOnce(fd: number, buf: Buffer, len = buf.length): number {
  try {
    return readFd(fd, len === buf.length ? buf : buf.subarray(0, len));
  } catch (err) {
    if (isEagain(err)) return 0;
    throw err;
  }
}

/** A scratch copy of the pipe behind `source`, which held `total` bytes at first. */
function copyOf(source: number, capacity: number, total: number, what: () => string, pool: ScratchPipes): Scratch {
  const s = pool.take(capacity);
  const n = teeAll(source, s.w);
  if (n !== total) {
    s.close();
    throw new CrError(`${what()} changed while being dumped (${total} then ${n} bytes): another process is using it`);
  }
  return s;
}

/**
 * Is the last buffer of the pipe a packet? In a copy: read every stretch but the last, and all but
 * the last byte of the last (a read that reaches into a packet consumes the rest of it); then put
 * a marker byte behind what is left and read two bytes. A read stops after a packet, so it gives
 * one byte when the last buffer is a packet (the marker, the packet having gone with the read
 * before; or the byte of a 1-byte packet, the marker left behind it) and two when it is plain
 * bytes (its last byte and the marker: the copy is empty again). The marker has a slot of its own
 * (tee leaves no buffer open to merging): at most the last byte's buffer is left in the copy, which
 * has two slots at least (scratchSize).
 */
function lastBufferIsPacket(copy: Scratch, lengths: number[], buf: Buffer): boolean {
  for (let i = 0; i < lengths.length - 1; i++) readOnce(copy.r, buf, lengths[i]);
  const last = lengths[lengths.length - 1]!;
  if (last > 1) readOnce(copy.r, buf, last - 1);
  writeFd(copy.w, MARKER);
  return readOnce(copy.r, buf, 2) === 1;
}

const MARKER = Buffer.from([0]);

/** One write(2) into a non-blocking scratch pipe; 0 when it has no room (no free slot). */
function writeOnce(fd: number, bytes: Buffer): number {
  try {
    return writeFd(fd, bytes);
  } catch (err) {
    if (isEagain(err)) return 0;
    throw err;
  }
}

/**
 * The bytes of a pipe holding plain bytes only (most pipes), in three calls: tee() them into a
 * scratch pipe, write a marker byte behind them, and read everything at once. A read stops at the
 * end of a packet, so it takes the marker too only when no buffer is a packet; then the copy is
 * empty again. Null when a buffer is a packet, the copy left no free slot for the marker (a
 * full pipe), or it is not the `queued` bytes FIONREAD counted: the copy is dropped and the pipe
 * copied as copyPipe does any other (which tells a pipe that changed meanwhile).
 */
function plainBytes(source: number, queued: number, size: number, buf: Buffer, pool: ScratchPipes): Buffer | null {
  const s = pool.take(size);
  try {
    const total = teeAll(source, s.w);
    if (total === queued && total < buf.length && writeOnce(s.w, MARKER) === 1 && readOnce(s.r, buf) === total + 1) {
      pool.give(s);
      return Buffer.from(buf.subarray(0, total));
    }
  } catch (err) {
    s.close();
    throw err;
  }
  pool.giveChecked(s);
  return null;
}

/**
 * Is every stretch one whole packet? A 1-byte read of a packet consumes all of it, of plain
 * bytes just one: count what is left (by tee()ing it into a counter pipe) to tell which.
 */
function allSinglePackets(copy: Scratch, lengths: number[], lastIsPacket: boolean, capacity: number, buf: Buffer): boolean {
  const counter = new Scratch(capacity);
  const devNull = openFile('/dev/null', O_WRONLY | O_CLOEXEC);
  try {
    let after = lengths.reduce((a, b) => a + b, 0);
    for (let i = 0; i < lengths.length; i++) {
      const len = lengths[i]!;
      after -= len;
      // A 1-byte stretch ended at a packet end, unless it is the last.
      if (len === 1 && i === lengths.length - 1 && !lastIsPacket) return false;
      readOnce(copy.r, buf, 1);
      if (len === 1) continue;
      const left = teeAll(copy.r, counter.w);
      if (left > 0 && splice(counter.r, devNull, ALL, SPLICE_F_NONBLOCK) !== left) {
        throw new Error('splice to /dev/null did not drain the counter pipe in one call');
      }
      if (left !== after) return false;
    }
    return true;
  } finally {
    counter.close();
    closeFd(devNull);
  }
}

/** A scratch pipe's size for copies of a pipe of `capacity`: its buffers, and a slot for the marker (lastBufferIsPacket). */
const scratchSize = (capacity: number): number => Math.max(capacity, 2 * PAGE_SIZE);

/** The read buffer, reused by every pipe (grown to the largest capacity seen). */
let readBuf = Buffer.allocUnsafe(0);

/**
 * The bytes queued in a pipe, given an fd of cr's that can read it; `what` names it in errors (made
 * only for one: a dump copies hundreds of pipes).
 * `pool`: scratch pipes to use and give back (the caller closes it).
 */
export function copyPipe(source: number, what: () => string, pool: ScratchPipes): PipeBytes {
  const capacity = getPipeSize(source);
  // An empty pipe (most are) needs no copy: FIONREAD counts what its buffers hold.
  const queued = pipeQueued(source);
  if (queued === 0) return { capacity, data: Buffer.alloc(0) };
  if (readBuf.length < capacity) readBuf = Buffer.allocUnsafe(capacity);
  const buf = readBuf.subarray(0, capacity);
  const size = scratchSize(capacity);
  // A full pipe leaves its copy no slot for the marker.
  const plain = queued < capacity ? plainBytes(source, queued, size, buf, pool) : null;
  if (plain !== null) return { capacity, data: plain };
  const chunks: Buffer[] = [];
  const first = pool.take(size);
  let total: number;
  try {
    total = teeAll(source, first.w);
    // Each read stops at the end of a packet; the copy holds `total` bytes.
    for (let got = 0, n; got < total && (n = readOnce(first.r, buf)) > 0; got += n) chunks.push(Buffer.from(buf.subarray(0, n)));
  } catch (err) {
    first.close();
    throw err;
  }
  const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
  if (data.length !== total) {
    first.close();
    throw new Error(`${what()}: tee copied ${total} bytes but ${data.length} were read back`);
  }
  // All `total` bytes it held were read: empty again.
  pool.give(first);
  if (total === 0) return { capacity, data };
  const lengths = chunks.map((c) => c.length);
  const copy = copyOf(source, size, total, what, pool);
  let lastIsPacket: boolean;
  try {
    lastIsPacket = lastBufferIsPacket(copy, lengths, buf);
  } catch (err) {
    copy.close();
    throw err;
  }
  // Plain bytes: their last byte and the marker were read, nothing is left; a packet may leave the marker.
  if (lastIsPacket) pool.giveChecked(copy);
  else pool.give(copy);
  if (lengths.length === 1 && !lastIsPacket) return { capacity, data };
  const again = copyOf(source, size, total, what, pool);
  let singles: boolean;
  try {
    singles = allSinglePackets(again, lengths, lastIsPacket, capacity, buf);
  } finally {
    pool.giveChecked(again);
  }
  if (!singles) {
    throw new CrError(`${what()} holds packet-mode (O_DIRECT) data and plain bytes together; the image can keep one or the other, not both`);
  }
  return { capacity, data, packets: lengths };
}

/**
 * An fd of cr's that reads the pipe whose descriptions are `ends` in process pid: the target's
 * own read (or read-write) description through pidfd_getfd when it has one, else a new read
 * description opened through /proc/PID/fd/N (O_NONBLOCK, so a FIFO open never waits). Null when
 * that open is not allowed: the pipe's inode belongs to another user (`sudo -u nobody prog |
 * cat`: the shell made the pipe), and cr runs as the target's user without CAP_DAC_OVERRIDE.
 */
export function readSideOf(pid: number, pidfd: number, ends: Array<{ fd: number; flags: number }>): number | null {
  const reader = ends.find((e) => (e.flags & O_ACCMODE) !== O_WRONLY);
  if (reader) return pidfdGetfd(pidfd, reader.fd);
  try {
    return openFile(`/proc/${pid}/fd/${ends[0]!.fd}`, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  } catch (err) {
    if (err instanceof SyscallError && (err.code === 'EACCES' || err.code === 'EPERM')) return null;
    throw err;
  }
}

/**
 * A pipe cr can only hold by its write end (readSideOf gave null): tee() needs a readable end, so
 * its bytes cannot be copied, but how many there are (FIONREAD) and its capacity can be read from
 * the target's own write description. An empty one is dumped whole; one holding bytes is refused,
 * since a dump without them would lose them at restore.
 */
export function emptyPipeByWriteEnd(pidfd: number, writeFd: number, what: () => string): PipeBytes {
  const fd = pidfdGetfd(pidfd, writeFd);
  try {
    const queued = pipeQueued(fd);
    if (queued > 0) {
      throw new CrError(
        `${what()} holds ${queued} bytes cr may not read: the process has only its write end and the pipe belongs to another user ` +
          `(opening a read end: EACCES); nothing was read or changed`,
      );
    }
    return { capacity: getPipeSize(fd), data: Buffer.alloc(0) };
  } finally {
    closeFd(fd);
  }
}
