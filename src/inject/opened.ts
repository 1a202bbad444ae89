// What a path opened to, asked of the process that opened it: fstat(2) and fstatfs(2) on the fd
// it now holds, run inside it, their results read from its memory. A path is only a name: what it
// names can change between any look cr takes and the target's open (a FIFO swapped for a regular
// file, a directory, a socket, a cgroup or sysfs file; /dev/null for another device). The fd
// cannot change, so the fd is judged, not the path, and nothing is written through it before.
import { devName } from '../model/fdtable.js';
import { SYS } from './syscalls.js';

/** What can run a system call in the target and lend it scratch memory: an Injector or a Husk. */
export interface InTarget {
  syscall(nr: number, ...args: bigint[]): bigint;
  read(addr: bigint, len: number): Buffer;
}

/** Scratch bytes fileAt needs: struct stat (144) then struct statfs (120), x86_64. */
export const OPENED_SCRATCH_BYTES = 264;
/** Where the struct statfs starts in that scratch. */
export const STATFS_AT = 144n;

export type FileType = 'FIFO' | 'character device' | 'directory' | 'block device' | 'regular file' | 'symlink' | 'socket';

const TYPES: Record<number, FileType> = {
  0o010000: 'FIFO',
  0o020000: 'character device',
  0o040000: 'directory',
  0o060000: 'block device',
  0o100000: 'regular file',
  0o120000: 'symlink',
  0o140000: 'socket',
};
const S_IFMT = 0o170000;

const PROC_SUPER_MAGIC = 0x9fa0;
const PIPEFS_MAGIC = 0x50495045;

/** The file an fd leads to, as the target's kernel reports it. */
export interface Opened {
  type: FileType | `mode 0o${string}`;
  /** st_dev, st_ino, st_rdev as the kernel encodes dev_t for userspace (what node's stat gives) */
  dev: number;
  ino: number;
  rdev: number;
  /** statfs f_type: the file system's magic number */
  fsType: number;
}

/** What the image says a path opens: its type, and for a device or a mapped file, which one. */
export interface Expected {
  type: FileType;
  /** a device: this st_rdev (absent: any device of the type, for images that did not record it) */
  rdev?: number;
  /** a mapped file or an executable: this very inode */
  inode?: { dev: number; ino: number };
}

/** fstat and fstatfs on fd, run in the target; scratch is OPENED_SCRATCH_BYTES of its memory. */
export function fileAt(t: InTarget, fd: bigint, scratch: bigint): Opened {
  const stat = t.syscall(SYS.fstat, fd, scratch);
  if (stat !== 0n) throw new Error(`fstat(${fd}) in the target: errno ${-stat}`);
  const statfs = t.syscall(SYS.fstatfs, fd, scratch + STATFS_AT);
  if (statfs !== 0n) throw new Error(`fstatfs(${fd}) in the target: errno ${-statfs}`);
  return openedFrom(t.read(scratch, OPENED_SCRATCH_BYTES));
}

/** The Opened that a struct stat followed (at STATFS_AT) by a struct statfs describe. */
export function openedFrom(b: Buffer): Opened {
  const mode = b.readUInt32LE(24);
  return {
    type: TYPES[mode & S_IFMT] ?? `mode 0o${(mode & S_IFMT).toString(8)}`,
    dev: Number(b.readBigUInt64LE(0)),
    ino: Number(b.readBigUInt64LE(8)),
    rdev: Number(b.readBigUInt64LE(40)),
    fsType: Number(b.readBigInt64LE(Number(STATFS_AT))),
  };
}

const article = (type: string): string => (/^[aeiou]/i.test(type) ? 'an' : 'a');

/**
 * Why the opened file is not what the image says, in words to follow "the path opens"; null when it
 * is. Beyond the type: never a procfs file (it would be the target's own, as a path into /proc
 * is refused when the image is read); a FIFO never an anonymous pipe (a symlink to
 * /proc/self/fd/N would reach the target's own pipe); a device its recorded number; a mapped file
 * or executable its recorded inode. A regular file of the fd table may be another inode than at
 * the dump: a file moved or rotated is what its path names now (docs/restore.md).
 */
export function mismatch(got: Opened, want: Expected): string | null {
  const now = `${article(got.type)} ${got.type}`;
  const wanted = `${article(want.type)} ${want.type}`;
  if (got.fsType === PROC_SUPER_MAGIC) return `a file in /proc (${now}), not ${wanted}`;
  if (got.type !== want.type) return `${now}, not ${wanted}`;
  if (want.type === 'FIFO' && got.fsType === PIPEFS_MAGIC) return 'an anonymous pipe, not a FIFO';
  if (want.rdev !== undefined && got.rdev !== want.rdev) return `${now} ${devName(got.rdev)}, not ${devName(want.rdev)}`;
  if (want.inode && (got.dev !== want.inode.dev || got.ino !== want.inode.ino)) {
    return `inode ${got.ino} on device ${devName(got.dev)}, not inode ${want.inode.ino} on ${devName(want.inode.dev)}`;
  }
  return null;
}
