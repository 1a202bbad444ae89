// The PAGEMAP_SCAN ioctl on /proc/PID/pagemap (Linux 6.7+, Documentation/admin-guide/mm/pagemap.rst):
// the page ranges of a process that are in given categories, found by walking its page tables in
// the kernel, so a scan of the whole address space costs what the process has mapped, not what
// it reserved. Only the guard-region category (PAGE_IS_GUARD, Linux 6.14+) is used.
import { SyscallError } from './errno.js';
import { addressOf, lastErrno, libc } from './libc.js';

/** struct pm_scan_arg: 12 u64 fields */
const ARG_BYTES = 96;
/** struct page_region: start, end, categories */
const REGION_BYTES = 24;
/** _IOWR('f', 16, struct pm_scan_arg) */
const PAGEMAP_SCAN = (3 * 2 ** 30) + (ARG_BYTES << 16) + (0x66 << 8) + 16;
const PAGE_IS_GUARD = 1n << 8n;
const EINVAL = 22;
const ENOTTY = 25;
const REGIONS_PER_CALL = 256;

export interface AddressRange {
  start: number;
  end: number;
}

/**
 * The guard regions (MADV_GUARD_INSTALL) in [start, end) of the process whose pagemap is open on
 * `fd`, in address order, adjacent ones merged; null when this kernel cannot report them (no
 * PAGEMAP_SCAN, or no PAGE_IS_GUARD category: both refused with ENOTTY or EINVAL).
 */
export function scanGuards(fd: number, start: number, end: number): AddressRange[] | null {
  const arg = Buffer.alloc(ARG_BYTES);
  const vec = Buffer.alloc(REGIONS_PER_CALL * REGION_BYTES);
  const out: AddressRange[] = [];
  let from = start;
  while (from < end) {
    arg.fill(0);
    arg.writeBigUInt64LE(BigInt(ARG_BYTES), 0); // size
    arg.writeBigUInt64LE(BigInt(from), 16); // start
    arg.writeBigUInt64LE(BigInt(end), 24); // end
    arg.writeBigUInt64LE(addressOf(vec), 40); // vec
    arg.writeBigUInt64LE(BigInt(REGIONS_PER_CALL), 48); // vec_len
    arg.writeBigUInt64LE(PAGE_IS_GUARD, 72); // category_mask
    arg.writeBigUInt64LE(PAGE_IS_GUARD, 88); // return_mask
    const n = libc.ioctlBuf(fd, PAGEMAP_SCAN, arg);
    if (n < 0) {
      const errno = lastErrno();
      if (errno === EINVAL || errno === ENOTTY) return null;
      throw new SyscallError(`ioctl(PAGEMAP_SCAN, 0x${from.toString(16)}-0x${end.toString(16)})`, errno);
    }
    for (let i = 0; i < n; i++) {
      const s = Number(vec.readBigUInt64LE(i * REGION_BYTES));
      const e = Number(vec.readBigUInt64LE(i * REGION_BYTES + 8));
      const last = out[out.length - 1];
      if (last && last.end === s) last.end = e;
      else out.push({ start: s, end: e });
    }
    // The kernel stops early when vec is full; walk_end says where to go on from.
    const walked = Number(arg.readBigUInt64LE(32));
    if (walked <= from) throw new Error(`ioctl(PAGEMAP_SCAN) made no progress at 0x${from.toString(16)}`);
    from = walked;
  }
  return out;
}
