// The fds of a process as /proc shows them: numbers, link targets, and the per-fd fdinfo
// (position, status flags, close-on-exec, mount and inode). Each fd costs one read of its fdinfo
// (openat, read, close, through one buffer reused for every fd) and one readlinkat, but for pipes
// and sockets once their mount is known (the link then follows from the inode), relative to
// the process's fd and fdinfo directories opened once; the stat of the
// inode behind it is taken only when a kind asks (a pipe's link and fdinfo say all a dump needs).
// A dump reads a frozen process's fds once (readProcFds) and hands the same facts to everything
// that judges them: refusal, gathering, locks.
import { closeSync, openSync, readdirSync, statSync, type Stats } from 'node:fs';
import { closeFd, openAt, readFd, readlinkAt } from '../../bridge/file.js';
import { O_CLOEXEC, O_DIRECTORY, O_RDONLY } from '../model/fdtable.js';

const PAGE_SIZE = 4096;

/** What /proc says about one fd, read while the process is frozen. */
export interface ProcFd {
  /** the process the fd is in (a socket's kind asks the kernel about it through a dup of its own) */
  readonly pid: number;
  readonly fd: number;
  /** readlink of /proc/PID/fd/N: a path, `pipe:[ino]`, `socket:[ino]`, `anon_inode:[eventfd]`, ... */
  readonly link: string;
  /** stat of the open inode (through the magic link, so it never resolves the path again); taken on first use */
  readonly stat: Stats;
  /** fdinfo `ino`: the open inode's number (stat's st_ino) */
  readonly ino: number;
  /** fdinfo `mnt_id`: the mount the description was opened through (one per description) */
  readonly mnt: number;
  /** fdinfo `pos` (inexact above 2^53: posText is exact) */
  readonly pos: number;
  /** fdinfo `pos` as the kernel wrote it (a directory's position may be a 63-bit cookie) */
  readonly posText: string;
  /** every fdinfo line as name -> value text (eventfd-count, eventfd-semaphore, ...), first of each name */
  readonly info: ReadonlyMap<string, string>;
  /** the whole fdinfo text, for kinds with lines that repeat (an epoll's `tfd:` items, `lock:` lines) */
  readonly text: string;
  /** fdinfo `flags` without O_CLOEXEC: what F_GETFL returns */
  readonly flags: number;
  /** fdinfo's O_CLOEXEC bit, which is the fd's FD_CLOEXEC */
  readonly cloexec: boolean;
}

/** fd numbers open in pid, ascending. */
export function listFds(pid: number): number[] {
  return readdirSync(`/proc/${pid}/fd`)
    .map(Number)
    .sort((a, b) => a - b);
}

/** The fdinfo lines every fd has (fs/proc/fd.c seq_show), in the kernel's order. */
const HEAD = /^pos:\t(\d+)\nflags:\t([0-7]+)\nmnt_id:\t(\d+)\nino:\t(\d+)\n/;

class ProcFdEntry implements ProcFd {
  readonly pos: number;
  readonly posText: string;
  readonly flags: number;
  readonly cloexec: boolean;
  readonly mnt: number;
  readonly ino: number;
  private statCache: Stats | undefined;
  private infoCache: Map<string, string> | undefined;

  constructor(readonly pid: number, readonly fd: number, readonly link: string, readonly text: string) {
    const m = HEAD.exec(text);
    if (m) {
      this.posText = m[1]!;
      this.mnt = Number(m[3]);
      this.ino = Number(m[4]);
      this.flags = parseInt(m[2]!, 8);
    } else {
      // Not the layout this kernel writes: the lines by name, wherever they are.
      const info = this.info;
      this.posText = info.get('pos') ?? '';
      this.mnt = Number(info.get('mnt_id') ?? -1);
      this.flags = parseInt(info.get('flags') ?? '', 8);
      if (!/^\d+$/.test(this.posText) || Number.isNaN(this.flags)) throw new Error(`unexpected fdinfo: ${JSON.stringify(text.slice(0, 80))}`);
      const ino = info.get('ino');
      this.ino = ino !== undefined && /^\d+$/.test(ino) ? Number(ino) : this.stat.ino;
    }
    this.pos = Number(this.posText);
    this.cloexec = (this.flags & O_CLOEXEC) !== 0;
    this.flags = this.flags & ~O_CLOEXEC;
  }

  get stat(): Stats {
    return (this.statCache ??= statSync(`/proc/${this.pid}/fd/${this.fd}`));
  }

  get info(): ReadonlyMap<string, string> {
    if (this.infoCache === undefined) {
      const info = new Map<string, string>();
      for (const line of this.text.split('\n')) {
        const m = /^([\w-]+):\s+(\S+)/.exec(line);
        if (m && !info.has(m[1]!)) info.set(m[1]!, m[2]!);
      }
      this.infoCache = info;
    }
    return this.infoCache;
  }
}

/** One buffer for every fdinfo read; grown when a file does not fit (an epoll's or inotify's long lists). */
let scratch = Buffer.allocUnsafe(16 * 1024);
/** A link /proc writes is at most a page (d_path's buffer). */
const linkBuf = Buffer.allocUnsafe(PAGE_SIZE + 1);

/** The whole of the /proc file `name` in directory dirfd (latin1), read through the shared buffer. */
function readProcText(dirfd: number, name: string): string {
  const fd = openAt(dirfd, name, O_RDONLY | O_CLOEXEC);
  try {
    let got = 0;
    for (;;) {
      const n = readFd(fd, got === 0 ? scratch : scratch.subarray(got));
      got += n;
      // fdinfo is one seq_file show: a read that leaves room in the buffer has had all of it.
      if (n === 0 || got < scratch.length) break;
      const bigger = Buffer.allocUnsafe(scratch.length * 2);
      scratch.copy(bigger, 0, 0, got);
      scratch = bigger;
    }
    return scratch.toString('latin1', 0, got);
  } finally {
    closeFd(fd);
  }
}

function readLink(dirfd: number, name: string): string {
  const n = readlinkAt(dirfd, name, linkBuf);
  if (n === linkBuf.length) throw new Error(`readlinkat(${name}): a link longer than a page`);
  // As node's readlink gives it: the bytes as UTF-8.
  return linkBuf.toString('utf8', 0, n);
}

/** A directory of /proc, open for the *at calls (the pid's lookup made once, not per fd). */
const openDir = (path: string): number => openSync(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

/** Every fd of a (frozen) process, ascending, each read once. */
export function readProcFds(pid: number): ProcFd[] {
  const fdDir = openDir(`/proc/${pid}/fd`);
  try {
    const infoDir = openDir(`/proc/${pid}/fdinfo`);
    try {
      // Every pipe is an inode of the one pipefs mount, every socket of sockfs, and the kernel
      // names them `pipe:[ino]` and `socket:[ino]` (their d_dname): once a link has shown which
      // mount that is, an fd whose fdinfo names the same mount needs no readlink.
      const named = new Map<number, string>();
      return listFds(pid).map((fd) => {
        const name = String(fd);
        const text = readProcText(infoDir, name);
        const head = HEAD.exec(text);
        const kind = head ? named.get(Number(head[3])) : undefined;
        if (kind !== undefined) return new ProcFdEntry(pid, fd, `${kind}:[${head![4]}]`, text);
        const link = readLink(fdDir, name);
        const pseudo = /^(pipe|socket):\[(\d+)\]$/.exec(link);
        if (head && pseudo && pseudo[2] === head[4]) named.set(Number(head[3]), pseudo[1]!);
        return new ProcFdEntry(pid, fd, link, text);
      });
    } finally {
      closeSync(infoDir);
    }
  } finally {
    closeSync(fdDir);
  }
}
