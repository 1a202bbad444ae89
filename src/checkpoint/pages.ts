// Copying a frozen process's pages into the image, streamed: /proc/PID/pagemap says which pages
// exist (its PAGEMAP_SCAN ioctl, as ranges found in the kernel; else an entry per page),
// process_vm_readv copies them in batches of 1 MiB (one call, many ranges; the pages of a mapping
// the process cannot read itself through /proc/PID/mem, which reads whatever the protection), and
// each batch goes to the image writer in one writev before the next is read. Saved: anonymous
// pages the process has (never-touched ones read back as zeroes anyway, and all-zero pages are
// skipped for the same reason), and the pages of private file mappings that were copied on
// write, and the pages of shared anonymous memory the object holds (mincore says which, whatever
// the page tables show). Unchanged file pages are re-mapped from the file at restart and not
// saved. Guard regions (guards.ts) are never read: reading one fails with EIO, and restart
// installs them again rather than writing anything there.
import { closeSync, openSync, readSync } from 'node:fs';
import { CrError, EXIT_BAD_INPUT } from '../errors.js';
import { copyRanges, MAX_RANGES, readyMemory } from '../../bridge/memory.js';
import { PAGE_IS_FILE, PAGE_IS_PRESENT, PAGE_IS_SWAPPED, scanPages, type AddressRange, type PageQuery } from '../../bridge/pagemap.js';
import { MAX_RUN_BYTES, PAGE_SIZE, type ProcessImageWriter, type RunToWrite } from '../image/process-format.js';
import { PROT_READ } from '../inject/syscalls.js';
import type { Mapping } from '../image/process-head.js';
import type { PagePolicy } from './maps.js';
import { printable } from '../printable.js';
import type { OnProgress } from '../progress.js';

// pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst), in the entry's high 32 bits
const PRESENT = 1 << 31;
/** also set for a guard page (its page-table marker is a swap-type entry), which guards.ts knows of */
const SWAPPED = 1 << 30;
/** file page or shared anonymous: for a private file mapping, a page not copied on write */
const FILE_PAGE = 1 << 29;
const WINDOW_PAGES = 4096;
const ZERO = Buffer.alloc(PAGE_SIZE);

export interface PageStats {
  /** pages written to the image */
  saved: number;
  /** anonymous pages present but all zero, left out */
  zero: number;
}

/**
 * Whether the image must carry a page, from its pagemap entry's high word: a page the process has
 * (in memory or swapped) that is not the page cache's, or of shared anonymous memory any it has.
 */
function mustSave(kind: Mapping['kind'], high: number): boolean {
  if (!(high & (PRESENT | SWAPPED))) return false;
  return kind === 'shared-anon' || !(high & FILE_PAGE);
}

const hex = (n: number): string => n.toString(16);

/**
 * Save the pages of each mapping its policy asks for (maps.ts), leaving out its guard regions.
 * `guardsKnown` is false on a kernel that cannot report guard regions: a page that cannot be read
 * may then be one. Returns what was saved, counted as the pages are written: for pages the writer
 * holds (pagesAhead), at its commit.
 */
export function savePages(
  pid: number,
  mappings: Mapping[],
  policies: PagePolicy[],
  writer: ProcessImageWriter,
  guardsKnown: boolean,
  /** per mapping of policy 'resident', mincore's vector: a page of the shared object in memory */
  resident: Map<number, Buffer> = new Map(),
  progress?: { onProgress: OnProgress; total: number },
): PageStats {
  const stats: PageStats = { saved: 0, zero: 0 };
  let moved = 0;
  const pagemap = openSync(`/proc/${pid}/pagemap`, 'r');
  let mem = -1;
  /** where the pages are copied: the hold's next part (writer.pagesAhead), else the batch buffer */
  let data = batchBuffer();
  /** each batch copied into the next slot of a thread writing them (writer.nextPageSlot) */
  let slotted = false;
  /** the runs to copy into `data`, back to back, before it is written out */
  const batch: Array<{ index: number; m: Mapping; addr: number; at: number; len: number }> = [];
  let used = 0;
  /** /proc/PID/mem, opened the first time a page needs it */
  const memFd = (): number => (mem >= 0 ? mem : (mem = openSync(`/proc/${pid}/mem`, 'r')));
  try {
    // Copy the batch: the runs of readable mappings with process_vm_readv, as many as one call
    // takes; whatever it could not reach (a mapping without PROT_READ, a page past the end of
    // its file) through /proc/PID/mem, which reads whatever the protection, page by page where
    // a page fails. Then each run's records, all-zero anonymous pages left out, in one writev.
    const flush = (): void => {
      if (batch.length === 0) return;
      const direct = batch.filter((r) => (r.m.prot & PROT_READ) !== 0);
      const done = new Set<(typeof batch)[number]>();
      for (let i = 0; i < direct.length; i += MAX_RANGES) {
        const group = direct.slice(i, i + MAX_RANGES);
        let n = copyRanges(pid, group.map((r) => ({ addr: r.addr, data: data.subarray(r.at, r.at + r.len) })), false);
        for (const r of group) {
          if (n < r.len) break;
          n -= r.len;
          done.add(r);
        }
      }
      for (const r of batch) {
        if (done.has(r)) continue;
        const unreadable = readRun(memFd(), data.subarray(r.at, r.at + r.len), r.len / PAGE_SIZE, r.addr);
        for (const { page, code } of unreadable) {
          // A page past the end of its file (the process would get SIGBUS) reads as zeroes after
          // the restart too: for a mapping saved whole, leave it out.
          if (policies[r.index] === 'all') continue;
          const why = guardsKnown ? 'cr cannot carry it' : 'a guard region (MADV_GUARD_INSTALL) this kernel cannot report, or memory cr cannot carry';
          throw new CrError(`mapping ${hex(r.m.start)}-${hex(r.m.end)} ${printable(r.m.name) || '(anonymous)'}: the page at ${hex(page)} cannot be read (${code}): ${why}`, EXIT_BAD_INPUT);
        }
      }
      // Each run's records, all-zero pages of anonymous memory left out: for held pages, judged
      // when they are written (after the thaw), from the same bytes.
      const runs = batch.slice();
      const source = data;
      writer.pageRunsLater(() => {
        const records: RunToWrite[] = [];
        for (const r of runs) {
          const pages = r.len / PAGE_SIZE;
          if (r.m.kind !== 'anon' && r.m.kind !== 'shared-anon') {
            records.push({ mapping: r.index, addr: r.addr, data: source.subarray(r.at, r.at + r.len) });
            stats.saved += pages;
            continue;
          }
          // A zero page of anonymous memory, shared or not, is what restart gets for free.
          let from = -1;
          for (let p = 0; p <= pages; p++) {
            const at = r.at + p * PAGE_SIZE;
            // Most pages that hold data have a byte set among their first two: those are told
            // without a call into C (0.4 against 10 ms per 300 MiB of random bytes).
            const zero = p < pages && source[at] === 0 && source[at + 1] === 0 && source.compare(ZERO, 0, PAGE_SIZE, at, at + PAGE_SIZE) === 0;
            if (p < pages && !zero) {
              if (from < 0) from = p;
              continue;
            }
            if (zero) stats.zero++;
            if (from >= 0) {
              records.push({ mapping: r.index, addr: r.addr + from * PAGE_SIZE, data: source.subarray(r.at + from * PAGE_SIZE, at) });
              stats.saved += p - from;
              from = -1;
            }
          }
        }
        return records;
      });
      moved += used;
      progress?.onProgress(moved, progress.total);
      batch.length = 0;
      used = 0;
    };
    const add = (index: number, m: Mapping, addr: number, pages: number): void => {
      const len = pages * PAGE_SIZE;
      if (used + len > data.length) flush();
      if (slotted && used === 0) data = writer.nextPageSlot()!;
      batch.push({ index, m, addr, at: used, len });
      used += len;
    };
    const mapped = new MappedPages(pagemap, pid, { start: mappings[0]?.start ?? 0, end: mappings[mappings.length - 1]?.end ?? 0 });
    // What each mapping's policy asks for, all of it known before a page is copied: the writer is
    // told how much may come (pagesAhead), so that it holds no pages it would write anyway.
    const planned = mappings.map((m, index): AddressRange[] => {
      const policy = policies[index]!;
      switch (policy) {
        case 'none':
          return [];
        case 'all':
          return [{ start: m.start, end: m.end }];
        case 'changed':
          return mapped.of(m);
        case 'resident': {
          // Whatever the object holds in memory (mincore), and whatever this mapping has mapped.
          const vector = resident.get(index);
          const held: AddressRange[] = [];
          if (vector) appendRuns(held, m.start, vector.length, (i) => (vector[i]! & 1) === 1);
          return union(held, mapped.of(m));
        }
        default: {
          const never: never = policy;
          throw new Error(`page policy ${String(never)}`);
        }
      }
    });
    // Pages the writer holds until the thaw stay where they were copied: the hold's next part,
    // which takes them all; else one batch buffer, written out before it is filled again.
    const ahead = planned.reduce((n, regions) => regions.reduce((k, r) => k + (r.end - r.start), n), 0);
    const hold = holdArea();
    if (writer.pagesAhead(ahead, hold.length - holdUsed) === true) {
      data = hold.subarray(holdUsed, holdUsed + ahead);
      holdUsed += ahead;
    } else {
      holdUsed = 0;
      // With a thread writing (readyPageBatch), each batch is copied into a slot of its own, and
      // the next one copied while it is written.
      slotted = writer.writesBehind;
    }
    mappings.forEach((m, index) => {
      let guard = 0;
      for (const r of planned[index]!) {
        // Guard regions (in address order, as the regions are) are left out.
        for (let from = r.start; from < r.end; ) {
          while (guard < m.guards.length && m.guards[guard]!.end <= from) guard++;
          const g = m.guards[guard];
          if (g && g.start <= from) {
            from = g.end;
            continue;
          }
          const to = Math.min(r.end, g ? g.start : r.end);
          for (let at = from; at < to; at += MAX_RUN_BYTES) add(index, m, at, Math.min(to - at, MAX_RUN_BYTES) / PAGE_SIZE);
          from = to;
        }
      }
    });
    flush();
  } finally {
    closeSync(pagemap);
    if (mem >= 0) closeSync(mem);
  }
  return stats;
}

/** Bytes of pages one batch copies and writes: large enough that calls are few, small enough to hold whatever the image's size. */
const BATCH_BYTES = 1 << 20;
/**
 * Most bytes of pages a dump holds to write after the thaw: a process whose memory is about this
 * or less is copied here whole while frozen and written once it runs again. Memory stays bounded
 * whatever the image's size.
 */
const HOLD_MAX = 8 << 20;
/**
 * The page copy's memory, made once per cr and reused by every member and dump: its first
 * BATCH_BYTES are the batch buffer; all of it is the hold, up to HOLD_MAX.
 */
let area: Buffer | null = null;
/** the bytes of the hold that this dump's held pages take, from its start */
let holdUsed = 0;
const batchBuffer = (): Buffer => (area ??= readyMemory(BATCH_BYTES)).subarray(0, BATCH_BYTES);
const holdArea = (): Buffer => area ?? batchBuffer();

/**
 * Before the processes are frozen: make the memory their pages will be copied into, for `about`
 * bytes of them (their anonymous, shared and swapped memory): all of it and 1 MiB more when that
 * is HOLD_MAX or less, else one batch buffer, present and written before the freeze (readyMemory):
 * fresh memory written while they are frozen would be part of their downtime.
 */
export function readyPageBatch(about = 0, writer?: ProcessImageWriter): void {
  const want = about + BATCH_BYTES <= HOLD_MAX ? about + BATCH_BYTES : BATCH_BYTES;
  if (area === null || area.length < want) area = readyMemory(want);
  holdUsed = 0;
  // A large process's pages: copied while a thread writes the batch before (write-thread.ts),
  // the thread started now, so that it is ready by the time they are.
  if (about >= WRITE_BEHIND_MIN) writer?.writeBehind(WRITE_BEHIND_SLOTS, BATCH_BYTES);
}

/**
 * Memory from which a dump writes its pages from a thread (readyPageBatch): below it, starting one
 * (a few ms of CPU, on either core) costs about what overlapping the copy with the write saves.
 */
const WRITE_BEHIND_MIN = 32 << 20;
/** batches copied ahead of the thread writing them, at most */
const WRITE_BEHIND_SLOTS = 4;

/** PAGEMAP_SCAN's question for the pages a process owns: present or swapped, and no page of the page cache (of a private file mapping, those copied on write). */
const OWN_PAGES: PageQuery = { inverted: PAGE_IS_FILE, required: PAGE_IS_FILE, anyOf: PAGE_IS_PRESENT | PAGE_IS_SWAPPED };
/** the same for shared anonymous memory, whose pages are the page cache's (shmem) */
const SHARED_PAGES: PageQuery = { inverted: 0, required: 0, anyOf: PAGE_IS_PRESENT | PAGE_IS_SWAPPED };

/**
 * The pages of each mapping its page tables say the image must carry (mustSave), as ranges in
 * address order, for mappings asked about in address order. A PAGEMAP_SCAN costs about 0.1 ms
 * here whatever its range (a scan for each of the seed's 90 mappings: 5-14 ms; one for all: 0.3-2),
 * so the pages the process owns are asked for once, over the span of all its mappings, and each
 * mapping takes its part; shared anonymous memory is asked about mapping by mapping. On a kernel
 * without the ioctl (or with `scan` false) each page's pagemap entry is read and judged.
 */
export class MappedPages {
  /** the process's own pages over the span, and the first not below the mapping asked about last */
  private own: { regions: AddressRange[]; next: number } | null = null;

  constructor(
    private readonly pagemap: number,
    private readonly pid: number,
    /** from the first mapping's start to the last one's end */
    private readonly span: AddressRange,
    private scan = true,
  ) {}

  of(m: Mapping): AddressRange[] {
    if (this.scan && m.kind === 'shared-anon') {
      const found = scanPages(this.pagemap, m.start, m.end, SHARED_PAGES);
      if (found) return found;
      this.scan = false;
    }
    if (this.scan && !this.own) {
      const regions = scanPages(this.pagemap, this.span.start, this.span.end, OWN_PAGES);
      if (regions) this.own = { regions, next: 0 };
      else this.scan = false;
    }
    if (this.scan && this.own) {
      const { regions } = this.own;
      while (this.own.next < regions.length && regions[this.own.next]!.end <= m.start) this.own.next++;
      const out: AddressRange[] = [];
      for (let i = this.own.next; i < regions.length && regions[i]!.start < m.end; i++) {
        out.push({ start: Math.max(regions[i]!.start, m.start), end: Math.min(regions[i]!.end, m.end) });
      }
      return out;
    }
    const entries = (windowEntries ??= Buffer.alloc(WINDOW_PAGES * 8));
    const out: AddressRange[] = [];
    for (let addr = m.start; addr < m.end; addr += WINDOW_PAGES * PAGE_SIZE) {
      const n = Math.min(WINDOW_PAGES, (m.end - addr) / PAGE_SIZE);
      readFully(this.pagemap, entries, n * 8, (addr / PAGE_SIZE) * 8, this.pid);
      appendRuns(out, addr, n, (i) => mustSave(m.kind, entries.readUInt32LE(i * 8 + 4)));
    }
    return out;
  }
}

/** pagemap entries of a window of pages, read where PAGEMAP_SCAN is not to be had */
let windowEntries: Buffer | null = null;

/** Append to out the runs of pages i < n from addr for which take(i) holds, joined to a run out ends with. */
function appendRuns(out: AddressRange[], addr: number, n: number, take: (i: number) => boolean): void {
  for (let i = 0; i < n; i++) {
    if (!take(i)) continue;
    const page = addr + i * PAGE_SIZE;
    const last = out[out.length - 1];
    if (last && last.end === page) last.end = page + PAGE_SIZE;
    else out.push({ start: page, end: page + PAGE_SIZE });
  }
}

/** The pages in either list (each in address order), as ranges in address order. */
function union(a: AddressRange[], b: AddressRange[]): AddressRange[] {
  if (a.length === 0) return b;
  const out: AddressRange[] = [];
  for (const r of [...a, ...b].sort((x, y) => x.start - y.start)) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end) last.end = Math.max(last.end, r.end);
    else out.push({ ...r });
  }
  return out;
}

/**
 * Read a run of pages into buf. Should some page of it fail (EIO: the process could not touch it
 * either), the run is read page by page, so that one bad page costs only itself: each such page
 * reads as zeroes and is returned with its error code. A read that ends early (the process has
 * no memory any more: it died) throws.
 */
function readRun(fd: number, buf: Buffer, pages: number, position: number): Array<{ page: number; code: string }> {
  try {
    readFully(fd, buf, pages * PAGE_SIZE, position, 0);
    return [];
  } catch (err) {
    if (!isErrno(err)) throw err;
  }
  const bad: Array<{ page: number; code: string }> = [];
  for (let p = 0; p < pages; p++) {
    const at = p * PAGE_SIZE;
    try {
      readFully(fd, buf.subarray(at, at + PAGE_SIZE), PAGE_SIZE, position + at, 0);
    } catch (err) {
      if (!isErrno(err)) throw err;
      buf.fill(0, at, at + PAGE_SIZE);
      bad.push({ page: position + at, code: err.code });
    }
  }
  return bad;
}

/** An error a read(2) returned (node's fs errors carry the errno name as code). */
const isErrno = (err: unknown): err is NodeJS.ErrnoException & { code: string } =>
  err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && (err as NodeJS.ErrnoException).syscall === 'read';

function readFully(fd: number, buf: Buffer, len: number, position: number, pid: number): void {
  let got = 0;
  while (got < len) {
    const n = readSync(fd, buf, got, len - got, position + got);
    if (n === 0) throw new Error(`pid ${pid}: short read at 0x${(position + got).toString(16)}`);
    got += n;
  }
}
