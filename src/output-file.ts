// Writing a file cr creates (an image, a pidfile): whole at its name, or not at all (fsync'd first
// unless told not to: an image the dump's processes outlive need not be, see openImageOutput),
// and only ever creating a name or replacing a regular file or a symlink itself: a device node,
// FIFO, socket or directory at the name is refused, never replaced. The bytes go first to a file
// with no name (O_TMPFILE in the target's directory), linked into place once complete; where the
// file system has no O_TMPFILE, to a random name created with O_EXCL|O_NOFOLLOW. Nothing at a
// name another user could guess is ever followed or reused. A file at a random name is locked
// (flock) before it has the name, so that a later `--force` write of the same path, which removes
// what a killed cr left at such names (removeStale), never takes one another cr is writing.
// The kind of what is at the name is checked with lstat just before it is replaced: whoever
// could swap a node in between may write the directory, and so could remove the file anyway.
// An image may also go to stdout (`-o -`, for a pipe: `cr dump ... -o - | ssh host cr restore -`):
// StdoutOutput writes as it goes; a failed dump leaves the reader a truncated image, which its
// checksum refuses.
import { closeSync, fstatSync, fsyncSync, linkSync, lstatSync, openSync, readdirSync, renameSync, unlinkSync, writeSync, writevSync, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { SyscallError } from '../bridge/errno.js';
import { AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_FOLLOW, flockFd, linkAt, LOCK_EX, LOCK_NB, RENAME_EXCHANGE, renameAt2 } from '../bridge/file.js';
import { isatty } from '../bridge/tty.js';
import { badInput, CrError, errMessage } from './errors.js';
import { O_CLOEXEC, O_CREAT, O_DIRECTORY, O_EXCL, O_NOFOLLOW, O_NONBLOCK, O_RDONLY, O_WRONLY } from './model/fdtable.js';
import { randomHex } from './random-name.js';
import { WriteThread } from './write-thread.js';

/** O_TMPFILE (include/uapi/asm-generic/fcntl.h): __O_TMPFILE | O_DIRECTORY. */
const O_TMPFILE = 0o20000000 | O_DIRECTORY;

export interface OutputOptions {
  /** replace a regular file or symlink already at the path (otherwise refused) */
  force: boolean;
  /** permission bits (the umask applies) */
  mode: number;
  /** how messages name the file: the path, or e.g. `the pidfile PATH` */
  label?: string;
  /** fsync before the file is given its name (default true) */
  sync?: boolean;
}

const codeOf = (err: unknown): string | undefined => (err as NodeJS.ErrnoException).code;
/** A write's failure: an errno as errMessage says it; the write thread's own (it died, it did not start) by its message alone. */
const writeMessage = (err: unknown): string => (codeOf(err) === undefined && err instanceof Error ? err.message : errMessage(err));

/** Refuse what may not be at path: a directory or other non-file always, anything without force. */
export function checkOutputPath(path: string, opts: { force: boolean; label?: string }): void {
  const label = opts.label ?? path;
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return; // nothing there (or nothing cr may see: creating it will tell)
  }
  const kind = unreplaceable(st);
  if (kind === 'a directory') badInput(`${label} is a directory`);
  if (kind !== null) badInput(`${label} is ${kind}: cr writes only a new file or over a regular file or a symlink`);
  if (!opts.force) badInput(`${label} exists (use --force to replace it)`);
}

/** Where an image goes: a file (OutputFile) or stdout (StdoutOutput). */
export interface Output {
  write(parts: Buffer[]): void;
  /** the image is complete: nothing is left to write */
  commit(): void;
  /** give up (a file leaves nothing behind; stdout cannot take back what it sent) */
  abort(): void;
  /**
   * Have a thread write from now on (write-thread.ts), while the caller goes on: returns where the
   * caller copies what it writes next, a slot of `slotBytes` of `count` (WriteThread.nextSlot).
   * Absent where there is no such thread (stdout).
   */
  writeBehind?(count: number, slotBytes: number): () => Buffer;
}

/** `-o -`: stdout. */
export const STDOUT_PATH = '-';

/**
 * An image's output: path, or stdout for `-`. `sync`: fsync the file before it is given its name.
 * A dump asks for it when its processes will not outlive it (`--kill`: the image is then all
 * there is of them) or when told to (`--sync`); otherwise the image goes to the page cache and
 * is linked into place as CRIU writes its images, without waiting for the disk (0.3 s for 300
 * MiB here, more than all the rest of the write). A crash before the kernel writes it back may
 * then leave the file short or holed, which its checksum refuses: never restored wrong.
 */
export function openImageOutput(path: string, opts: { force: boolean; sync: boolean }): Output {
  return path === STDOUT_PATH ? new StdoutOutput() : OutputFile.create(path, { force: opts.force, mode: 0o600, sync: opts.sync });
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * The image written to fd 1 as it is made. A terminal is refused before anything is done (an
 * image is binary). fd 1 may be O_NONBLOCK (shared with whoever set it): EAGAIN waits a
 * millisecond and writes again. A reader that went away is EPIPE (node ignores SIGPIPE): one line.
 */
export class StdoutOutput implements Output {
  constructor() {
    if (isatty(1)) badInput('-o - writes the image to stdout, which is a terminal: send it into a pipe or a file (-o - | gzip > app.img.gz)');
  }

  write(parts: Buffer[]): void {
    for (const part of parts) {
      let done = 0;
      while (done < part.length) {
        try {
          done += writeSync(1, part, done, part.length - done);
        } catch (err) {
          if (codeOf(err) === 'EAGAIN') {
            Atomics.wait(sleeper, 0, 0, 1);
            continue;
          }
          throw new CrError(`cannot write the image to stdout: ${errMessage(err)}${codeOf(err) === 'EPIPE' ? ' (its reader went away)' : ''}`);
        }
      }
    }
  }

  commit(): void {
    // Every byte is with the reader already: a pipe has nothing to fsync.
  }

  abort(): void {
    // What went out cannot be taken back; the reader's checksum refuses a truncated image.
  }
}

/** A file being written; nothing is at its path until commit(). */
export class OutputFile implements Output {
  private readonly label: string;
  /** writing the file's bytes from shared memory, once asked (writeThread) */
  private thread: WriteThread | null = null;

  private constructor(
    readonly path: string,
    private fd: number,
    /** the random name of the fallback file (null for an O_TMPFILE one), or of the file it replaced, to unlink */
    private tmp: string | null,
    private readonly opts: OutputOptions,
  ) {
    this.label = opts.label ?? path;
  }

  /**
   * Check path (checkOutputPath) and create the unnamed file in its directory: a missing or
   * unwritable directory fails here, before any work is done. Errors are one-line CrErrors.
   */
  static create(path: string, opts: OutputOptions): OutputFile {
    checkOutputPath(path, opts);
    const dir = dirname(path);
    try {
      return new OutputFile(path, openSync(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, opts.mode), null, opts);
    } catch (err) {
      // EOPNOTSUPP: a file system without O_TMPFILE; EISDIR, EINVAL: a kernel without it.
      if (!['EOPNOTSUPP', 'EISDIR', 'EINVAL'].includes(codeOf(err) ?? '')) throw new CrError(`cannot write ${opts.label ?? path}: ${errMessage(err)}`);
    }
    for (let attempt = 0; ; attempt++) {
      const tmp = randomName(path);
      let fd: number;
      try {
        fd = openSync(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, opts.mode);
      } catch (err) {
        if (codeOf(err) === 'EEXIST' && attempt < 8) continue;
        throw new CrError(`cannot write ${opts.label ?? path}: ${errMessage(err)}`);
      }
      // Named before it could be locked: a removeStale that took it in between has it locked, or
      // has removed the name; either way another name is taken (that one is the remover's).
      if (lockTemp(fd) && sameFile(fd, tmp)) return new OutputFile(path, fd, tmp, opts);
      closeSync(fd);
      if (attempt >= 8) throw new CrError(`cannot write ${opts.label ?? path}: its temporary file was removed as it was made`);
    }
  }

  /** Append parts (a full disk or a quota is one line, the user's to fix). */
  write(parts: Buffer[]): void {
    if (this.thread) {
      try {
        if (this.thread.post(parts)) return;
        this.thread.drain();
      } catch (err) {
        throw new CrError(`cannot write ${this.label}: ${writeMessage(err)}`);
      }
    }
    const total = parts.reduce((n, p) => n + p.length, 0);
    let written = 0;
    try {
      while (written < total) {
        // writev may stop short; resume from the first byte not yet written
        let skip = written;
        const rest: Buffer[] = [];
        for (const p of parts) {
          if (skip >= p.length) skip -= p.length;
          else {
            rest.push(skip ? p.subarray(skip) : p);
            skip = 0;
          }
        }
        written += writevSync(this.fd, rest);
      }
    } catch (err) {
      throw new CrError(`cannot write ${this.label}: ${errMessage(err)}`);
    }
  }

  writeBehind(count: number, slotBytes: number): () => Buffer {
    const thread = (this.thread ??= new WriteThread(this.fd, count, slotBytes));
    return () => {
      try {
        return thread.nextSlot();
      } catch (err) {
        throw new CrError(`cannot write ${this.label}: ${writeMessage(err)}`);
      }
    };
  }

  /** fsync (unless opts.sync is false), then put the file at its path: created, or (force) replacing a file or symlink. */
  commit(): void {
    try {
      try {
        this.thread?.drain();
        if (this.opts.sync !== false) fsyncSync(this.fd);
      } catch (err) {
        throw new CrError(`cannot write ${this.label}: ${writeMessage(err)}`);
      }
      if (this.tmp === null) this.linkUnnamed();
      else this.linkNamed(this.tmp);
    } finally {
      this.abort();
    }
    if (this.opts.force) removeStale(this.path);
  }

  /** Close and remove whatever was written; nothing is left at the path or beside it. */
  abort(): void {
    this.thread?.stop();
    this.thread = null;
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
    if (this.tmp !== null) {
      try {
        unlinkSync(this.tmp);
      } catch {
        // renamed into place
      }
      this.tmp = null;
    }
  }

  private linkUnnamed(): void {
    if (!this.opts.force || !existsNoFollow(this.path)) {
      try {
        linkFd(this.fd, this.path);
        return;
      } catch (err) {
        if (codeOf(err) !== 'EEXIST' || !this.opts.force) throw this.installError(err);
      }
    }
    // Replacing: a random name first (linkat fails on anything there, and follows nothing),
    // then put in place of what is at the path (replaceWith). Locked before it has the name.
    lockTemp(this.fd);
    for (let attempt = 0; ; attempt++) {
      const tmp = randomName(this.path);
      try {
        linkFd(this.fd, tmp);
      } catch (err) {
        if (codeOf(err) === 'EEXIST' && attempt < 8) continue;
        throw this.installError(err);
      }
      this.tmp = tmp;
      this.replaceWith(tmp);
      return;
    }
  }

  private linkNamed(tmp: string): void {
    if (this.opts.force) {
      this.replaceWith(tmp);
      return;
    }
    try {
      linkSync(tmp, this.path); // fails on anything at the path, a dangling symlink included
    } catch (err) {
      throw this.installError(err);
    }
  }

  /**
   * Put tmp at the path in place of what is there: a file or a symlink itself, never what it
   * points to. The two names are swapped (RENAME_EXCHANGE) and the old file then unlinked under
   * tmp, rather than tmp renamed over it: ext4 (its default auto_da_alloc) starts the write-back of
   * every dirty page of a file renamed over another, for programs that replace files without an
   * fsync, which took 0.17-0.21 s of a 300 MiB image's dump here; an image is synced only when
   * asked (openImageOutput), and a crash before write-back leaves one its checksum refuses.
   * Either way the path names the old file or the new one at every moment. Where the file system
   * cannot exchange (EINVAL), or nothing is at the path any more (ENOENT), it is renamed over.
   */
  private replaceWith(tmp: string): void {
    checkOutputPath(this.path, { force: true, label: this.label });
    try {
      try {
        renameAt2(AT_FDCWD, tmp, AT_FDCWD, this.path, RENAME_EXCHANGE);
      } catch (err) {
        if (codeOf(err) !== 'EINVAL' && codeOf(err) !== 'ENOENT') throw err;
        renameSync(tmp, this.path);
        this.tmp = null;
        return;
      }
    } catch (err) {
      throw this.installError(err);
    }
    // A directory (or a FIFO, a device, a socket) put at the path since it was checked is given
    // its name back (rename over it would have failed, or replaced it): refused, as the check
    // refuses one.
    const raced = kindNoFollow(tmp);
    if (raced !== null) {
      try {
        renameAt2(AT_FDCWD, tmp, AT_FDCWD, this.path, RENAME_EXCHANGE);
      } catch (err) {
        // Only whoever put it there can have moved it or the image since (they may write the
        // directory): what is where is said as it is. The image is whole; what was at the path
        // stays at tmp, never removed.
        this.tmp = null;
        throw new CrError(`${this.label}: ${raced} was put there as the image was written, and could not be given its name back (${codeOf(err) ?? errMessage(err)}): it is at ${tmp}, the image at ${this.label}`);
      }
      throw raced === 'a directory' ? this.installError(Object.assign(new Error(raced), { code: 'EISDIR' })) : new CrError(`${this.label} is ${raced}: cr writes only a new file or over a regular file or a symlink`, 2);
    }
    // tmp names the old file now: abort() unlinks it.
  }

  private installError(err: unknown): CrError {
    const code = codeOf(err);
    if (code === 'EEXIST') return new CrError(`${this.label} exists (use --force to replace it)`, 2);
    if (code === 'EISDIR') return new CrError(`${this.label} is a directory`, 2);
    return new CrError(`cannot write ${this.label}: ${err instanceof SyscallError ? `${err.code} (link)` : errMessage(err)}`);
  }
}

/** What an lstat found, if cr may not replace it ('a directory', 'a FIFO', ...); null for a file or a symlink. */
function unreplaceable(st: Stats): string | null {
  if (st.isFile() || st.isSymbolicLink()) return null;
  return st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : st.isSocket() ? 'a socket' : st.isCharacterDevice() ? 'a character device' : st.isBlockDevice() ? 'a block device' : 'not a regular file';
}

/** What is at path if cr may not replace it (unreplaceable), else null (a file, a symlink, nothing). */
function kindNoFollow(path: string): string | null {
  try {
    return unreplaceable(lstatSync(path));
  } catch {
    return null;
  }
}

/**
 * Lock fd's file (flock, on its open file description: held until cr's last fd of it closes, or
 * cr dies) so that removeStale leaves it alone. False if another holds a lock on it (removeStale
 * does, taking it); a file system without flock locks nothing and says true.
 */
function lockTemp(fd: number): boolean {
  try {
    flockFd(fd, LOCK_EX | LOCK_NB);
  } catch (err) {
    if (codeOf(err) === 'EAGAIN') return false;
  }
  return true;
}

/** Whether path (not followed) is the file open at fd. */
function sameFile(fd: number, path: string): boolean {
  try {
    const at = lstatSync(path);
    const open = fstatSync(fd);
    return at.ino === open.ino && at.dev === open.dev;
  } catch {
    return false;
  }
}

/**
 * Remove what a killed cr left beside path: the old file between a `--force` write's exchange of
 * names and its unlink, a complete file between its link at a random name and the exchange, or one
 * being written where the file system has no O_TMPFILE. Only cr's names for path
 * (`.NAME.<16 hex>.tmp`), and of those only a regular file (never followed) with one link, of cr's
 * user, that no cr holds locked (lockTemp: one being written). What cannot be removed is left.
 */
function removeStale(path: string): void {
  const dir = dirname(path);
  const prefix = `.${basename(path)}.`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  const me = process.geteuid?.();
  for (const name of names) {
    if (!name.startsWith(prefix) || !TMP_SUFFIX.test(name.slice(prefix.length))) continue;
    const at = join(dir, name);
    let fd = -1;
    try {
      const st = lstatSync(at);
      if (!st.isFile() || st.nlink !== 1 || st.uid !== me) continue;
      fd = openSync(at, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
      if (!sameFile(fd, at)) continue;
      flockFd(fd, LOCK_EX | LOCK_NB);
      // Held until it is gone: a writer that named a file there a moment ago (create, on a file
      // system without O_TMPFILE) finds it locked and takes another name.
      unlinkSync(at);
    } catch {
      // locked (being written), gone, or not cr's to remove: left
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  }
}

function existsNoFollow(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

/** A name for the O_TMPFILE file at fd: by the fd itself where the kernel allows it, else through /proc. */
function linkFd(fd: number, path: string): void {
  try {
    linkAt(fd, '', AT_FDCWD, path, AT_EMPTY_PATH);
  } catch (err) {
    // Before Linux 6.10, AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH (ENOENT without it).
    if (codeOf(err) !== 'ENOENT') throw err;
    linkAt(AT_FDCWD, `/proc/self/fd/${fd}`, AT_FDCWD, path, AT_SYMLINK_FOLLOW);
  }
}

/** what follows `.NAME.` in randomName's names */
const TMP_SUFFIX = /^[0-9a-f]{16}\.tmp$/;
const randomName = (path: string): string => join(dirname(path), `.${basename(path)}.${randomHex(8)}.tmp`);
