// The fd-table model shared by dump, image, planner, simulator and replay.
// docs/fd-table.md is the reference for every field; keep the two in step.

/** What an open file description is, as far as restoring it goes. */
export type DescKind = 'pipe' | 'fifo' | 'file' | 'chr' | 'other';

/** One fd number in the table. */
export interface Fd {
  fd: number;
  /** id of the open file description (Desc.id) this fd refers to */
  desc: number;
  /** FD_CLOEXEC: per fd, not per description */
  cloexec: boolean;
}

/** One open file description (struct file): shared by all fds dup'd from it. */
export interface Desc {
  id: number;
  kind: DescKind;
  /**
   * F_GETFL exactly as the kernel reports it: access mode plus status flags,
   * O_LARGEFILE included. For a pipe, O_LARGEFILE tells the description that
   * pipe2() made (never has it) from one reopened through /proc/PID/fd (always has it).
   */
  flags: number;
  /** Pipe.id for 'pipe' and 'fifo' descriptions */
  pipe?: number;
  /** absolute path for 'fifo', 'file', 'chr' */
  path?: string;
  /** file position for 'file' (and 'chr' when the device keeps one) */
  offset?: number;
  /**
   * For 'chr': the device number (st_rdev, as the kernel encodes dev_t for userspace). Restore
   * refuses a path that then opens another device; absent (tables written before cr recorded
   * it, hand-written ones), any character device is accepted.
   */
  rdev?: number;
}

/** major:minor of a dev_t as the kernel encodes it for userspace (new_encode_dev), as node's stat gives it. */
export function devName(dev: number): string {
  const d = BigInt(dev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/** A pipe object: an anonymous pipe, or the pipe inside a named FIFO. */
export interface Pipe {
  id: number;
  /** F_GETPIPE_SZ, bytes */
  capacity: number;
  /** bytes queued in the pipe, base64 */
  data: string;
  /**
   * When the queued data is in packet mode (O_DIRECT writes), the length of each
   * packet in order; absent for a byte stream.
   */
  packets?: number[];
}

export interface Rlimit {
  soft: number;
  hard: number;
}

/** A checkpointed fd table: the `plan` input and `show --json` output. */
export interface FdTable {
  fds: Fd[];
  descs: Desc[];
  pipes: Pipe[];
  /** RLIMIT_NOFILE of the checkpointed process */
  rlimit: Rlimit;
}

// x86_64 open flag values (asm-generic/fcntl.h).
export const O_ACCMODE = 0o3;
export const O_RDONLY = 0o0;
export const O_WRONLY = 0o1;
export const O_RDWR = 0o2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_NOCTTY = 0o400;
export const O_TRUNC = 0o1000;
export const O_APPEND = 0o2000;
export const O_NONBLOCK = 0o4000;
export const O_DSYNC = 0o10000;
export const O_ASYNC = 0o20000;
export const O_DIRECT = 0o40000;
export const O_LARGEFILE = 0o100000;
export const O_DIRECTORY = 0o200000;
export const O_NOFOLLOW = 0o400000;
export const O_NOATIME = 0o1000000;
export const O_CLOEXEC = 0o2000000;
export const O_SYNC = 0o4010000;
export const O_PATH = 0o10000000;
/**
 * The status flags that may differ from what creation gave: the kernel's SETFL_MASK
 * (fs/fcntl.c) plus O_ASYNC, which F_SETFL sets only through a file's ->fasync (pipes have
 * one; regular files and most devices get O_ASYNC from open() alone).
 */
export const SETFL_MASK = O_APPEND | O_NONBLOCK | O_NOATIME | O_DIRECT | O_ASYNC;
/** Pipe capacity the kernel gives a new pipe (16 pages). */
export const DEFAULT_PIPE_CAPACITY = 65536;
