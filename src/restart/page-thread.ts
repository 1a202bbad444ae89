// A second thread writing a large image's pages into the husk beside cr's main thread: on this VM
// most of a restart's page phase is the husk's fresh pages faulted in as they are written (about
// 130 of 170 ms for 300 MiB), and faults in two threads run on two cores (the kernel takes them
// under per-mapping locks). The runs are shared out one at a time from a common counter, so the
// main thread takes them all until the thread is up (a node worker takes about 30 ms to start: a
// restore starts it before reading the image, readyPageThread).
// Before its runs, the thread started ahead makes the image's checksum (hashAhead): the main thread
// then reads only the image's records, not its page data, and builds the husk while the thread
// reads and hashes the file (64 ms for 300 MiB here) and goes on to write runs; the checksum is
// checked once the pages are in (PagesInFile.verify), before the process runs.
// The thread reads each of its runs from the image file itself (its own duplicate of the fd,
// checked unchanged after each read, as PagesInFile checks its windows) and writes it through
// /proc/PID/mem; the main thread writes its own as writePages does. The main thread waits for
// the thread's last run before the phase ends, and reports what failed there as its own.
import { closeSync, statSync } from 'node:fs';
import type { MessagePort } from 'node:worker_threads';
import { dupFd } from '../../bridge/file.js';
import { xxh3ModulePath } from '../image/checksum.js';
import type { HashAhead, HashElsewhere, PagesInFile } from '../image/file.js';
import { workerThreads } from '../worker-threads.js';

// ctl's words
const NEXT = 0;
const QUIT = 1;
const FAILED = 2;
/** 0 while a started thread waits for work, 1 once given its runs, 2 once it gave up waiting, 3 once given a hash to make (and waiting for runs) */
const STATE = 3;
/** the hash: 0 none asked for, 1 asked for, 2 made (DIGEST, SEEN), 3 failed */
const HASH = 4;
/** set by the thread as it starts */
const READY = 5;
/** the hash made: its 8 bytes as two words */
const DIGEST = 6;
/** the file's size, mtime and ctime (ns) once hashed, as three int64 at byte SEEN_AT */
const SEEN_AT = 64;
const CTL_BYTES = SEEN_AT + 3 * 8;
/** a hash given to a thread not started by then is made by the main thread (a thread not started is a failure) */
const START_MS = 5000;
/** how long a thread started ahead (readyPageThread) waits for work before it ends */
const IDLE_MS = 10_000;

/**
 * The thread's code (node:fs and node:worker_threads only, so it needs no bundle of its own): wait
 * for its work (the runs, the fds), then write runs as it takes them.
 */
const THREAD = `(() => {
const { workerData, receiveMessageOnPort } = require('node:worker_threads');
const { readSync, writeSync, fstatSync } = require('node:fs');
const { ctl, work, port, xxh3 } = workerData;
Atomics.store(ctl, ${READY}, 1);
const buf = Buffer.allocUnsafe(${1 << 20});
// The hash first, if one is asked for: its bytes read in order, through buf.
const hash = () => {
  const { fd, length } = receiveMessageOnPort(work).message;
  try {
    const { Xxh3 } = require(xxh3).xxh3;
    const state = Xxh3.withSeed(0n);
    for (let pos = 0; pos < length; ) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, length - pos), pos);
      if (n === 0) break;
      state.update(n === buf.length ? buf : buf.subarray(0, n));
      pos += n;
    }
    const digest = state.digest();
    const st = fstatSync(fd, { bigint: true });
    ctl[${DIGEST}] = Number(digest & 0xffffffffn) | 0;
    ctl[${DIGEST + 1}] = Number(digest >> 32n) | 0;
    new BigInt64Array(ctl.buffer, ${SEEN_AT}, 3).set([st.size, st.mtimeNs, st.ctimeNs]);
    Atomics.store(ctl, ${HASH}, 2);
  } catch {
    Atomics.store(ctl, ${HASH}, 3);
  }
  Atomics.notify(ctl, ${HASH});
};
let until = Date.now() + ${IDLE_MS};
for (;;) {
  const state = Atomics.load(ctl, ${STATE});
  if (Atomics.load(ctl, ${HASH}) === 1) {
    hash();
    until = Date.now() + ${IDLE_MS};
    continue;
  }
  if (state === 1) break;
  if (Date.now() >= until) {
    if (Atomics.compareExchange(ctl, ${STATE}, state, 2) === state) {
      work.close();
      port.close();
      return;
    }
    continue;
  }
  Atomics.wait(ctl, ${STATE}, state, 50);
}
const { runs, count, image, mem, seen } = receiveMessageOnPort(work).message;
try {
  for (let i = Atomics.add(ctl, ${NEXT}, 1); i < count; i = Atomics.add(ctl, ${NEXT}, 1)) {
    const offset = runs[3 * i], length = runs[3 * i + 1], addr = runs[3 * i + 2];
    let got = 0;
    while (got < length) {
      const n = readSync(image, buf, got, length - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    const st = fstatSync(image, { bigint: true });
    if (got < length || Number(st.size) !== seen.size || st.mtimeNs !== seen.mtimeNs || st.ctimeNs !== seen.ctimeNs) {
      port.postMessage({ changed: true });
      Atomics.store(ctl, ${FAILED}, 1);
      break;
    }
    for (let done = 0; done < length; ) done += writeSync(mem, buf, done, length - done, addr + done);
  }
} catch (err) {
  port.postMessage({ message: String(err && err.message) });
  Atomics.store(ctl, ${FAILED}, 1);
}
Atomics.store(ctl, ${QUIT}, 1);
Atomics.notify(ctl, ${QUIT});
work.close();
port.close();
})();
`;

/** A thread started, waiting for its work. */
class Started {
  readonly ctl = new Int32Array(new SharedArrayBuffer(CTL_BYTES));
  private readonly started = Date.now();
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
    // A thread that could not start takes no run: the main thread writes them all.
    new Worker(THREAD, { eval: true, workerData: { ctl: this.ctl, work: toThread.port2, port: fromThread.port2, xxh3: xxh3ModulePath() }, transferList: [toThread.port2, fromThread.port2] })
      .on('error', () => {})
      .unref();
    this.work.unref();
    this.port.unref();
  }

  /** Give it its runs; false if it gave up waiting (or was given runs already). */
  give(work: object): boolean {
    this.work.postMessage(work);
    // From waiting, or waiting with a hash to make (which it makes first).
    if (Atomics.compareExchange(this.ctl, STATE, 0, 1) !== 0 && Atomics.compareExchange(this.ctl, STATE, 3, 1) !== 3) return false;
    Atomics.notify(this.ctl, STATE);
    return true;
  }

  /** Have it hash `length` bytes of fd from the start, before its runs; null if it gave up waiting. */
  hash(fd: number, length: number): HashElsewhere | null {
    const dup = dupFd(fd);
    this.work.postMessage({ fd: dup, length });
    Atomics.store(this.ctl, HASH, 1);
    if (Atomics.compareExchange(this.ctl, STATE, 0, 3) !== 0) {
      // Gone (it gave up waiting): nothing reads the message.
      Atomics.store(this.ctl, HASH, 0);
      closeSync(dup);
      return null;
    }
    Atomics.notify(this.ctl, STATE);
    const ctl = this.ctl;
    let open = true;
    const settled = (): boolean => Atomics.load(ctl, HASH) !== 1;
    return {
      result: () => {
        // A thread that never started makes no hash: the caller makes it.
        while (!settled()) {
          if (Atomics.load(ctl, READY) === 0 && Date.now() - this.started > START_MS) return null;
          Atomics.wait(ctl, HASH, 1, 100);
        }
        if (open) {
          open = false;
          closeSync(dup);
        }
        if (Atomics.load(ctl, HASH) !== 2) return null;
        const digest = Buffer.alloc(8);
        digest.writeInt32LE(ctl[DIGEST]!, 0);
        digest.writeInt32LE(ctl[DIGEST + 1]!, 4);
        const [size, mtimeNs, ctimeNs] = new BigInt64Array(ctl.buffer, SEEN_AT, 3);
        return { digest, seen: { size: Number(size), mtimeNs: mtimeNs!, ctimeNs: ctimeNs! } };
      },
      release: () => {
        if (open && settled()) {
          open = false;
          closeSync(dup);
        }
      },
    };
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
  // One given a hash already was another restore's (one that ended before its pages): not reused.
  if (ahead !== null && Atomics.load(ahead.ctl, HASH) !== 0) ahead = null;
  if (size >= PAGE_THREAD_MIN) ahead ??= new Started();
}

/**
 * A large image's checksum made by the thread started ahead (readyPageThread), while cr's main
 * thread reads the image's records and builds the husk: `length` bytes of fd from its start, then
 * the thread goes on to its runs. Null without such a thread (the caller hashes as it reads).
 */
export const hashAhead: HashAhead = (fd, length) => (ahead && length >= PAGE_THREAD_MIN ? ahead.hash(fd, length) : null);

/**
 * Bytes of pages from which a restart writes them in two threads: below it, starting the second
 * (about 35 ms of CPU, 3 on the main thread) costs more than it saves.
 */
export const PAGE_THREAD_MIN = 32 << 20;

/** One run to write: where its pages are in the image file, how many bytes, and where they go. */
export interface RunJob {
  offset: number;
  length: number;
  addr: number;
}

export class PageThread {
  private readonly ctl: Int32Array;
  private readonly port: MessagePort;
  private readonly image: number;
  /** jobs the main thread took */
  private mine = 0;
  private ended = false;

  /** Have a thread write jobs into the memory /proc/PID/mem at `mem` is of, from the image file of `pages`. */
  constructor(
    private readonly pages: PagesInFile,
    private readonly jobs: readonly RunJob[],
    mem: number,
  ) {
    const runs = new Float64Array(new SharedArrayBuffer(jobs.length * 3 * 8));
    jobs.forEach((j, i) => runs.set([j.offset, j.length, j.addr], 3 * i));
    const { fd, seen } = pages.share();
    this.image = fd;
    const work = { runs, count: jobs.length, image: fd, mem, seen };
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
  }

  /** The index of the next job for the main thread to write, or -1 when every job is taken. */
  take(): number {
    const i = Atomics.add(this.ctl, NEXT, 1);
    if (i >= this.jobs.length) return -1;
    this.mine++;
    return i;
  }

  /** Wait for the thread's last job; what failed there is thrown (a changed image as PagesInFile throws it). */
  finish(): void {
    this.end();
    if (Atomics.load(this.ctl, FAILED) === 1) {
      const message = workerThreads().receiveMessageOnPort(this.port)?.message as { changed?: boolean; message?: string } | undefined;
      if (message?.changed) this.pages.changed();
      throw new Error(`writing pages in a second thread: ${message?.message ?? 'failed'}`);
    }
  }

  /**
   * Take every job left (the thread then ends after its current one) and wait for the thread if it
   * took any (one that took none never uses the fds), then close its fd of the image. Its fd of
   * /proc/PID/mem is the caller's.
   */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    const taken = Math.min(Atomics.exchange(this.ctl, NEXT, this.jobs.length), this.jobs.length);
    if (taken > this.mine) {
      while (Atomics.load(this.ctl, QUIT) === 0) Atomics.wait(this.ctl, QUIT, 0, 100);
    }
    closeSync(this.image);
  }
}
