// A second thread writing a large image's pages into the husk beside cr's main thread: on this VM
// most of a restart's page phase is the husk's fresh pages faulted in as they are written (about
// 130 of 170 ms for 300 MiB), and faults in two threads run on two cores (the kernel takes them
// under per-mapping locks). The runs are shared out one at a time from a common counter, so the
// main thread takes them all until the thread is up (a node worker takes about 30 ms to start).
// The thread reads each of its runs from the image file itself (its own duplicate of the fd,
// checked unchanged after each read, as PagesInFile checks its windows) and writes it through
// /proc/PID/mem; the main thread writes its own as writePages does. The main thread waits for
// the thread's last run before the phase ends, and reports what failed there as its own.
import { closeSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { MessagePort } from 'node:worker_threads';
import type { PagesInFile } from '../image/file.js';

// node:worker_threads loaded when a thread is started, not with the module: its internals cost every
// dump and restore about 2 ms of start-up (docs/performance.md), and only large images use a thread.
const workers = (): typeof import('node:worker_threads') => createRequire(import.meta.url)('node:worker_threads') as typeof import('node:worker_threads');

// ctl's words
const NEXT = 0;
const QUIT = 1;
const FAILED = 2;

/** The thread's code (node:fs and node:worker_threads only, so it needs no bundle of its own). */
const THREAD = `
const { workerData } = require('node:worker_threads');
const { readSync, writeSync, fstatSync } = require('node:fs');
const { ctl, runs, count, image, mem, seen, port } = workerData;
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
port.close();
`;

/** One run to write: where its pages are in the image file, how many bytes, and where they go. */
export interface RunJob {
  offset: number;
  length: number;
  addr: number;
}

export class PageThread {
  private readonly ctl = new Int32Array(new SharedArrayBuffer(12));
  private readonly port: MessagePort;
  private readonly image: number;
  /** jobs the main thread took */
  private mine = 0;
  private ended = false;

  /** Start a thread writing jobs into the memory /proc/PID/mem at `mem` is of, from the image file of `pages`. */
  constructor(
    private readonly pages: PagesInFile,
    private readonly jobs: readonly RunJob[],
    mem: number,
  ) {
    const runs = new Float64Array(new SharedArrayBuffer(jobs.length * 3 * 8));
    jobs.forEach((j, i) => runs.set([j.offset, j.length, j.addr], 3 * i));
    const { fd, seen } = pages.share();
    this.image = fd;
    const { MessageChannel, Worker } = workers();
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    try {
      new Worker(THREAD, { eval: true, workerData: { ctl: this.ctl, runs, count: jobs.length, image: fd, mem, seen, port: port2 }, transferList: [port2] }).unref();
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    this.port.unref();
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
      const message = workers().receiveMessageOnPort(this.port)?.message as { changed?: boolean; message?: string } | undefined;
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
