// Reading and writing another process's memory: process_vm_readv/writev (no stop needed, honours
// page protections), and /proc/PID/mem for pages the tracee cannot write itself (code).
import { closeSync, openSync, writeSync } from 'node:fs';
import { check, SyscallError } from './errno.js';
import { addressOf, lastErrno, libc } from './libc.js';

const hex = (addr: bigint): string => `0x${addr.toString(16)}`;

export function readMemory(pid: number, addr: bigint, len: number): Buffer {
  const buf = Buffer.alloc(len);
  const n = check(
    libc.processVmReadv(pid, { base: buf, len }, 1, { base: addr, len }, 1, 0),
    () => `process_vm_readv(pid=${pid}, addr=${hex(addr)}, len=${len})`,
  );
  if (n !== len) throw new Error(`process_vm_readv(pid=${pid}, addr=${hex(addr)}, len=${len}): short read of ${n} bytes`);
  return buf;
}

export function writeMemory(pid: number, addr: bigint, buf: Buffer): void {
  const len = buf.length;
  const n = check(
    libc.processVmWritev(pid, { base: buf, len }, 1, { base: addr, len }, 1, 0),
    () => `process_vm_writev(pid=${pid}, addr=${hex(addr)}, len=${len})`,
  );
  if (n !== len) throw new Error(`process_vm_writev(pid=${pid}, addr=${hex(addr)}, len=${len}): short write of ${n} bytes`);
}

/**
 * Write through /proc/PID/mem, which (for a ptrace-attached caller) writes read-only pages too,
 * copy-on-write, as a debugger patches code. Node's fs errors carry the errno name already.
 */
export function writeMemoryForce(pid: number, addr: bigint, buf: Buffer): void {
  const fd = openSync(`/proc/${pid}/mem`, 'r+');
  try {
    const n = writeSync(fd, buf, 0, buf.length, Number(addr));
    if (n !== buf.length) throw new Error(`write(/proc/${pid}/mem, addr=${hex(addr)}, len=${buf.length}): short write of ${n} bytes`);
  } finally {
    closeSync(fd);
  }
}

/** At most this many ranges in one process_vm_readv/writev (UIO_MAXIOV). */
export const MAX_RANGES = 1024;
const localIov = new BigUint64Array(MAX_RANGES * 2);
const remoteIov = new BigUint64Array(MAX_RANGES * 2);
const localBytes = Buffer.from(localIov.buffer);
const remoteBytes = Buffer.from(remoteIov.buffer);

/** One range of another process's memory and where its bytes are (or go) in cr's. */
export interface MemoryRange {
  addr: number;
  data: Buffer;
}

/**
 * Copy up to MAX_RANGES ranges between another process's memory and cr's buffers with one
 * process_vm_readv (write false) or process_vm_writev (write true). Returns the bytes moved: the
 * kernel stops at the first page it cannot reach (unmapped, or without the protection the
 * process itself would need), so fewer than asked means the ranges up to that byte were moved
 * and the rest not; EFAULT on the first page is 0, not an error.
 */
export function copyRanges(pid: number, ranges: readonly MemoryRange[], write: boolean): number {
  if (ranges.length > MAX_RANGES) throw new Error(`process_vm_${write ? 'writev' : 'readv'}: ${ranges.length} ranges, more than ${MAX_RANGES}`);
  ranges.forEach((r, i) => {
    localIov[2 * i] = addressOf(r.data);
    localIov[2 * i + 1] = BigInt(r.data.length);
    remoteIov[2 * i] = BigInt(r.addr);
    remoteIov[2 * i + 1] = BigInt(r.data.length);
  });
  const n = write
    ? libc.processVmWritevRaw(pid, localBytes, ranges.length, remoteBytes, ranges.length, 0)
    : libc.processVmReadvRaw(pid, localBytes, ranges.length, remoteBytes, ranges.length, 0);
  if (n >= 0) return n;
  const errno = lastErrno();
  if (errno === EFAULT) return 0;
  throw new SyscallError(`process_vm_${write ? 'writev' : 'readv'}(pid=${pid}, ${ranges.length} ranges from ${hex(BigInt(ranges[0]?.addr ?? 0))})`, errno);
}

const EFAULT = 14;
