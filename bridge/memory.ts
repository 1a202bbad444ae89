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

const SYS_madvise = 28;
const MADV_HUGEPAGE = 14;
const MADV_POPULATE_WRITE = 23;
const HUGE = 2 << 20;

const madvise = (addr: bigint, len: number, advice: number): boolean => libc.syscall(SYS_madvise, 'uintptr_t', addr, 'size_t', len, 'int', advice) === 0;

/**
 * A buffer of at least `bytes` (a multiple of 2 MiB) whose memory is present and written already,
 * for copies that must not pay for fresh memory when they run: on this VM the first write to a
 * 4 KiB page costs 1.6-18 µs (a fault each). Made of 2 MiB pages where the kernel gives them
 * (madvise MADV_HUGEPAGE on a 2 MiB-aligned part of a larger allocation: transparent hugepages are
 * in `madvise` mode here) and made present in one call (MADV_POPULATE_WRITE, Linux 5.14): 8 MiB in
 * about 1.1 ms against 4.4-5.8 ms written page by page. Where either is refused, written page by page.
 */
export function readyMemory(bytes: number): Buffer {
  const size = Math.ceil(bytes / HUGE) * HUGE;
  return ready(Buffer.allocUnsafe(size + HUGE), size);
}

/** size bytes of raw (size + 2 MiB long) from a 2 MiB boundary, made present (readyMemory). */
function ready(raw: Buffer, size: number): Buffer {
  const at = addressOf(raw);
  const skip = Number(((at + BigInt(HUGE - 1)) & ~BigInt(HUGE - 1)) - at);
  const buf = raw.subarray(skip, skip + size);
  const start = at + BigInt(skip);
  madvise(start, size, MADV_HUGEPAGE);
  if (!madvise(start, size, MADV_POPULATE_WRITE)) buf.fill(0);
  return buf;
}

/**
 * readyMemory's memory shared with other threads (a SharedArrayBuffer): `bytes` (rounded up to 2
 * MiB) of it as `buffer`, present and written already.
 */
export function readyShared(bytes: number): { shared: SharedArrayBuffer; buffer: Buffer } {
  const size = Math.ceil(bytes / HUGE) * HUGE;
  const shared = new SharedArrayBuffer(size + HUGE);
  return { shared, buffer: ready(Buffer.from(shared), size) };
}
