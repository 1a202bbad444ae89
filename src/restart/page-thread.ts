// A second thread writing a large image's pages into the husk beside cr's main thread: on this VM
// most of a restart's page phase is the husk's fresh pages faulted in as they are written (about
// 130 of 170 ms for 300 MiB), and faults in two threads run on two cores (the kernel takes them
// under per-mapping locks). The runs are shared out one at a time from a common counter, so the
// main thread takes them all until the thread is up (a node worker takes about 30 ms to start: a
// restore starts it before reading the image, readyPageThread).
// The thread reads each of its runs from the image file itself (its own duplicate of the fd,
// checked unchanged after each read, as PagesInFile checks its windows) and writes it through
// /proc/PID/mem; the main thread writes its own as writePages does. The main thread waits for
// the thread's last run before the phase ends, and reports what failed there as its own.
import { closeSync, statSync } from 'node:fs';
import type { MessagePort } from 'node:worker_threads';
import type { PagesInFile } from '../image/file.js';
import { workerThreads } from '../worker-threads.js';

// ctl's words
const NEXT = 0;
const QUIT = 1;
const FAILED = 2;
/** 0 while a started thread waits for work, 1 once given it, 2 once it gave up waiting */
const STATE = 3;
/** how long a thread started ahead (readyPageThread) waits for work before it ends */
const IDLE_MS = 10_000;

/**
 * The thread's code (node:fs and node:worker_threads only, so it needs no bundle of its own): wait
 * for its work (the runs, the fds), then write runs as it takes them.
 */
const THREAD = `(() => {
const { workerData, receiveMessageOnPort } = require('node:worker_threads');
const { readSync, writeSync, fstatSync } = require('node:fs');
const { ctl, work, port } = workerData;
const until = Date.now() + ${IDLE_MS};
while (Atomics.load(ctl, ${STATE}) === 0 && Date.now() < until) Atomics.wait(ctl, ${STATE}, 0, 50);
if (Atomics.compareExchange(ctl, ${STATE}, 0, 2) === 0) {
  work.close();
  port.close();
  return;
}
const { runs, count, image, mem, seen } = receiveMessageOnPort(work).message;
const buf = Buffer.allocUnsafe(${1 << 20});
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
  readonly ctl = new Int32Array(new SharedArrayBuffer(16));
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
