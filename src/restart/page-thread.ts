// A second thread writing a large image's pages into the husk beside cr's main thread: on this VM
// most of a restart's page phase is the husk's fresh pages faulted in as they are written (about
// 130 of 170 ms for 300 MiB), and faults in two threads run on two cores (the kernel takes them
// under per-mapping locks). A node worker takes about 30 ms to start: a restore starts it before
// reading the image (readyPageThread), which hides that.
// The image's page data is read once, in windows of whole runs (about 1 MiB, in file order) that
// the two threads take from a common counter, each into its own slot of a ring both share: read
// (checked unchanged after each read, as PagesInFile checks its windows), then its runs written
// (the thread through /proc/PID/mem, the main thread as writePages does). For an image whose
// checksum was left to this pass (PagesInFile.deferred: the restore read only its records), the
// main thread hashes the windows in file order as they are filled, between its own: the bytes
// hashed are the bytes written, read once, while in the cache. A slot is filled again only once
// hashed. The main thread waits for the thread's last window before the phase ends, and reports
// what failed there as its own. A thread that dies outside JavaScript (out of memory) is found by
// its entry in /proc going (thread-watch.ts) when a wait for it times out: the windows it took are
// never filled, and the restore fails as for a failed write.
import { closeSync, fstatSync, readSync, statSync } from 'node:fs';
import type { MessagePort } from 'node:worker_threads';
import { readyShared } from '../../bridge/memory.js';
import type { PagesInFile } from '../image/file.js';
import { publishThread, ThreadWatch, WATCH_WORDS } from '../thread-watch.js';
import { workerThreads } from '../worker-threads.js';

// ctl's words
const NEXT = 0;
const QUIT = 1;
const FAILED = 2;
/** 0 while a started thread waits for work, 1 once given it, 2 once it gave up waiting */
const STATE = 3;
/** windows hashed (or, without a hash, done with), in order: a slot is filled again only after */
const HASHED = 4;
/** set by the main thread when it stops early: the thread takes no more windows */
const STOP = 5;
/** per slot, 1 + the index of the window last filled into it */
const FILLED = 8;
/** slots of the ring: windows read ahead of the hash, at most */
const SLOTS = 8;
/** where the thread publishes its thread id (thread-watch.ts), after FILLED's words */
const WATCH = FILLED + SLOTS;
/** bytes of a slot: a window of whole runs (a run is 1 MiB at most) and the record headers between them */
const SLOT_BYTES = (1 << 20) + (64 << 10);
/** runs further apart than this in the file (another member's records between) start a window of their own */
const MAX_GAP = 4096;
/** how long a thread started ahead (readyPageThread) waits for work before it ends */
const IDLE_MS = 10_000;

/**
 * The thread's code (node:fs and node:worker_threads only, so it needs no bundle of its own): wait
 * for its work, then fill and write windows as it takes them.
 */
const THREAD = `(() => {
const { workerData, receiveMessageOnPort } = require('node:worker_threads');
const { readSync, writeSync, fstatSync } = require('node:fs');
const { ctl, work, port } = workerData;
${publishThread('ctl', WATCH)}const until = Date.now() + ${IDLE_MS};
while (Atomics.load(ctl, ${STATE}) === 0 && Date.now() < until) Atomics.wait(ctl, ${STATE}, 0, 50);
if (Atomics.compareExchange(ctl, ${STATE}, 0, 2) === 0) {
  work.close();
  port.close();
  return;
}
const { ring, at, windows, count, jobs, image, mem, seen } = receiveMessageOnPort(work).message;
const bytes = Buffer.from(ring, at, ${SLOTS * SLOT_BYTES});
try {
  for (let k = Atomics.add(ctl, ${NEXT}, 1); k < count; k = Atomics.add(ctl, ${NEXT}, 1)) {
    // Its slot free: the window SLOTS before it hashed.
    for (let h = Atomics.load(ctl, ${HASHED}); h < k - ${SLOTS} + 1; h = Atomics.load(ctl, ${HASHED})) {
      if (Atomics.load(ctl, ${STOP}) === 1) throw new Error('stopped');
      Atomics.wait(ctl, ${HASHED}, h, 100);
    }
    const start = windows[4 * k], end = windows[4 * k + 1];
    const slot = bytes.subarray((k % ${SLOTS}) * ${SLOT_BYTES}, (k % ${SLOTS}) * ${SLOT_BYTES} + (end - start));
    let got = 0;
    while (got < slot.length) {
      const n = readSync(image, slot, got, slot.length - got, start + got);
      if (n === 0) break;
      got += n;
    }
    const st = fstatSync(image, { bigint: true });
    if (got < slot.length || Number(st.size) !== seen.size || st.mtimeNs !== seen.mtimeNs || st.ctimeNs !== seen.ctimeNs) {
      port.postMessage({ changed: true });
      Atomics.store(ctl, ${FAILED}, 1);
      break;
    }
    for (let j = windows[4 * k + 2]; j < windows[4 * k + 3]; j++) {
      if (jobs[4 * j + 3] === 0) continue;
      const at = jobs[4 * j] - start, length = jobs[4 * j + 1], addr = jobs[4 * j + 2];
      for (let done = 0; done < length; ) done += writeSync(mem, slot, at + done, length - done, addr + done);
    }
    Atomics.store(ctl, ${FILLED} + (k % ${SLOTS}), k + 1);
    Atomics.notify(ctl, ${FILLED} + (k % ${SLOTS}));
  }
} catch (err) {
  if (Atomics.load(ctl, ${STOP}) === 0) {
    port.postMessage({ message: String(err && err.message) });
    Atomics.store(ctl, ${FAILED}, 1);
  }
}
Atomics.store(ctl, ${QUIT}, 1);
Atomics.notify(ctl, ${QUIT});
Atomics.notify(ctl, ${FILLED}, 1);
work.close();
port.close();
})();
`;

/** A thread started, waiting for its work. */
class Started {
  readonly ctl = new Int32Array(new SharedArrayBuffer((WATCH + WATCH_WORDS) * 4));
  /** where its work is posted */
  readonly work: MessagePort;
  /** where it tells what failed */
  readonly port: MessagePort;

  constructor() {
    const { MessageChannel, Worker } = workerThreads();
    const toThread = new MessageChannel();
    const fromThread = new MessageChannel();
    this.work = toThread.port1;
    this.port = fromThread.port1;
    // A thread that could not start takes no window: the main thread does them all.
    new Worker(THREAD, { eval: true, workerData: { ctl: this.ctl, work: toThread.port2, port: fromThread.port2 }, transferList: [toThread.port2, fromThread.port2] })
      .on('error', () => {})
      .unref();
    this.work.unref();
    this.port.unref();
  }

  /** Give it its work; false if it gave up waiting (or was given work already). */
  give(work: object): boolean {
    this.work.postMessage(work);
    if (Atomics.compareExchange(this.ctl, STATE, 0, 1) !== 0) return false;
    Atomics.notify(this.ctl, STATE);
    return true;
  }
}

/** a thread started ahead of the pages (readyPageThread), not given work yet */
let ahead: Started | null = null;

/**
 * Start the thread a large image's pages will be written with before they come, when the file at
 * imagePath is PAGE_THREAD_MIN or larger (a node worker takes about 30 ms to start: a restore
 * starts it before it reads the image, which hides that). One not given work within IDLE_MS ends.
 */
export function readyPageThread(imagePath: string): void {
  let size = 0;
  try {
    size = statSync(imagePath).size;
  } catch {
    // what is wrong with it, reading it says
  }
  if (size >= PAGE_THREAD_MIN) ahead ??= new Started();
}

/**
 * Bytes of pages from which a restart writes them in two threads: below it, starting the second
 * (about 35 ms of CPU, 3 on the main thread) costs more than it saves. From this file size on, a
 * restore leaves an image's checksum to the pass that writes its pages (PagesInFile.deferred).
 */
export const PAGE_THREAD_MIN = 32 << 20;

/**
 * One run of the image's file, in file order: where its pages are in the file, how many bytes,
 * where they go, and whether to write them at all (a live System V segment keeps its own).
 */
export interface RunJob {
  offset: number;
  length: number;
  addr: number;
  write: boolean;
}

export class PageThread {
  private readonly ctl: Int32Array;
  private readonly port: MessagePort;
  private readonly image: number;
  private readonly seen: { size: number; mtimeNs: bigint; ctimeNs: bigint };
  private readonly ring: Buffer;
  /** per window: its file range [start, end) and its jobs [first, end) */
  private readonly windows: Float64Array;
  private readonly count: number;
  /** windows the main thread took */
  private mine = 0;
  private ended = false;
  /** whether the thread is still there (a wait for it that times out asks) */
  private readonly watch: ThreadWatch;
  /** it ended (outside JavaScript) with windows it took not done */
  private died = false;

  /**
   * Have a thread write jobs (every run of the image's file, in file order) into the memory
   * /proc/PID/mem at `mem` is of, from the image file of `pages`, the main thread writing its
   * windows' runs with `write` (run()).
   */
  constructor(
    private readonly pages: PagesInFile,
    private readonly jobs: readonly RunJob[],
    mem: number,
  ) {
    // Windows of whole runs; with a checksum left to this pass, they tile the file from its first
    // page data to its END record (the 24 bytes of record headers between runs included).
    const bounds: number[] = [];
    for (let j = 0; j < jobs.length; ) {
      const first = j;
      const last = bounds.length > 0 ? bounds[bounds.length - 3]! : -1;
      const start = last >= 0 && jobs[j]!.offset - last <= MAX_GAP ? last : jobs[j]!.offset;
      let end = jobs[j]!.offset + jobs[j]!.length;
      for (j++; j < jobs.length && jobs[j]!.offset - end <= MAX_GAP && jobs[j]!.offset + jobs[j]!.length - start <= SLOT_BYTES; j++) end = jobs[j]!.offset + jobs[j]!.length;
      if (end - start > SLOT_BYTES) throw new Error(`a page run of ${end - start} bytes: more than a slot`);
      bounds.push(start, end, first, j);
    }
    this.count = bounds.length / 4;
    this.windows = new Float64Array(new SharedArrayBuffer(Math.max(1, bounds.length) * 8));
    this.windows.set(bounds);
    const runs = new Float64Array(new SharedArrayBuffer(Math.max(1, jobs.length) * 4 * 8));
    jobs.forEach((j, i) => runs.set([j.offset, j.length, j.addr, j.write ? 1 : 0], 4 * i));
    const { shared, buffer } = readyShared(SLOTS * SLOT_BYTES);
    this.ring = buffer;
    const { fd, seen } = pages.share();
    this.image = fd;
    this.seen = seen;
    // The ring as the thread sees it: the same bytes, from the buffer's start in the shared memory.
    const work = { ring: shared, at: buffer.byteOffset, windows: this.windows, count: this.count, jobs: runs, image: fd, mem, seen };
    let thread = ahead;
    ahead = null;
    try {
      if (thread === null || !thread.give(work)) {
        thread = new Started();
        thread.give(work);
      }
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    this.ctl = thread.ctl;
    this.port = thread.port;
    this.watch = new ThreadWatch(this.ctl, WATCH);
  }

  /**
   * The main thread's part: windows taken and filled as the thread takes its own, `write` called
   * for each of their runs to write (with the run's bytes, valid until it returns), and with a
   * checksum left to this pass, every window hashed in file order into `hash`. Returns once every
   * window is done (hashed); what failed in the thread is thrown (finish()).
   */
  run(write: (job: number, data: Buffer) => void, hash?: { update(bytes: Uint8Array): void }): void {
    const ctl = this.ctl;
    const slotOf = (k: number): Buffer => {
      const at = (k % SLOTS) * SLOT_BYTES;
      return this.ring.subarray(at, at + (this.windows[4 * k + 1]! - this.windows[4 * k]!));
    };
    let hashed = 0;
    /** Hash every window filled, in order, from the first not yet hashed. */
    const pump = (): void => {
      while (hashed < this.count && Atomics.load(ctl, FILLED + (hashed % SLOTS)) === hashed + 1) {
        hash?.update(slotOf(hashed));
        Atomics.store(ctl, HASHED, ++hashed);
        Atomics.notify(ctl, HASHED);
      }
    };
    /** Wait until window `k` is hashed, hashing what is filled meanwhile. */
    const until = (k: number): void => {
      for (pump(); hashed <= k; pump()) {
        if (Atomics.load(ctl, FAILED) === 1) this.finish();
        const word = FILLED + (hashed % SLOTS);
        const now = Atomics.load(ctl, word);
        if (now !== hashed + 1 && Atomics.wait(ctl, word, now, 100) === 'timed-out' && !this.watch.alive() && Atomics.load(ctl, word) === now) {
          this.died = true;
          this.finish();
        }
      }
    };
    for (let k = Atomics.add(ctl, NEXT, 1); k < this.count; k = Atomics.add(ctl, NEXT, 1)) {
      this.mine++;
      if (k >= SLOTS) until(k - SLOTS);
      const slot = slotOf(k);
      const start = this.windows[4 * k]!;
      let got = 0;
      while (got < slot.length) {
        const n = readSync(this.image, slot, got, slot.length - got, start + got);
        if (n === 0) break;
        got += n;
      }
      const st = fstatSync(this.image, { bigint: true });
      if (got < slot.length || Number(st.size) !== this.seen.size || st.mtimeNs !== this.seen.mtimeNs || st.ctimeNs !== this.seen.ctimeNs) this.pages.changed();
      for (let j = this.windows[4 * k + 2]!; j < this.windows[4 * k + 3]!; j++) {
        const job = this.jobs[j]!;
        if (job.write) write(j, slot.subarray(job.offset - start, job.offset - start + job.length));
      }
      Atomics.store(ctl, FILLED + (k % SLOTS), k + 1);
      pump();
    }
    if (this.count > 0) until(this.count - 1);
  }

  /** Wait for the thread's last window; what failed there is thrown (a changed image as PagesInFile throws it). */
  finish(): void {
    this.end();
    if (Atomics.load(this.ctl, FAILED) === 1) {
      const message = workerThreads().receiveMessageOnPort(this.port)?.message as { changed?: boolean; message?: string } | undefined;
      if (message?.changed) this.pages.changed();
      throw new Error(`writing pages in a second thread: ${message?.message ?? 'failed'}`);
    }
    if (this.died) throw new Error('writing pages in a second thread: it ended before its work was done (out of memory?)');
  }

  /**
   * Take every window left (the thread then ends after its current one, or at once if it waits
   * for a slot) and wait for the thread if it took any (one that took none never uses the fds),
   * then close its fd of the image. Its fd of /proc/PID/mem is the caller's.
   */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    const taken = Math.min(Atomics.exchange(this.ctl, NEXT, this.count), this.count);
    if (taken > this.mine) {
      Atomics.store(this.ctl, STOP, 1);
      Atomics.notify(this.ctl, HASHED);
      while (Atomics.load(this.ctl, QUIT) === 0) {
        if (Atomics.wait(this.ctl, QUIT, 0, 100) === 'timed-out' && !this.watch.alive() && Atomics.load(this.ctl, QUIT) === 0) {
          this.died = true;
          break;
        }
      }
    }
    this.watch.close();
    closeSync(this.image);
  }
}
