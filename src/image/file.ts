// An image file as a command reads it: opened once, read whole into memory, closed. Everything
// after (checksum, decoding, restart's pages) works from those bytes, so a file swapped or
// rewritten once cr has read it changes nothing, and no path is opened twice.
// - The last component is not followed if it is a symlink (O_NOFOLLOW: refused). An image's
//   author is the owner of the file holding it (docs/trust.md), judged together with the
//   directory holding it; through a symlink, whoever may change the link would choose which
//   file, and so which owner, vouches for the bytes.
// - O_NONBLOCK: opening a FIFO must not wait for a writer; anything not a regular file is then
//   refused by its fstat.
// - The directory is opened first (O_PATH) and the file opened relative to it, so the directory
//   described is the one the file was found in.
// IMAGE `-` is stdin, read to its end (a pipe: `gunzip -c app.img.gz | cr restore -`). Its author
// is the user running cr (docs/trust.md): whoever feeds cr's stdin is acting for that user.
import { constants as bufferConstants } from 'node:buffer';
import { closeSync, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { basename, dirname } from 'node:path';
import { SyscallError } from '../../bridge/errno.js';
import { dupFd, openAt } from '../../bridge/file.js';
import { isatty } from '../../bridge/tty.js';
import { badInput, CrError, errMessage, EXIT_BAD_INPUT } from '../errors.js';
import { ImageChecksum } from './checksum.js';
import { O_CLOEXEC, O_DIRECTORY, O_NOCTTY, O_NOFOLLOW, O_NONBLOCK, O_PATH, O_RDONLY } from '../model/fdtable.js';

/** An image file's bytes and what its fstat (and its directory's) said when it was opened. */
export interface ImageFile {
  /** the path as given, for messages (`stdin` for `-`) */
  path: string;
  /** read from stdin (`-`): its author is the user running cr, whatever stat and dir say */
  stdin: boolean;
  /** the file's bytes; for a process image read from a file, all but its page data (`pages`) */
  bytes: Buffer;
  /**
   * A process image read from a file: the bytes of its pages were hashed as the file was read
   * but left in it, read again (pages.read) as they are written into a process.
   */
  pages?: PagesInFile;
  /** the opened file: its owner is the image's author */
  stat: { dev: number; ino: number; uid: number; gid: number; mode: number; size: number };
  /** the directory it was opened in: who else could have put a file at its name */
  dir: { uid: number; gid: number; mode: number; sticky: boolean };
}

/** Largest image read: what one Buffer can hold. */
export const MAX_IMAGE_BYTES = bufferConstants.MAX_LENGTH;
const S_ISVTX = 0o1000;

/** IMAGE `-`: stdin. */
export const STDIN_IMAGE = '-';

/**
 * Reads a process image from fd (`size` bytes) without keeping its page data: what `bytes` then
 * holds and the file offset of each run's pages, in order; null when fd does not hold a whole,
 * well-formed process image with a matching checksum (it is then read whole, and judged so). From
 * `deferFrom` bytes on, the page data is not read here either, and the checksum is left to the
 * pass that writes the pages (`deferred`): not checked yet when this returns.
 */
export type PageStreamer = (fd: number, size: number, deferFrom?: number) => { bytes: Buffer; offsets: number[]; deferred?: DeferredCheck } | null;

/**
 * A large image's checksum, left to the pass that writes its pages (restart/page-thread.ts): the
 * file read without its page data, every byte before the first of it hashed (`hash` stands
 * there), the rest (page data and the run headers between, up to the END record) to be hashed
 * in file order as it is read again, and checked by PagesInFile.verify before the process runs.
 */
export interface DeferredCheck {
  /** the END record's body */
  expected: Buffer;
  /** where the hash stands: the first page data's offset */
  from: number;
  /** bytes the checksum covers: every byte before the END record */
  length: number;
  hash: ImageChecksum;
}

export interface FileChange {
  size: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
}

/**
 * Open, check and read path (`-`: stdin); anything wrong is a one-line badInput (exit code 2).
 * With `streamer`, a process image in a regular file is read without its page data (`pages`).
 */
export function readImageFile(path: string, streamer?: PageStreamer, deferFrom?: number): ImageFile {
  if (path === STDIN_IMAGE) return readStdin();
  const name = basename(path);
  if (name === '' || path.endsWith('/')) badInput(`${path} is a directory, not an image`);
  let dirfd: number;
  try {
    dirfd = openSync(dirname(path), O_PATH | O_DIRECTORY | O_CLOEXEC);
  } catch (err) {
    badInput(`cannot read ${path}: ${errMessage(err)}`);
  }
  try {
    const dirStat = fstatSync(dirfd);
    let fd: number;
    try {
      fd = openAt(dirfd, name, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC);
    } catch (err) {
      const code = err instanceof SyscallError ? err.code : undefined;
      if (code === 'ELOOP') badInput(`${path} is a symlink: cr reads an image only from the file itself (give the path it points to)`);
      badInput(`cannot read ${path}: ${code ?? String(err)} (open)`);
    }
    try {
      const st = fstatSync(fd);
      if (st.isDirectory()) badInput(`${path} is a directory, not an image`);
      if (!st.isFile()) badInput(`${path} is not a regular file`);
      const dir = { uid: dirStat.uid, gid: dirStat.gid, mode: dirStat.mode, sticky: (dirStat.mode & S_ISVTX) !== 0 };
      const streamed = streamer?.(fd, st.size, deferFrom);
      if (streamed) {
        const pages = new PagesInFile(fd, path, streamed.offsets, streamed.deferred);
        fd = -1; // the pages keep it
        return { path, stdin: false, bytes: streamed.bytes, pages, stat: statOf(st), dir };
      }
      return { path, stdin: false, bytes: readAll(fd, st, path), stat: statOf(st), dir };
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  } catch (err) {
    if (err instanceof CrError) throw err;
    badInput(`cannot read ${path}: ${errMessage(err)}`);
  } finally {
    closeSync(dirfd);
  }
}

const statOf = (st: Stats): ImageFile['stat'] => ({ dev: st.dev, ino: st.ino, uid: st.uid, gid: st.gid, mode: st.mode, size: st.size });

/** The st.size bytes of fd; a file that grows while it is read is refused, one that shrinks is read as it is. */
function readAll(fd: number, st: Stats, path: string): Buffer {
  if (st.size > MAX_IMAGE_BYTES) badInput(`${path} is ${st.size} bytes: more than the ${MAX_IMAGE_BYTES} this cr can read`);
  const bytes = Buffer.allocUnsafe(st.size);
  let got = 0;
  while (got < bytes.length) {
    const n = readSync(fd, bytes, got, bytes.length - got, null);
    if (n === 0) return bytes.subarray(0, got);
    got += n;
  }
  // /proc and sysfs files say size 0 and go on; a file being written says less than it holds.
  if (readSync(fd, Buffer.alloc(1), 0, 1, null) !== 0) badInput(`${path} grew while being read: not an image at rest`);
  return bytes;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Stdin to its end. A terminal is refused (an image is not typed). Stdin may have been left
 * O_NONBLOCK by whoever shares it: EAGAIN waits a millisecond and reads again.
 */
function readStdin(): ImageFile {
  if (isatty(0)) badInput('IMAGE "-" reads the image from stdin, which is a terminal: pipe an image in (gunzip -c app.img.gz | node cr.mjs restore -)');
  let st: Stats;
  try {
    st = fstatSync(0);
  } catch (err) {
    badInput(`cannot read the image from stdin: ${errMessage(err)}`);
  }
  if (st.isDirectory()) badInput('stdin is a directory, not an image');
  const chunks: Buffer[] = [];
  let total = 0;
  for (;;) {
    const chunk = Buffer.allocUnsafe(1 << 20);
    let n: number;
    try {
      n = readSync(0, chunk, 0, chunk.length, null);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') {
        Atomics.wait(sleeper, 0, 0, 1);
        continue;
      }
      badInput(`cannot read the image from stdin: ${errMessage(err)}`);
    }
    if (n === 0) break;
    total += n;
    if (total > MAX_IMAGE_BYTES) badInput(`stdin holds more than the ${MAX_IMAGE_BYTES} bytes this cr can read`);
    chunks.push(n === chunk.length ? chunk : chunk.subarray(0, n));
  }
  if (total === 0) badInput('stdin was empty: no image came');
  // The stat and directory of stdin mean nothing for trust (stdin: true); kept for a complete record.
  return { path: 'stdin', stdin: true, bytes: Buffer.concat(chunks, total), stat: statOf(st), dir: { uid: st.uid, gid: st.gid, mode: 0o700, sticky: false } };
}

/** Closes the file of PagesInFile objects no longer used. */
const closer = new FinalizationRegistry<number>((fd) => {
  try {
    closeSync(fd);
  } catch {
    // closed already
  }
});

/** Bytes a read of page data takes at once: a streamed image's pieces, and PagesInFile's window. */
export const PAGE_READ_BYTES = 1 << 20;

/**
 * The one buffer page data is read through: to hash it as the image is first read
 * (streamProcessFile), then run by run as it is written into a process (PagesInFile). One, reused:
 * on this VM the first touch of a page of memory costs about 18 µs (4-5 ms for a fresh 1 MiB).
 */
let readBuffer = Buffer.allocUnsafe(0);
/** who read into readBuffer last: what it holds is that reader's */
let readBufferOwner: object | null = null;

/** readBuffer, at least `size` bytes, now owner's. */
export function pageReadBuffer(size: number, owner: object): Buffer {
  if (readBuffer.length < size) readBuffer = Buffer.allocUnsafe(size);
  readBufferOwner = owner;
  return readBuffer;
}

/**
 * The page data of a process image, left in its file: read again, as they are written into a
 * process, a window of PAGE_READ_BYTES (or one run, if larger) at a time, so that the small runs
 * of a small process cost a read and a check per window rather than per run. The bytes were
 * hashed as the file was first read (and checked against its checksum); a file changed since then
 * (its size, mtime or ctime, which every write moves) is refused once the window is read, so what
 * goes into a process is what was checked.
 */
export class PagesInFile {
  private readonly seen: FileChange;
  /** verify()'s finding, once made: null if the checksum matched */
  private corrupt: CrError | null | undefined;
  /** the deferred checksum, once the page pass made it (passHash) */
  private digest: Buffer | null = null;
  private handedOut = false;
  /** the file offset readBuffer holds bytes from while this owns it, and how many */
  private windowAt = 0;
  private windowBytes = 0;

  constructor(
    private fd: number,
    private readonly path: string,
    /** the file offset of each PAGES record's page data, in file order */
    readonly offsets: readonly number[],
    /**
     * The checksum, when it is checked after the file was read (passHash, verify(): before the
     * process the pages go into runs), and in place of any other failure (corruption()).
     */
    private readonly deferred?: DeferredCheck,
  ) {
    this.seen = changeOf(fd);
    closer.register(this, fd, this);
  }

  /**
   * The deferred checksum's state, for the pass that reads the page data in file order from
   * `from` to `to` (every byte: runs and the record headers between): null if there is none, or
   * if the pass would not read exactly what is left to hash. Given once; `done()` once all of it
   * went in.
   */
  passHash(from: number, to: number): { update(bytes: Uint8Array): void; done(): void } | null {
    const d = this.deferred;
    if (!d || this.digest !== null || this.handedOut || d.from !== from || d.length !== to) return null;
    this.handedOut = true;
    return { update: (bytes) => d.hash.update(bytes), done: () => void (this.digest = d.hash.digest()) };
  }

  /**
   * With a deferred checksum: refuse the image (the one line a corrupt image read whole gets) if
   * it does not match, hashing here whatever the page pass did not. Once found, the finding is
   * kept: later calls cost nothing.
   */
  verify(): void {
    const corrupt = this.corruption();
    if (corrupt) throw corrupt;
  }

  /** What verify() throws, or null: for a failure whose cause may have been the damage (its message replaced by this). */
  corruption(): CrError | null {
    if (this.corrupt !== undefined) return this.corrupt;
    const d = this.deferred;
    if (!d) return (this.corrupt = null);
    const digest = this.digest ?? this.hashHere(d.length);
    if (digest === null) this.corrupt = new CrError(changedMessage(this.path), EXIT_BAD_INPUT);
    else if (!d.expected.equals(digest)) this.corrupt = new CrError(`${this.path}: not a valid cr process image: checksum mismatch (the image is corrupt)`, EXIT_BAD_INPUT);
    else this.corrupt = null;
    return this.corrupt;
  }

  /** The checksum made here, from the start (the page pass did not make it): `length` bytes, through readBuffer; null if the file changed since it was checked. */
  private hashHere(length: number): Buffer | null {
    if (this.fd < 0) throw new Error(`${this.path}: the image's pages were not kept (its file is closed)`);
    const hash = new ImageChecksum();
    const buf = pageReadBuffer(PAGE_READ_BYTES, this).subarray(0, PAGE_READ_BYTES);
    this.windowBytes = 0;
    for (let pos = 0; pos < length; ) {
      const n = readSync(this.fd, buf, 0, Math.min(buf.length, length - pos), pos);
      if (n === 0) break;
      hash.update(buf.subarray(0, n));
      pos += n;
    }
    const now = changeOf(this.fd);
    if (now.size !== this.seen.size || now.mtimeNs !== this.seen.mtimeNs || now.ctimeNs !== this.seen.ctimeNs) return null;
    return hash.digest();
  }

  /**
   * `length` bytes at `offset`, in a buffer a later read may reuse (use them before reading more).
   * A file that changed since it was checked, or ends early, is a one-line badInput.
   */
  read(offset: number, length: number): Buffer {
    if (this.fd < 0) throw new Error(`${this.path}: the image's pages were not kept (its file is closed)`);
    if (readBufferOwner !== this || offset < this.windowAt || offset + length > this.windowAt + this.windowBytes) {
      const want = Math.max(length, Math.min(PAGE_READ_BYTES, this.seen.size - offset));
      const buf = pageReadBuffer(want, this);
      let got = 0;
      while (got < want) {
        const n = readSync(this.fd, buf, got, want - got, offset + got);
        if (n === 0) break;
        got += n;
      }
      const now = changeOf(this.fd);
      if (got < length || now.size !== this.seen.size || now.mtimeNs !== this.seen.mtimeNs || now.ctimeNs !== this.seen.ctimeNs) {
        this.windowBytes = 0;
        this.changed();
      }
      this.windowAt = offset;
      this.windowBytes = got;
    }
    return readBuffer.subarray(offset - this.windowAt, offset - this.windowAt + length);
  }

  /**
   * A second fd of the file (F_DUPFD_CLOEXEC, the caller's to close) and what it was when checked,
   * for a thread that reads the pages itself: it must refuse a change as read() does (changed()).
   */
  share(): { fd: number; seen: FileChange } {
    if (this.fd < 0) throw new Error(`${this.path}: the image's pages were not kept (its file is closed)`);
    return { fd: dupFd(this.fd), seen: this.seen };
  }

  /** What read() throws for a file changed since it was checked. */
  changed(): never {
    badInput(changedMessage(this.path));
  }

  /** Close the file: done with the pages (a command that needs none closes it at once). */
  close(): void {
    if (this.fd < 0) return;
    closer.unregister(this);
    closeSync(this.fd);
    this.fd = -1;
  }
}

const changedMessage = (path: string): string => `${path} changed while being restored (written to since it was checked): not an image at rest`;

const changeOf = (fd: number): FileChange => {
  const st = fstatSync(fd, { bigint: true });
  return { size: Number(st.size), mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs };
};
