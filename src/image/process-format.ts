// The whole-process image (docs/process-image.md): a magic and version, then records, each a
// type, a length and a body: HEAD (msgpack: mappings, registers, signals, mm fields, ...), FDS
// (the fd-table image of format.ts, byte for byte), PAGES (page contents, one run each, written
// as they are read from the process) and END (the checksum of every byte before it: checksum.ts). The writer holds
// one run of pages at a time and puts the file in place through OutputFile (or streams it to
// stdout, for -o -: openImageOutput); the reader works
// from the bytes of the file read once (file.ts), checked whole before anything uses them.
import { readSync } from 'node:fs';
import { badInput, CrError } from '../errors.js';
import { KINDS } from '../kinds/registry.js';
import { O_LARGEFILE, O_RDWR, type DeletedDesc, type MemfdDesc } from '../model/fdtable.js';
import { REG_NAMES, type Regs } from '../../bridge/registers.js';
import { checkHeadMeaning, checkSharedObjects } from './process-check.js';
import { type MappingKind, type MappedFile, type SysvSegment, GUARDED_KINDS, type Mapping, type MmFields, type Signals, type ProcessHead, type ProcessAttributes, type FileLock, type PosixTimer, type SysvIpcObject, type ThreadState } from './process-head.js';
import type { ProcessIdentity } from '../proc/process.js';
import { openImageOutput, type Output } from '../output-file.js';
import { decodeImage, encodeImageParts, type Image } from './format.js';
import { PAGE_READ_BYTES, pageReadBuffer, readImageFile, type ImageFile, type PagesInFile, type PageStreamer } from './file.js';
import { packMsgpack, unpackBounded } from './msgpack.js';
import { CHECKSUM_BYTES, ImageChecksum, imageChecksum } from './checksum.js';
import { liveMembers, treeProblem, type TreeMember } from '../model/tree.js';
import { checkTreeTable, parseTreeMembers } from './tree-check.js';

export const PROCESS_MAGIC = Buffer.from('cr-proc\n', 'latin1');
/**
 * 19: each System V semaphore set and message queue of `sysvIpc` has what restart makes it again
 * from (`saved`: owner, mode, values; limit and messages).
 * 18: END holds XXH3-64 (8 bytes), not SHA-256 (32): the same protection against damage for a
 * fourteenth of the CPU time (checksum.ts).
 * 17: a mapping may be an aio ring (kind aio), made again by io_setup.
 * 16: the head's `cwdRemoved`: the working directory had been removed (its permission bits).
 * 15: the head lists the System V semaphore sets and message queues the process used (sysvIpc).
 * 14: the head's `unheld`: memfds and deleted files mapped shared with no fd of them left.
 * 13: a mapping may be shared-unnamed: a memfd or deleted file mapped shared, named by its
 * description in the fd table (`unnamed`).
 * 12: the FDS record is an fd-table image of format version 3 (kinds' bytes as bin).
 * 11: a shared object's number (`shm.object`) is the image's: members of a tree mapping the same
 * number share that object; its pages are in the image once.
 * 10: a shared object may be a System V segment (`shm.sysv`).
 * 9: each head lists the process's threads besides the leader (threads). 8: a tree of processes:
 * a TREE record first, the one FDS record for all of them, then a HEAD and its PAGES per live
 * member. 7: the FDS record is an fd-table image of format version 2 (shared
 * objects, per-process fds). 6: the head carries the POSIX timers. 5: mappings of shared anonymous
 * memory (shm). 4: the file locks. 3: the process's attributes (prctl state, oom_score_adj,
 * scheduling, ...) and its cgroups. 2: mappings carry their guard regions. An older image is
 * refused like any other.
 */
export const PROCESS_FORMAT_VERSION = 19;
export const PAGE_SIZE = 4096;

export const RECORD_HEAD = 1;
export const RECORD_FDS = 2;
export const RECORD_PAGES = 3;
export const RECORD_END = 4;
export const RECORD_TREE = 5;

const FILE_HEADER = 16; // magic, u32 version, u32 zero
const RECORD_HEADER = 8; // u32 type, u32 body length
const PAGES_HEADER = 16; // u32 mapping index, u32 zero, u64 address
/** Largest run of pages in one PAGES record: what reader and writer hold at once. */
export const MAX_RUN_BYTES = 1 << 20;
const MAX_HEAD_BYTES = 64 << 20;

/** Bytes streamProcessFile first makes room for, of what it keeps of a file (all but page data). */
const KEPT_FIRST = 16 << 20;

/**
 * Bytes of pages a writer copies and holds while the FDS record waits (fdsLater); pages held where
 * the caller copied them (pagesAhead's `keep`: a small process's all) do not count.
 */
const HOLD_BYTES = 1 << 20;

/**
 * Streams a process image to an unnamed file and puts it in place at commit(): tree(), fds() (or fdsLater()), then
 * for each live member of the tree in its order head() and its pages(), then commit().
 */
export class ProcessImageWriter {
  /**
   * The checksum as the bytes go out, each batch hashed while it is in the cache (checksum.ts:
   * 15 ms for 300 MiB, less than reading the file back after the thaw would cost).
   */
  private readonly hash = new ImageChecksum();
  private bytes = 0;
  private state: 'tree' | 'fds' | 'head' | 'pages' | 'done' = 'tree';
  /** pids of the live members whose HEAD is still to come, in order */
  private heads: number[] = [];
  /**
   * While the FDS record waits (fdsLater): it and the records after it, each made when written (a
   * record's encoding then too), pages as copies (the page copy reuses its buffer); null once written.
   */
  private held: Array<() => Buffer[]> | null = null;
  private heldBytes = 0;
  /** the pages held are the page copy's own memory, left unchanged until commit (pagesAhead): not copied */
  private heldViews = false;

  /** where the next pages are copied, with a thread writing them (writeBehind) */
  private nextSlot: (() => Buffer) | null = null;

  private constructor(private readonly out: Output) {}

  /** Refuses an existing path (unless force), a directory or a device, or a directory it cannot write, before anything is written. */
  static create(path: string, opts: { force: boolean; sync?: boolean }): ProcessImageWriter {
    return new ProcessImageWriter(openImageOutput(path, { force: opts.force, sync: opts.sync ?? false }));
  }

  tree(members: TreeMember[]): void {
    this.expect(['tree'], 'fds');
    const problem = treeProblem(members);
    if (problem !== null) throw new Error(`process image: not a tree: ${problem}`);
    // The file header goes with the tree, not at create(): a dump refused before it (to stdout,
    // -o -) sends its reader nothing at all.
    const header = Buffer.alloc(FILE_HEADER);
    PROCESS_MAGIC.copy(header, 0);
    header.writeUInt32LE(PROCESS_FORMAT_VERSION, 8);
    this.put([header]);
    this.heads = liveMembers(members).map((m) => m.pid);
    this.record(RECORD_TREE, [packMsgpack({ formatVersion: PROCESS_FORMAT_VERSION, members })]);
  }

  fds(image: Image): void {
    this.expect(['fds'], 'head');
    this.record(RECORD_FDS, encodeImageParts(image));
  }

  /**
   * fds(), encoded and written later: at commit(), which a dump calls once its processes run
   * again, so encoding the fd table (and the heads after it) is no part of their downtime. The
   * records after it are held in memory meanwhile, their pages up to HOLD_BYTES; past that
   * everything is written at once, so memory stays bounded whatever the image's size.
   */
  fdsLater(image: Image): void {
    this.expect(['fds'], 'head');
    this.held = [() => this.recordParts(RECORD_FDS, encodeImageParts(image))];
  }

  /** The next live member's head: its pages follow. */
  head(head: ProcessHead): void {
    this.expect(['head', 'pages'], 'pages');
    const pid = this.heads.shift();
    if (pid !== head.process.pid) throw new Error(`process image: the head of ${head.process.pid} where the tree has ${pid ?? 'no more live members'}`);
    const make = (): Buffer[] => this.recordParts(RECORD_HEAD, [packMsgpack({ formatVersion: PROCESS_FORMAT_VERSION, ...head })]);
    if (this.held) this.held.push(make);
    else this.put(make());
  }

  /**
   * Told, before a member's pages, how many bytes of them may come at most, and how many the
   * caller can keep where it copies them, unchanged until commit (`keep`). While records are
   * held (fdsLater), pages that fit in `keep` are held too, as the caller's memory (no copy):
   * returns true, and they are written after the thaw with the rest. Otherwise, when held
   * records would outgrow HOLD_BYTES with them (or pages are held as the caller's memory, which
   * it reuses now), what is held is written now and these pages as they come: holding them
   * would copy them into fresh memory, which on this VM costs more (2-18 microseconds a page)
   * than encoding the held records early, and they would be written while the processes are
   * frozen all the same.
   */
  pagesAhead(bytes: number, keep = 0): boolean {
    if (this.state !== 'pages') throw new Error(`process image: pages before a head`);
    if (!this.held) return false;
    if (bytes <= keep) return (this.heldViews = true);
    if (this.heldViews || this.heldBytes + bytes > HOLD_BYTES) this.writeHeld();
    return false;
  }

  /**
   * From now on the image is written by a thread (write-thread.ts) while the caller goes on, where
   * it goes to a file: the pages from `count` slots of `slotBytes`, each given by nextPageSlot().
   */
  writeBehind(count: number, slotBytes: number): void {
    this.nextSlot = this.out.writeBehind?.(count, slotBytes) ?? null;
  }

  /** a thread writes the pages (writeBehind): they are copied into nextPageSlot()'s slots */
  get writesBehind(): boolean {
    return this.nextSlot !== null;
  }

  /**
   * Where the caller copies the next pages to write (writeBehind): a slot no longer being written,
   * left unchanged until the next call. Null without a thread.
   */
  nextPageSlot(): Buffer | null {
    return this.nextSlot?.() ?? null;
  }

  /** One run of whole pages of mapping `mapping` of the member whose head came last, starting at addr. */
  pages(mapping: number, addr: number, data: Buffer): void {
    this.pageRuns([{ mapping, addr, data }]);
  }

  /** Runs of pages (as pages() takes them), in order, written with one writev. */
  pageRuns(runs: ReadonlyArray<RunToWrite>): void {
    if (this.state !== 'pages') throw new Error(`process image: pages before a head`);
    const parts: Buffer[] = [];
    for (const run of runs) {
      const { data } = run;
      const header = pagesHeader(run);
      const copy = this.held !== null && !this.heldViews;
      parts.push(header, copy ? Buffer.from(data) : data);
      if (copy) this.heldBytes += data.length;
    }
    if (parts.length === 0) return;
    if (!this.held) return this.put(parts);
    this.held.push(() => parts);
    if (this.heldBytes > HOLD_BYTES) this.writeHeld();
  }

  /**
   * pageRuns() of runs made when they are written (`make`, called once): at commit, after the
   * thaw, when the pages are held as the caller's memory (pagesAhead), so that what judges them
   * (which pages are all zero) is no part of the processes' downtime; else now.
   */
  pageRunsLater(make: () => ReadonlyArray<RunToWrite>): void {
    if (this.state !== 'pages') throw new Error(`process image: pages before a head`);
    const held = this.held;
    if (held === null || !this.heldViews) return this.pageRuns(make());
    held.push(() => {
      const runs = make();
      // Held as views, so not counted against HOLD_BYTES: put() writes them as they are.
      const parts: Buffer[] = [];
      for (const run of runs) parts.push(pagesHeader(run), run.data);
      return parts;
    });
  }

  /** Seal (END record with the checksum), fsync if asked and put in place. Returns the image size. */
  commit(): number {
    if (this.state !== 'pages' || this.heads.length > 0) throw new Error('process image: commit before every live member\'s head');
    this.writeHeld();
    this.record(RECORD_END, [this.hash.digest()]);
    this.state = 'done';
    this.out.commit();
    return this.bytes;
  }

  /** Drop what was written (nothing is left anywhere). */
  abort(): void {
    this.state = 'done';
    this.held = null;
    this.out.abort();
  }

  private expect(now: Array<ProcessImageWriter['state']>, next: ProcessImageWriter['state']): void {
    if (!now.includes(this.state)) throw new Error(`process image: ${next === 'fds' ? 'tree' : next === 'head' ? 'fds' : 'head'} record out of order`);
    this.state = next;
  }

  private record(type: number, parts: Buffer[]): void {
    this.put(this.recordParts(type, parts));
  }

  private recordParts(type: number, parts: Buffer[]): Buffer[] {
    const header = Buffer.alloc(RECORD_HEADER);
    header.writeUInt32LE(type, 0);
    header.writeUInt32LE(parts.reduce((n, p) => n + p.length, 0), 4);
    return [header, ...parts];
  }

  /** Write what fdsLater held back, in order. */
  private writeHeld(): void {
    const held = this.held;
    if (!held) return;
    this.held = null;
    this.heldBytes = 0;
    this.heldViews = false;
    for (const make of held) this.put(make());
  }

  private put(parts: Buffer[]): void {
    this.out.write(parts);
    for (const p of parts) this.hash.update(p);
    this.bytes += parts.reduce((n, p) => n + p.length, 0);
  }
}

/** The record header and PAGES header of a run of whole pages (1..MAX_RUN_BYTES of them). */
function pagesHeader({ mapping, addr, data }: RunToWrite): Buffer {
  if (data.length === 0 || data.length % PAGE_SIZE !== 0 || data.length > MAX_RUN_BYTES) {
    throw new Error(`process image: a run of ${data.length} bytes is not 1..${MAX_RUN_BYTES / PAGE_SIZE} whole pages`);
  }
  const header = Buffer.alloc(RECORD_HEADER + PAGES_HEADER);
  header.writeUInt32LE(RECORD_PAGES, 0);
  header.writeUInt32LE(PAGES_HEADER + data.length, 4);
  header.writeUInt32LE(mapping, RECORD_HEADER);
  header.writeBigUInt64LE(BigInt(addr), RECORD_HEADER + 8);
  return header;
}

export interface PageRun {
  mapping: number;
  addr: number;
  /**
   * The pages' bytes. For an image whose pages stayed in its file (ImageFile.pages), read from it
   * on each use into a buffer the next run's read reuses: use them before reading the next run's.
   */
  readonly data: Buffer;
  /** data.length, without reading them */
  readonly length: number;
  /** for pages left in the image's file: the file, and where in it they are */
  readonly inFile?: { pages: PagesInFile; offset: number };
}

/**
 * streamProcessFile: a process image in a file read once, in 1 MiB reads, every byte hashed and
 * the checksum checked (from `deferFrom` bytes on, both left to the pass that writes the pages:
 * below), everything kept but the page data of PAGES records (their headers stay, the record
 * lengths unchanged), which ProcessImage reads from the file again when they are used. Peak
 * memory is then independent of the image's size. Anything not well formed (or a checksum that
 * does not match) gives null: the file is then read whole, and ProcessImage says what is wrong.
 */
export const streamProcessFile: PageStreamer = (fd, size, deferFrom) => {
  // The page data goes through the buffer the pages are read through again later (file.ts).
  const chunk = pageReadBuffer(PAGE_READ_BYTES, streamProcessFile).subarray(0, PAGE_READ_BYTES);
  const hash = new ImageChecksum();
  // A file of deferFrom bytes or more (a restore's: it reads the page data again as it writes it)
  // has its page data left unread here: every byte up to the first of it is hashed, the rest is
  // left to that pass (DeferredCheck, restart/page-thread.ts), which must then read nothing but
  // page runs and their headers up to an END record at the file's end. An image with anything
  // else after its first run (a tree's next member) is read again, whole, as any other.
  const defer = deferFrom !== undefined && size >= deferFrom;
  let skipping = false;
  // What is kept is read straight into one buffer, in file order, not into a buffer per record
  // joined at the end: on this VM each fresh page costs about 18 µs the first time it is
  // written (a dense fd table's 650 KB, 3-4 ms), and joining paid that twice. Sized for the
  // whole file up to KEPT_FIRST (the pages it skips are never touched, so never made), doubled
  // if the kept bytes are more.
  let kept = Buffer.allocUnsafe(Math.min(size, KEPT_FIRST));
  let keptBytes = 0;
  const offsets: number[] = [];
  let pos = 0;
  const readAt = (buf: Buffer): boolean => {
    let got = 0;
    while (got < buf.length) {
      const n = readSync(fd, buf, got, buf.length - got, pos + got);
      if (n === 0) return false;
      got += n;
    }
    pos += buf.length;
    return true;
  };
  /** The next n bytes of the file, kept (a view valid until the next keep). */
  const keep = (n: number): Buffer | null => {
    if (size - pos < n) return null;
    if (keptBytes + n > kept.length) {
      let grown = Math.max(kept.length * 2, 4096);
      while (grown < keptBytes + n) grown *= 2;
      const next = Buffer.allocUnsafe(grown);
      kept.copy(next, 0, 0, keptBytes);
      kept = next;
    }
    const b = kept.subarray(keptBytes, keptBytes + n);
    if (!readAt(b)) return null;
    keptBytes += n;
    return b;
  };
  const header = keep(FILE_HEADER);
  if (header === null || !isProcessImage(header)) return null;
  hash.update(header);
  for (;;) {
    const rh = keep(RECORD_HEADER);
    if (rh === null) return null;
    const type = rh.readUInt32LE(0);
    const length = rh.readUInt32LE(4);
    if (type === RECORD_END) {
      const at = pos - RECORD_HEADER;
      const body = keep(length);
      if (body === null || pos !== size) return null;
      if (skipping) return { bytes: kept.subarray(0, keptBytes), offsets, deferred: { expected: Buffer.from(body), from: offsets[0]!, length: at, hash } };
      if (!hash.digest().equals(body)) return null;
      return { bytes: kept.subarray(0, keptBytes), offsets };
    }
    const isRun = type === RECORD_PAGES && length > PAGES_HEADER && length <= MAX_RUN_BYTES + PAGES_HEADER;
    // Past the first run nothing more is hashed here: anything but another run (a PAGES record of
    // no pages or of too many among them too) has the file read again, whole.
    if (skipping && !isRun) return streamProcessFile(fd, size);
    if (!skipping) hash.update(rh);
    if (isRun) {
      const run = keep(PAGES_HEADER);
      if (run === null) return null;
      if (!skipping) hash.update(run);
      offsets.push(pos);
      const data = length - PAGES_HEADER;
      if (size - pos < data) return null;
      skipping ||= defer;
      if (skipping) {
        pos += data;
        continue;
      }
      for (let left = data; left > 0; ) {
        const part = chunk.subarray(0, Math.min(left, chunk.length));
        if (!readAt(part)) return null;
        hash.update(part);
        left -= part.length;
      }
      continue;
    }
    if (length > MAX_HEAD_BYTES) return null;
    const body = keep(length);
    if (body === null) return null;
    hash.update(body);
  }
};

/** A run of pages for the writer: its bytes in memory. */
export type RunToWrite = Pick<PageRun, 'mapping' | 'addr' | 'data'>;

/** A PAGES record as read: its body, or for pages left in the file its run header and where its pages are. */
interface RunRecord {
  body: Buffer;
  inFile?: { offset: number; length: number };
}

/** Whether bytes start with the process-image magic. */
export const isProcessImage = (bytes: Uint8Array): boolean =>
  bytes.length >= PROCESS_MAGIC.length && PROCESS_MAGIC.equals(bytes.subarray(0, PROCESS_MAGIC.length));

/** One live member of the tree: its head and its page runs (views into the file's bytes). */
export interface MemberImage {
  pid: number;
  head: ProcessHead;
  /** the member's process in the tree */
  member: TreeMember;
  /** bytes of page contents the image holds for it */
  pageBytes: number;
  runs: PageRun[];
}

/**
 * A whole-process image, checked whole when it is made: the file header, the tree, the fd table and
 * every live member's head (every field), every page run against its member's mappings, and the
 * checksum at the end. The page runs are then views into the file's bytes.
 */
export class ProcessImage {
  /** every process of the tree, root first, parents before their children (pre-order) */
  readonly tree: TreeMember[];
  /** the live members (those with memory), in tree order */
  readonly members: MemberImage[];
  /** the one fd table of the tree: its processes are the live members, in the same order */
  readonly fdImage: Image;
  /** the root's head */
  readonly head: ProcessHead;
  /** bytes of page contents the image holds, all members */
  readonly pageBytes: number;

  constructor(readonly file: ImageFile) {
    const bytes = file.bytes;
    // Pages left in the file (streamProcessFile): each PAGES record here is its headers only.
    const inFile = file.pages;
    let runs = 0;
    let offset = 0;
    const take = (n: number, what: string): Buffer => {
      if (bytes.length - offset < n) this.bad(`truncated in ${what}`);
      const out = bytes.subarray(offset, offset + n);
      offset += n;
      return out;
    };
    const record = (): { type: number; body: Buffer; at: number; inFile?: { offset: number; length: number } } => {
      const at = offset;
      const header = take(RECORD_HEADER, 'a record header');
      const type = header.readUInt32LE(0);
      const length = header.readUInt32LE(4);
      const limit = type === RECORD_PAGES ? MAX_RUN_BYTES + PAGES_HEADER : MAX_HEAD_BYTES;
      if (length > limit) this.bad(`a record of ${length} bytes`);
      if (type === RECORD_PAGES && inFile) {
        return { type, body: take(PAGES_HEADER, 'a record'), at, inFile: { offset: inFile.offsets[runs++]!, length: length - PAGES_HEADER } };
      }
      return { type, body: take(length, 'a record'), at };
    };
    const header = take(FILE_HEADER, 'the file header');
    if (!isProcessImage(header)) this.bad('wrong magic');
    const version = header.readUInt32LE(8);
    if (version !== PROCESS_FORMAT_VERSION) {
      const older = version < PROCESS_FORMAT_VERSION ? ': it is from an older cr, dump the process again' : '';
      badInput(`${file.path}: process image format version ${version} is not supported (this cr reads version ${PROCESS_FORMAT_VERSION})${older}`);
    }
    const tree = record();
    if (tree.type !== RECORD_TREE) this.bad('the first record is not the tree');
    const fds = record();
    if (fds.type !== RECORD_FDS) this.bad('the second record is not the fd table');
    // Every record up to END, its checksum verified before any of them is decoded.
    const groups: Array<{ head: Buffer; pages: RunRecord[] }> = [];
    for (;;) {
      const rec = record();
      if (rec.type === RECORD_END) {
        // Pages left in the file were hashed, and the checksum checked, as it was read.
        if (rec.body.length !== CHECKSUM_BYTES || (!inFile && !imageChecksum(bytes.subarray(0, rec.at)).equals(rec.body))) {
          this.bad('checksum mismatch (the image is corrupt)');
        }
        if (offset !== bytes.length) this.bad('bytes after the end record');
        break;
      }
      if (rec.type === RECORD_HEAD) groups.push({ head: rec.body, pages: [] });
      else if (rec.type === RECORD_PAGES && groups.length > 0) groups[groups.length - 1]!.pages.push(rec);
      else this.bad(rec.type === RECORD_PAGES ? 'a page run before any head' : `unexpected record type ${rec.type} after the fd table`);
    }
    const decodedTree = unpackBounded(tree.body);
    if ('problem' in decodedTree) this.bad(`tree: ${decodedTree.problem}`);
    this.tree = checkTree((decodedTree as { value: unknown }).value, (what) => this.bad(what));
    const live = liveMembers(this.tree);
    if (groups.length !== live.length) this.bad(`${groups.length} process heads for the ${live.length} live processes of the tree`);
    const heads = groups.map((g, i) => {
      const member = live[i]!;
      const where = live.length === 1 ? 'head' : `head of ${member.pid}`;
      const bad = (what: string): never => this.bad(live.length === 1 ? what : `${what} (process ${member.pid})`);
      const decoded = unpackBounded(g.head);
      if ('problem' in decoded) bad(`${where}: ${decoded.problem}`);
      const head = checkHead((decoded as { value: unknown }).value, bad);
      checkHeadMeaning(head, bad);
      if (head.process.pid !== member.pid) this.bad(`head ${i} is of process ${head.process.pid}, where the tree has ${member.pid}`);
      if (head.process.comm !== member.comm) this.bad(`the head of ${member.pid} names ${JSON.stringify(head.process.comm)}, the tree ${JSON.stringify(member.comm)}`);
      return head;
    });
    checkSharedObjects(heads, (what) => this.bad(what));
    this.fdImage = decodeImage(fds.body, `${file.path} (fd table)`);
    const procs = this.fdImage.table.processes;
    checkTreeTable(this.tree, this.fdImage.table, (what) => this.bad(what));
    this.members = groups.map((g, i) => {
      const head = heads[i]!;
      const tableFds = procs[i]!.fds;
      for (const [j, l] of head.locks.entries()) {
        if (!tableFds.some((f) => f.fd === l.fd)) this.bad(`head.locks[${j}] of ${head.process.pid} is on fd ${l.fd}, which the fd table does not have`);
      }
      // A shared mapping of an unnamed file is mapped again from an fd of the process: the
      // description must be a memfd or deleted file the process holds.
      for (const u of head.unheld) if (this.fdImage.table.descs.some((d) => d.id === u.id)) this.bad(`head.unheld of ${head.process.pid}: description ${u.id} is one of the fd table's too`);
      if (new Set(head.unheld.map((u) => u.id)).size !== head.unheld.length) this.bad(`head.unheld of ${head.process.pid}: an id twice`);
      const mapped = new Set<number>();
      for (const [j, m] of head.mappings.entries()) {
        if (!m.unnamed) continue;
        mapped.add(m.unnamed.desc);
        if (head.unheld.some((u) => u.id === m.unnamed!.desc)) continue;
        const desc = this.fdImage.table.descs.find((d) => d.id === m.unnamed!.desc);
        if (!desc || (desc.kind !== 'memfd' && desc.kind !== 'deleted')) this.bad(`head.mappings[${j}] of ${head.process.pid} maps description ${m.unnamed.desc}, which is no memfd or deleted file of the fd table or the head`);
        if (!tableFds.some((f) => f.desc === m.unnamed!.desc)) this.bad(`head.mappings[${j}] of ${head.process.pid} maps description ${m.unnamed.desc}, which the process holds at no fd`);
      }
      for (const u of head.unheld) if (!mapped.has(u.id)) this.bad(`head.unheld of ${head.process.pid}: description ${u.id} is mapped by none of its mappings`);
      const runs = this.checkRuns(head, g.pages);
      return { pid: head.process.pid, head, member: live[i]!, runs, pageBytes: runs.reduce((n, r) => n + r.length, 0) };
    });
    this.head = this.members[0]!.head;
    this.pageBytes = this.members.reduce((n, m) => n + m.pageBytes, 0);
  }

  /** path read (once, its pages left in the file: streamProcessFile) and checked. */
  static read(path: string): ProcessImage {
    return new ProcessImage(readImageFile(path, streamProcessFile));
  }

  /**
   * The one process of an image of one, for what restores one process at a time; a tree (more
   * than one member, zombies included) is refused in one line.
   */
  single(): MemberImage {
    if (this.tree.length > 1) badInput(`${this.file.path}: the image holds a tree of ${this.tree.length} processes, not one process`);
    return this.members[0]!;
  }

  /** The root's page runs in file order, each within its mapping. */
  pages(): Iterable<PageRun> {
    return this.members[0]!.runs;
  }

  private checkRuns(head: ProcessHead, records: RunRecord[]): PageRun[] {
    let lastEnd = 0;
    let guardsOf = -1;
    let nextGuard = 0;
    const pagesInFile = this.file.pages;
    return records.map(({ body, inFile }) => {
      const length = inFile ? inFile.length : body.length - PAGES_HEADER;
      if (body.length < PAGES_HEADER) this.bad('a page run without pages');
      if (length < PAGE_SIZE) this.bad('a page run without pages');
      const mapping = body.readUInt32LE(0);
      const addr = Number(body.readBigUInt64LE(8));
      const m = head.mappings[mapping];
      if (!m) this.bad(`a page run names mapping ${mapping}, which the head does not have`);
      if (m.kind !== 'anon' && m.kind !== 'file' && m.kind !== 'shared-anon') this.bad(`a page run for a ${m.kind} mapping`);
      if (length % PAGE_SIZE !== 0 || addr % PAGE_SIZE !== 0 || addr < m.start || addr + length > m.end) {
        this.bad(`a page run at 0x${addr.toString(16)} (${length} bytes) outside its mapping`);
      }
      if (addr < lastEnd) this.bad('page runs out of order');
      // Runs and guards both come in address order: one cursor walks the mapping's guards.
      if (mapping !== guardsOf) {
        guardsOf = mapping;
        nextGuard = 0;
      }
      while (nextGuard < m.guards.length && m.guards[nextGuard]!.end <= addr) nextGuard++;
      if ((m.guards[nextGuard]?.start ?? Infinity) < addr + length) this.bad(`a page run at 0x${addr.toString(16)} covers a guard region`);
      lastEnd = addr + length;
      if (inFile && pagesInFile) {
        const at = inFile.offset;
        return { mapping, addr, length, inFile: { pages: pagesInFile, offset: at }, get data(): Buffer { return pagesInFile.read(at, length); } };
      }
      const data = body.subarray(PAGES_HEADER);
      return { mapping, addr, length, data };
    });
  }

  private bad(what: string): never {
    badInput(`${this.file.path}: not a valid cr process image: ${what}`);
  }
}

// ---- validation of the head: every field checked, nothing unknown accepted ----

type Bad = (what: string) => never;

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && Object.getPrototypeOf(v) === Object.prototype;
const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function fields(v: unknown, keys: string[], where: string, bad: Bad): Record<string, unknown> {
  if (!isRecord(v)) bad(`${where} is not a map`);
  const obj = v as Record<string, unknown>;
  for (const k of keys) if (!(k in obj)) bad(`${where} has no ${k}`);
  for (const k of Object.keys(obj)) if (!keys.includes(k)) bad(`${where} has an unknown field ${JSON.stringify(k)}`);
  return obj;
}

function uint(v: unknown, where: string, bad: Bad): number {
  if (!isUint(v)) bad(`${where} is not a non-negative integer`);
  return v as number;
}

function int(v: unknown, where: string, bad: Bad): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) bad(`${where} is not an integer`);
  return v as number;
}

function bool(v: unknown, where: string, bad: Bad): boolean {
  if (typeof v !== 'boolean') bad(`${where} is not a boolean`);
  return v as boolean;
}

const LOCK_KINDS: Array<FileLock['kind']> = ['flock', 'posix', 'ofd', 'lease'];
const TIMER_NOTIFY: Array<PosixTimer['notify']> = ['signal', 'thread', 'none'];

const ATTRIBUTE_KEYS: Array<keyof ProcessAttributes> = [
  'oomScoreAdj', 'pdeathsig', 'dumpable', 'keepCaps', 'timerSlackNs', 'thpDisable', 'childSubreaper', 'mceKill', 'tsc', 'mdwe', 'memoryMerge', 'cpuid',
  'coredumpFilter', 'nice', 'schedPolicy', 'schedPriority', 'ioprio', 'affinity', 'loginuid',
];

function checkAttributes(v: unknown, bad: Bad): ProcessAttributes {
  const a = fields(v, ATTRIBUTE_KEYS, 'head.attributes', bad);
  const w = (k: string): string => `head.attributes.${k}`;
  return {
    oomScoreAdj: int(a.oomScoreAdj, w('oomScoreAdj'), bad),
    pdeathsig: uint(a.pdeathsig, w('pdeathsig'), bad),
    dumpable: uint(a.dumpable, w('dumpable'), bad),
    keepCaps: bool(a.keepCaps, w('keepCaps'), bad),
    timerSlackNs: uint(a.timerSlackNs, w('timerSlackNs'), bad),
    thpDisable: uint(a.thpDisable, w('thpDisable'), bad),
    childSubreaper: bool(a.childSubreaper, w('childSubreaper'), bad),
    mceKill: uint(a.mceKill, w('mceKill'), bad),
    tsc: uint(a.tsc, w('tsc'), bad),
    mdwe: uint(a.mdwe, w('mdwe'), bad),
    memoryMerge: bool(a.memoryMerge, w('memoryMerge'), bad),
    cpuid: uint(a.cpuid, w('cpuid'), bad),
    coredumpFilter: uint(a.coredumpFilter, w('coredumpFilter'), bad),
    nice: int(a.nice, w('nice'), bad),
    schedPolicy: uint(a.schedPolicy, w('schedPolicy'), bad),
    schedPriority: uint(a.schedPriority, w('schedPriority'), bad),
    ioprio: uint(a.ioprio, w('ioprio'), bad),
    affinity: bin(a.affinity, w('affinity'), bad),
    loginuid: uint(a.loginuid, w('loginuid'), bad),
  };
}

function str(v: unknown, where: string, bad: Bad): string {
  if (typeof v !== 'string') bad(`${where} is not a string`);
  return v as string;
}

function bin(v: unknown, where: string, bad: Bad, length?: number): Buffer {
  if (!(v instanceof Uint8Array)) bad(`${where} is not binary`);
  const b = Buffer.from(v as Uint8Array);
  if (length !== undefined && b.length !== length) bad(`${where} is not ${length} bytes`);
  return b;
}

function list<T>(v: unknown, where: string, bad: Bad, item: (x: unknown, where: string) => T): T[] {
  if (!Array.isArray(v)) bad(`${where} is not a list`);
  return (v as unknown[]).map((x, i) => item(x, `${where}[${i}]`));
}

const MAPPING_KINDS: MappingKind[] = ['anon', 'file', 'shared-file', 'shared-anon', 'shared-unnamed', 'aio', 'vdso', 'vvar', 'vvar_vclock'];
/** The largest aio ring io_setup makes (fs/aio.c: at most 0x10000000 bytes of events). */
const AIO_RING_MAX = 0x10000000 + PAGE_SIZE;
export const REGS_BYTES = REG_NAMES.length * 8;
export const SIGACTION_BYTES = 32;

const INT32_MAX = 0x7fffffff;

function checkSysv(v: unknown, where: string, bad: Bad): SysvSegment {
  const s = fields(v, ['key', 'id', 'size', 'mode', 'uid', 'gid', 'removed'], where, bad);
  const key = s.key;
  if (!Number.isInteger(key) || (key as number) < -0x80000000 || (key as number) > INT32_MAX) bad(`${where}.key is not a 32-bit key`);
  const id = uint(s.id, `${where}.id`, bad);
  if (id > INT32_MAX) bad(`${where}.id is not a segment id`);
  const size = uint(s.size, `${where}.size`, bad);
  if (size === 0) bad(`${where}.size is 0`);
  const mode = uint(s.mode, `${where}.mode`, bad);
  if (mode > 0o777) bad(`${where}.mode is not permission bits`);
  if (typeof s.removed !== 'boolean') bad(`${where}.removed is not a boolean`);
  if (s.removed && key !== 0) bad(`${where}: a segment marked for removal has key 0`);
  return { key: key as number, id, size, mode, uid: uint(s.uid, `${where}.uid`, bad), gid: uint(s.gid, `${where}.gid`, bad), removed: s.removed as boolean };
}

function checkMapping(v: unknown, where: string, bad: Bad): Mapping {
  const m = fields(v, ['start', 'end', 'prot', 'kind', 'name', 'file', 'shm', 'unnamed', 'vmflags', 'guards'], where, bad);
  const start = uint(m.start, `${where}.start`, bad);
  const end = uint(m.end, `${where}.end`, bad);
  if (start % PAGE_SIZE || end % PAGE_SIZE || start >= end) bad(`${where} is not a page-aligned range`);
  const prot = uint(m.prot, `${where}.prot`, bad);
  if (prot > 7) bad(`${where}.prot is not PROT_READ|PROT_WRITE|PROT_EXEC bits`);
  const kind = m.kind as MappingKind;
  if (!MAPPING_KINDS.includes(kind)) bad(`${where}.kind ${JSON.stringify(m.kind)} is not one of ${MAPPING_KINDS.join(', ')}`);
  const name = str(m.name, `${where}.name`, bad);
  let file: MappedFile | null = null;
  if (m.file !== null) {
    const f = fields(m.file, ['path', 'offset', 'dev', 'ino', 'size', 'mtimeMs'], `${where}.file`, bad);
    const path = str(f.path, `${where}.file.path`, bad);
    if (!path.startsWith('/') || path.includes('\0')) bad(`${where}.file.path is not an absolute path`);
    if (typeof f.mtimeMs !== 'number' || !Number.isFinite(f.mtimeMs)) bad(`${where}.file.mtimeMs is not a number`);
    file = {
      path,
      offset: uint(f.offset, `${where}.file.offset`, bad),
      dev: uint(f.dev, `${where}.file.dev`, bad),
      ino: uint(f.ino, `${where}.file.ino`, bad),
      size: uint(f.size, `${where}.file.size`, bad),
      mtimeMs: f.mtimeMs as number,
    };
    if (file.offset % PAGE_SIZE) bad(`${where}.file.offset is not page-aligned`);
  }
  if ((kind === 'file' || kind === 'shared-file') !== (file !== null)) bad(`${where}: a ${kind} mapping ${file ? 'with' : 'without'} a file`);
  let shm: Mapping['shm'] = null;
  if (m.shm !== null) {
    const o = fields(m.shm, ['object', 'offset', 'sysv'], `${where}.shm`, bad);
    shm = { object: uint(o.object, `${where}.shm.object`, bad), offset: uint(o.offset, `${where}.shm.offset`, bad), sysv: o.sysv === null ? null : checkSysv(o.sysv, `${where}.shm.sysv`, bad) };
    if (shm.offset % PAGE_SIZE) bad(`${where}.shm.offset is not page-aligned`);
    if (shm.sysv && shm.offset + (end - start) > Math.ceil(shm.sysv.size / PAGE_SIZE) * PAGE_SIZE) bad(`${where} reaches past the end of its System V segment`);
  }
  if ((kind === 'shared-anon') !== (shm !== null)) bad(`${where}: a ${kind} mapping ${shm ? 'with' : 'without'} a shared object`);
  let unnamed: Mapping['unnamed'] = null;
  if (m.unnamed !== null) {
    const u = fields(m.unnamed, ['desc', 'offset'], `${where}.unnamed`, bad);
    unnamed = { desc: uint(u.desc, `${where}.unnamed.desc`, bad), offset: uint(u.offset, `${where}.unnamed.offset`, bad) };
    if (unnamed.offset % PAGE_SIZE) bad(`${where}.unnamed.offset is not page-aligned`);
  }
  if ((kind === 'shared-unnamed') !== (unnamed !== null)) bad(`${where}: a ${kind} mapping ${unnamed ? 'with' : 'without'} an unnamed file`);
  if (kind === 'aio' && end - start > AIO_RING_MAX) bad(`${where}: an aio ring larger than io_setup makes`);
  const vmflags = list(m.vmflags, `${where}.vmflags`, bad, (x, w) => {
    const s = str(x, w, bad);
    if (!/^[a-z0-9]{2}$/.test(s)) bad(`${w} is not a VmFlags code`);
    return s;
  });
  let last = start;
  const guards = list(m.guards, `${where}.guards`, bad, (x, w) => {
    const g = fields(x, ['start', 'end'], w, bad);
    const range = { start: uint(g.start, `${w}.start`, bad), end: uint(g.end, `${w}.end`, bad) };
    if (range.start % PAGE_SIZE || range.end % PAGE_SIZE || range.start >= range.end) bad(`${w} is not a page-aligned range`);
    // Adjacent ranges would be one: the writer merges them, so a reader needs no second form.
    if (range.start < last || (range.start === last && last !== start) || range.end > end) bad(`${w} is not inside ${where} after the guard before it`);
    last = range.end;
    return range;
  });
  if (guards.length > 0 && !GUARDED_KINDS.includes(kind)) bad(`${where}: a ${kind} mapping with guard regions`);
  return { start, end, prot, kind, name, file, shm, unnamed, vmflags, guards };
}

const MM_KEYS: Array<keyof MmFields> = ['startCode', 'endCode', 'startData', 'endData', 'startBrk', 'brk', 'startStack', 'argStart', 'argEnd', 'envStart', 'envEnd'];

/** A memfd or deleted file of head.unheld: a description as the fd table has them, O_RDWR at 0, judged by its kind's parse. */
function checkUnheld(v: unknown, where: string, bad: Bad): MemfdDesc | DeletedDesc {
  if (!isRecord(v)) bad(`${where} is not a map`);
  const o = v as Record<string, unknown>;
  if (o.kind !== 'memfd' && o.kind !== 'deleted') bad(`${where}.kind is not memfd or deleted`);
  const kind = KINDS[o.kind as 'memfd' | 'deleted'];
  const d = fields(v, ['id', 'kind', 'flags', ...kind.fields], where, bad);
  if ((d.flags as number) !== (O_RDWR | O_LARGEFILE) || d.offset !== 0) bad(`${where}: an unheld file is O_RDWR|O_LARGEFILE at offset 0`);
  try {
    return kind.parse(d, where, uint(d.id, `${where}.id`, bad), O_RDWR | O_LARGEFILE) as MemfdDesc | DeletedDesc;
  } catch (err) {
    if (err instanceof CrError) bad(err.message);
    throw err;
  }
}

function checkHead(v: unknown, bad: Bad): ProcessHead {
  const h = fields(
    v,
    ['formatVersion', 'toolVersion', 'kernel', 'arch', 'pageSize', 'process', 'exe', 'cwd', 'cwdRemoved', 'umask', 'personality', 'creds', 'rlimits', 'mm', 'auxv',
      'mappings', 'regs', 'xstate', 'signals', 'rseq', 'robustList', 'tidAddress', 'itimers', 'noNewPrivs', 'attributes', 'posixTimers', 'locks', 'sysvIpc', 'cgroup', 'vdsoSha256', 'threads', 'unheld'],
    'head',
    bad,
  );
  if (h.formatVersion !== PROCESS_FORMAT_VERSION) bad('head.formatVersion does not match the file header');
  if (h.arch !== 'x86_64') bad(`head.arch ${JSON.stringify(h.arch)}: this cr restores x86_64 processes only`);
  if (h.pageSize !== PAGE_SIZE) bad(`head.pageSize is not ${PAGE_SIZE}`);
  const p = fields(h.process, ['pid', 'comm', 'cmdline', 'uid'], 'head.process', bad);
  const proc: ProcessIdentity = {
    pid: uint(p.pid, 'head.process.pid', bad),
    comm: str(p.comm, 'head.process.comm', bad),
    cmdline: list(p.cmdline, 'head.process.cmdline', bad, (x, w) => str(x, w, bad)),
    uid: uint(p.uid, 'head.process.uid', bad),
  };
  let exe: ProcessHead['exe'] = null;
  if (h.exe !== null) {
    const e = fields(h.exe, ['path', 'dev', 'ino'], 'head.exe', bad);
    exe = { path: str(e.path, 'head.exe.path', bad), dev: uint(e.dev, 'head.exe.dev', bad), ino: uint(e.ino, 'head.exe.ino', bad) };
  }
  const c = fields(h.creds, ['uid', 'gid', 'groups'], 'head.creds', bad);
  const ids = (x: unknown, w: string): number[] => {
    const l = list(x, w, bad, (y, wy) => uint(y, wy, bad));
    if (l.length !== 4) bad(`${w} is not 4 ids (real, effective, saved, filesystem)`);
    return l;
  };
  const creds = { uid: ids(c.uid, 'head.creds.uid'), gid: ids(c.gid, 'head.creds.gid'), groups: list(c.groups, 'head.creds.groups', bad, (y, w) => uint(y, w, bad)) };
  const limitValue = (x: unknown, w: string): number | null => (x === null ? null : uint(x, w, bad));
  const rlimits = list(h.rlimits, 'head.rlimits', bad, (x, w) => {
    const r = fields(x, ['resource', 'soft', 'hard'], w, bad);
    return { resource: uint(r.resource, `${w}.resource`, bad), soft: limitValue(r.soft, `${w}.soft`), hard: limitValue(r.hard, `${w}.hard`) };
  });
  const mmIn = fields(h.mm, MM_KEYS, 'head.mm', bad);
  const mm = {} as MmFields;
  for (const k of MM_KEYS) mm[k] = uint(mmIn[k], `head.mm.${k}`, bad);
  const mappings = list(h.mappings, 'head.mappings', bad, (x, w) => checkMapping(x, w, bad));
  for (let i = 1; i < mappings.length; i++) if (mappings[i]!.start < mappings[i - 1]!.end) bad(`head.mappings[${i}] overlaps or precedes the one before`);
  const s = fields(h.signals, ['actions', 'blocked', 'pending', 'altstack'], 'head.signals', bad);
  const signals: Signals = {
    actions: bin(s.actions, 'head.signals.actions', bad, 64 * SIGACTION_BYTES),
    blocked: bin(s.blocked, 'head.signals.blocked', bad, 8),
    pending: list(s.pending, 'head.signals.pending', bad, (x, w) => {
      const q = fields(x, ['shared', 'info'], w, bad);
      if (typeof q.shared !== 'boolean') bad(`${w}.shared is not a boolean`);
      return { shared: q.shared as boolean, info: bin(q.info, `${w}.info`, bad, 128) };
    }),
    altstack: checkAltstack(s.altstack, 'head.signals.altstack', bad),
  };
  const rseq = checkRseq(h.rseq, 'head.rseq', bad);
  const robustList = checkRobustList(h.robustList, 'head.robustList', bad);
  const itimers = list(h.itimers, 'head.itimers', bad, (x, w) => {
    const t = fields(x, ['intervalUs', 'valueUs'], w, bad);
    return { intervalUs: uint(t.intervalUs, `${w}.intervalUs`, bad), valueUs: uint(t.valueUs, `${w}.valueUs`, bad) };
  });
  if (itimers.length !== 3) bad('head.itimers is not 3 timers (real, virtual, prof)');
  if (typeof h.noNewPrivs !== 'boolean') bad('head.noNewPrivs is not a boolean');
  return {
    toolVersion: str(h.toolVersion, 'head.toolVersion', bad),
    kernel: str(h.kernel, 'head.kernel', bad),
    arch: 'x86_64',
    pageSize: PAGE_SIZE,
    process: proc,
    exe,
    cwd: str(h.cwd, 'head.cwd', bad),
    cwdRemoved: h.cwdRemoved === null ? null : uint(h.cwdRemoved, 'head.cwdRemoved', bad),
    umask: uint(h.umask, 'head.umask', bad),
    personality: uint(h.personality, 'head.personality', bad),
    creds,
    rlimits,
    mm,
    auxv: bin(h.auxv, 'head.auxv', bad),
    mappings,
    regs: bin(h.regs, 'head.regs', bad, REGS_BYTES),
    xstate: bin(h.xstate, 'head.xstate', bad),
    signals,
    rseq,
    robustList,
    tidAddress: uint(h.tidAddress, 'head.tidAddress', bad),
    itimers,
    noNewPrivs: h.noNewPrivs as boolean,
    attributes: checkAttributes(h.attributes, bad),
    unheld: list(h.unheld, 'head.unheld', bad, (x, w) => checkUnheld(x, w, bad)),
    posixTimers: list(h.posixTimers, 'head.posixTimers', bad, (x, w) => {
      const t = fields(x, ['id', 'clock', 'notify', 'signal', 'value', 'interval', 'left', 'overrun'], w, bad);
      if (!TIMER_NOTIFY.includes(t.notify as PosixTimer['notify'])) bad(`${w}.notify ${JSON.stringify(t.notify)} is not one of ${TIMER_NOTIFY.join(', ')}`);
      const pair = (v: unknown, k: string): [number, number] => {
        const p = list(v, `${w}.${k}`, bad, (y, wy) => uint(y, wy, bad));
        if (p.length !== 2) bad(`${w}.${k} is not [seconds, nanoseconds]`);
        return [p[0]!, p[1]!];
      };
      return {
        id: uint(t.id, `${w}.id`, bad),
        clock: uint(t.clock, `${w}.clock`, bad),
        notify: t.notify as PosixTimer['notify'],
        signal: uint(t.signal, `${w}.signal`, bad),
        value: bin(t.value, `${w}.value`, bad, 8),
        interval: pair(t.interval, 'interval'),
        left: pair(t.left, 'left'),
        overrun: uint(t.overrun, `${w}.overrun`, bad),
      };
    }),
    locks: list(h.locks, 'head.locks', bad, (x, w) => {
      const l = fields(x, ['fd', 'kind', 'write', 'start', 'end'], w, bad);
      if (!LOCK_KINDS.includes(l.kind as FileLock['kind'])) bad(`${w}.kind ${JSON.stringify(l.kind)} is not one of ${LOCK_KINDS.join(', ')}`);
      return { fd: uint(l.fd, `${w}.fd`, bad), kind: l.kind as FileLock['kind'], write: bool(l.write, `${w}.write`, bad), start: uint(l.start, `${w}.start`, bad), end: l.end === null ? null : uint(l.end, `${w}.end`, bad) };
    }),
    sysvIpc: list(h.sysvIpc, 'head.sysvIpc', bad, (x, w) => checkSysvIpc(x, w, bad)),
    cgroup: str(h.cgroup, 'head.cgroup', bad),
    vdsoSha256: h.vdsoSha256 === null ? null : bin(h.vdsoSha256, 'head.vdsoSha256', bad, 32),
    threads: list(h.threads, 'head.threads', bad, (x, w) => checkThread(x, w, bad)),
  };
}

/** The most bytes of messages the image holds for one queue (src/checkpoint/sysv-ipc.ts refuses more). */
export const MAX_QUEUE_BYTES = 16 << 20;
/** The most semaphores in a set (the kernel's SEMMSL bound). */
const MAX_NSEMS = 32000;

function checkSysvIpc(v: unknown, w: string, bad: Bad): SysvIpcObject {
  const o = fields(v, ['kind', 'key', 'id', 'saved'], w, bad);
  if (o.kind !== 'sem' && o.kind !== 'msg') bad(`${w}.kind ${JSON.stringify(o.kind)} is not sem or msg`);
  if (!Number.isInteger(o.key) || (o.key as number) < -0x80000000 || (o.key as number) > INT32_MAX) bad(`${w}.key is not a 32-bit key`);
  const id = uint(o.id, `${w}.id`, bad);
  if (id > INT32_MAX) bad(`${w}.id is not an id`);
  const key = o.key as number;
  if (o.saved === null) return { kind: o.kind as 'sem' | 'msg', key, id, saved: null };
  const kindFields = o.kind === 'sem' ? ['values'] : ['qbytes', 'messages'];
  const s = fields(o.saved, ['mode', 'uid', 'gid', 'cuid', 'cgid', ...kindFields], `${w}.saved`, bad);
  const mode = uint(s.mode, `${w}.saved.mode`, bad);
  if (mode > 0o777) bad(`${w}.saved.mode is not permission bits`);
  const owner = { mode, uid: uint(s.uid, `${w}.saved.uid`, bad), gid: uint(s.gid, `${w}.saved.gid`, bad), cuid: uint(s.cuid, `${w}.saved.cuid`, bad), cgid: uint(s.cgid, `${w}.saved.cgid`, bad) };
  if (o.kind === 'sem') {
    const values = list(s.values, `${w}.saved.values`, bad, (x, wx) => {
      const n = uint(x, wx, bad);
      if (n > 32767) bad(`${wx} is above a semaphore's largest value (32767)`);
      return n;
    });
    if (values.length === 0 || values.length > MAX_NSEMS) bad(`${w}.saved.values: a set has 1 to ${MAX_NSEMS} semaphores`);
    return { kind: 'sem', key, id, saved: { ...owner, values } };
  }
  let bytes = 0;
  const messages = list(s.messages, `${w}.saved.messages`, bad, (x, wx) => {
    const m = fields(x, ['type', 'text'], wx, bad);
    const type = uint(m.type, `${wx}.type`, bad);
    if (type === 0) bad(`${wx}.type is 0: a message's type is positive`);
    const text = bin(m.text, `${wx}.text`, bad);
    bytes += text.length;
    return { type, text };
  });
  if (bytes > MAX_QUEUE_BYTES) bad(`${w}.saved.messages: more than ${MAX_QUEUE_BYTES} bytes`);
  const qbytes = uint(s.qbytes, `${w}.saved.qbytes`, bad);
  if (qbytes > INT32_MAX) bad(`${w}.saved.qbytes is above the kernel's bound`);
  return { kind: 'msg', key, id, saved: { ...owner, qbytes, messages } };
}

function checkAltstack(v: unknown, where: string, bad: Bad): Signals['altstack'] {
  const a = fields(v, ['sp', 'flags', 'size'], where, bad);
  return { sp: uint(a.sp, `${where}.sp`, bad), flags: uint(a.flags, `${where}.flags`, bad), size: uint(a.size, `${where}.size`, bad) };
}

function checkRseq(v: unknown, where: string, bad: Bad): ProcessHead['rseq'] {
  if (v === null) return null;
  const r = fields(v, ['pointer', 'size', 'signature'], where, bad);
  return { pointer: uint(r.pointer, `${where}.pointer`, bad), size: uint(r.size, `${where}.size`, bad), signature: uint(r.signature, `${where}.signature`, bad) };
}

function checkRobustList(v: unknown, where: string, bad: Bad): ProcessHead['robustList'] {
  if (v === null) return null;
  const r = fields(v, ['head', 'len'], where, bad);
  return { head: uint(r.head, `${where}.head`, bad), len: uint(r.len, `${where}.len`, bad) };
}

function checkThread(v: unknown, where: string, bad: Bad): ThreadState {
  const t = fields(v, ['tid', 'comm', 'regs', 'xstate', 'blocked', 'pending', 'altstack', 'rseq', 'robustList', 'tidAddress'], where, bad);
  return {
    tid: uint(t.tid, `${where}.tid`, bad),
    comm: str(t.comm, `${where}.comm`, bad),
    regs: bin(t.regs, `${where}.regs`, bad, REGS_BYTES),
    xstate: bin(t.xstate, `${where}.xstate`, bad),
    blocked: bin(t.blocked, `${where}.blocked`, bad, 8),
    pending: list(t.pending, `${where}.pending`, bad, (x, w) => bin(x, w, bad, 128)),
    altstack: checkAltstack(t.altstack, `${where}.altstack`, bad),
    rseq: checkRseq(t.rseq, `${where}.rseq`, bad),
    robustList: checkRobustList(t.robustList, `${where}.robustList`, bad),
    tidAddress: uint(t.tidAddress, `${where}.tidAddress`, bad),
  };
}

// ---- validation of the tree: every field checked, then the tree's rules (tree.ts) ----

function checkTree(v: unknown, bad: Bad): TreeMember[] {
  const t = fields(v, ['formatVersion', 'members'], 'tree', bad);
  if (t.formatVersion !== PROCESS_FORMAT_VERSION) bad('tree.formatVersion does not match the file header');
  return parseTreeMembers(t.members, 'tree.members', bad);
}

// ---- registers: the head keeps struct user_regs_struct as raw bytes ----

/** struct user_regs_struct from the bridge's named registers. */
export function encodeRegs(regs: Regs): Buffer {
  const buf = Buffer.alloc(REGS_BYTES);
  REG_NAMES.forEach((name, i) => buf.writeBigInt64LE(BigInt.asIntN(64, regs[name]), i * 8));
  return buf;
}

export function decodeRegs(buf: Buffer): Regs {
  const regs = {} as Regs;
  REG_NAMES.forEach((name, i) => {
    regs[name] = buf.readBigInt64LE(i * 8);
  });
  return regs;
}
