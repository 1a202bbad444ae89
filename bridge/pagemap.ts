// The PAGEMAP_SCAN ioctl on /proc/PID/pagemap (Linux 6.7+, Documentation/admin-guide/mm/pagemap.rst):
// the page ranges of a process that are in given categories, found by walking its page tables in
// the kernel, so a scan costs what the process has mapped, not what it reserved, and gives ranges
// rather than one entry per page. CRIU finds the pages it dumps the same way (criu/pagemap-cache.c).
import { SyscallError } from './errno.js';
import { addressOf, lastErrno, libc } from './libc.js';

/** struct pm_scan_arg: 12 u64 fields */
const ARG_BYTES = 96;
/** struct page_region: start, end, categories */
const REGION_BYTES = 24;
/** _IOWR('f', 16, struct pm_scan_arg) */
const PAGEMAP_SCAN = (3 * 2 ** 30) + (ARG_BYTES << 16) + (0x66 << 8) + 16;
const EINVAL = 22;
const ENOTTY = 25;
const REGIONS_PER_CALL = 256;

// Page categories (include/uapi/linux/fs.h)
/** a page cache page (of a file, or of shared anonymous memory): for a private file mapping, not copied on write */
export const PAGE_IS_FILE = 1 << 2;
export const PAGE_IS_PRESENT = 1 << 3;
/** also a page-table marker that is no page (a guard region's), which the kernel keeps as a swap entry */
export const PAGE_IS_SWAPPED = 1 << 4;
/** a guard region's page (MADV_GUARD_INSTALL; the category since Linux 6.14) */
export const PAGE_IS_GUARD = 1 << 8;

export interface AddressRange {
  start: number;
  end: number;
}

/**
 * Which pages a scan reports: a page's categories, those in `inverted` flipped, must include all
 * of `required` and, if `anyOf` is not 0, one of `anyOf`.
 */
export interface PageQuery {
  inverted: number;
  required: number;
  anyOf: number;
}

const arg = Buffer.alloc(ARG_BYTES);
const vec = Buffer.alloc(REGIONS_PER_CALL * REGION_BYTES);

/**
 * The pages of [start, end) that `query` asks for, of the process whose pagemap is open on `fd`,
 * as ranges in address order, adjacent ones merged; null when this kernel cannot scan for them (no PAGEMAP_SCAN, or a category
 * it does not know: both refused with ENOTTY or EINVAL).
 */
export function scanPages(fd: number, start: number, end: number, query: PageQuery): AddressRange[] | null {
  const out: AddressRange[] = [];
  let from = start;
  while (from < end) {
    arg.fill(0);
    arg.writeBigUInt64LE(BigInt(ARG_BYTES), 0); // size
    arg.writeBigUInt64LE(BigInt(from), 16); // start
    arg.writeBigUInt64LE(BigInt(end), 24); // end
    arg.writeBigUInt64LE(addressOf(vec), 40); // vec
    arg.writeBigUInt64LE(BigInt(REGIONS_PER_CALL), 48); // vec_len
    arg.writeBigUInt64LE(BigInt(query.inverted), 64); // category_inverted
    arg.writeBigUInt64LE(BigInt(query.required), 72); // category_mask
    arg.writeBigUInt64LE(BigInt(query.anyOf), 80); // category_anyof_mask
    // Regions end where the returned categories change: those asked about, merged below.
    arg.writeBigUInt64LE(BigInt(query.required | query.anyOf), 88); // return_mask
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

/**
 * The guard regions (MADV_GUARD_INSTALL) in [start, end), in address order, adjacent ones merged;
 * null when this kernel cannot report them.
 */
export const scanGuards = (fd: number, start: number, end: number): AddressRange[] | null =>
  scanPages(fd, start, end, { inverted: 0, required: PAGE_IS_GUARD, anyOf: 0 });
