// A thread that writes a file's bytes while cr's main thread goes on: a large dump copies the next
// batch of pages out of the frozen process while this writes the last one into the page cache,
// each on its own core (the two took about 70 and 95 ms of a 300 MiB dump's downtime one after
// the other). The bytes it writes are in memory it shares with the main thread: a ring of slots
// the page copy fills (nextSlot), and small parts (record headers) copied into a job's own space.
// Jobs are written in the order they are posted, with writev on a duplicate of the file's fd (so
// that closing the file's own fd never leaves the thread writing into a number reused since).
// The main thread waits only for a slot still being written, and at drain() for all of it; a
// failed write is reported there, as OutputFile.write reports its own. A thread that dies outside
// JavaScript (out of memory) is found by its entry in /proc going (thread-watch.ts) when a wait
// for it times out, and reported as a failed write.
import { closeSync } from 'node:fs';
import type { MessagePort, Worker } from 'node:worker_threads';
import { dupFd } from '../bridge/file.js';
import { readyShared } from '../bridge/memory.js';
import { publishThread, ThreadWatch, WATCH_WORDS } from './thread-watch.js';
import { workerThreads } from './worker-threads.js';

/** posted jobs that may wait at once (each one batch of pages, with its records' headers) */
const JOBS = 8;
/** parts of one job at most, and the bytes of its own space for small parts */
const MAX_PARTS = 1024;
const JOB_BYTES = 64 << 10;
// ctl's words
const POSTED = 0;
const DONE = 1;
const STOP = 2;
const FAILED = 3;
const QUIT = 4;
/** set by the thread as it starts: a thread not started within START_MS is given up (a write error) */
const READY = 5;
const START_MS = 5000;
/** where the thread publishes its thread id (thread-watch.ts) */
const WATCH = 6;

/**
 * The thread's code (node:fs and node:worker_threads only, so it needs no bundle of its own): wait
 * for jobs, writev each one's parts (views of the shared memory) until all are written, count it
 * done; on a failure, report it once and write nothing more.
 */
const THREAD = `
const { workerData } = require('node:worker_threads');
const { writevSync } = require('node:fs');
const { shared, ctl, jobs, fd, port } = workerData;
${publishThread('ctl', WATCH)}Atomics.store(ctl, ${READY}, 1);
let done = 0;
let failed = false;
try {
  for (;;) {
    const posted = Atomics.load(ctl, ${POSTED});
    if (Atomics.load(ctl, ${STOP}) === 1) break;
    if (posted === done) {
      Atomics.wait(ctl, ${POSTED}, done, 100);
      continue;
    }
    if (!failed) {
      const at = (done % ${JOBS}) * (1 + 2 * ${MAX_PARTS});
      let parts = [];
      for (let i = 0; i < jobs[at]; i++) parts.push(new Uint8Array(shared, jobs[at + 1 + 2 * i], jobs[at + 2 + 2 * i]));
      try {
        while (parts.length > 0) {
          let n = writevSync(fd, parts);
          while (parts.length > 0 && n >= parts[0].length) n -= parts.shift().length;
          if (n > 0) parts[0] = parts[0].subarray(n);
        }
      } catch (err) {
        failed = true;
        port.postMessage({ code: err.code, syscall: err.syscall, message: String(err.message) });
        Atomics.store(ctl, ${FAILED}, 1);
      }
    }
    Atomics.store(ctl, ${DONE}, ++done);
    Atomics.notify(ctl, ${DONE});
  }
} catch (err) {
  // Anything else that ends the loop is reported as a failed write is: the main thread waits for
  // DONE and would otherwise wait for it forever, the process frozen.
  port.postMessage({ message: String(err && err.message) });
  Atomics.store(ctl, ${FAILED}, 1);
  Atomics.notify(ctl, ${DONE});
}
Atomics.store(ctl, ${QUIT}, 1);
Atomics.notify(ctl, ${QUIT});
port.close();
`;

export class WriteThread {
  /** the slots the caller fills, each `slotBytes` of the shared memory */
  private readonly slots: Buffer[];
  /** per slot, the number of jobs that must be done before it may be filled again */
  private readonly slotFree: number[];
  private next = 0;
  private posted = 0;
  private readonly shared: SharedArrayBuffer;
  private readonly base: Buffer;
  private readonly ctl = new Int32Array(new SharedArrayBuffer((WATCH + WATCH_WORDS) * 4));
  private readonly watch = new ThreadWatch(this.ctl, WATCH);
  private readonly started = Date.now();
  private readonly jobs = new Int32Array(new SharedArrayBuffer(JOBS * (1 + 2 * MAX_PARTS) * 4));
  private readonly port: MessagePort;
  private readonly worker: Worker;
  private stopped = false;
  /** what its failed write threw */
  private failure: Error | null = null;
  /** the thread's own fd of the file */
  private readonly fd: number;

  /** Start the thread writing to (a duplicate of) fd, with `count` slots of `slotBytes`. */
  constructor(fd: number, count: number, private readonly slotBytes: number) {
    const { shared, buffer } = readyShared(count * slotBytes + JOBS * JOB_BYTES);
    this.shared = shared;
    this.base = buffer;
    this.slots = Array.from({ length: count }, (_, i) => buffer.subarray(i * slotBytes, (i + 1) * slotBytes));
    this.slotFree = new Array<number>(count).fill(0);
    const dup = (this.fd = dupFd(fd));
    const { MessageChannel, Worker } = workerThreads();
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    try {
      this.worker = new Worker(THREAD, { eval: true, workerData: { shared, ctl: this.ctl, jobs: this.jobs, fd: dup, port: port2 }, transferList: [port2] });
      // A thread that could not start is found by its READY word (waitDone), not by this event,
      // which a dump that never returns to the event loop would not see.
      this.worker.on('error', () => {});
    } catch (err) {
      closeSync(dup);
      throw err;
    }
    // It never keeps cr running: a dump that ends (or fails) without stop() exits all the same.
    this.worker.unref();
    this.port.unref();
  }

  /** The next slot to fill, once what was posted from it has been written. */
  nextSlot(): Buffer {
    const i = this.next;
    this.next = (i + 1) % this.slots.length;
    this.waitDone(this.slotFree[i]!);
    return this.slots[i]!;
  }

  /**
   * Post parts to be written after those posted before: views of the slots (written from there:
   * the caller leaves a slot unchanged until nextSlot() gives it again) and small parts, copied.
   * False (nothing posted) when the parts do not fit one job: the caller drains and writes them.
   */
  post(parts: readonly Buffer[]): boolean {
    if (parts.length > MAX_PARTS) return false;
    const small = parts.reduce((n, p) => (this.slotOf(p) < 0 ? n + p.length : n), 0);
    if (small > JOB_BYTES) return false;
    this.waitDone(this.posted - JOBS + 1);
    const job = this.posted % JOBS;
    const at = job * (1 + 2 * MAX_PARTS);
    const space = this.slots.length * this.slotBytes + job * JOB_BYTES;
    let used = 0;
    this.jobs[at] = parts.length;
    parts.forEach((p, i) => {
      const slot = this.slotOf(p);
      let offset: number;
      if (slot >= 0) {
        offset = p.byteOffset - this.base.byteOffset;
        this.slotFree[slot] = this.posted + 1;
      } else {
        offset = space + used;
        p.copy(this.base, offset);
        used += p.length;
      }
      this.jobs[at + 1 + 2 * i] = this.base.byteOffset + offset;
      this.jobs[at + 2 + 2 * i] = p.length;
    });
    this.posted++;
    Atomics.store(this.ctl, POSTED, this.posted);
    Atomics.notify(this.ctl, POSTED);
    return true;
  }

  /** Wait until everything posted is written; a write that failed is thrown (as node's fs throws it). */
  drain(): void {
    this.waitDone(this.posted);
  }

  /**
   * The thread writes nothing more (what it is writing now, it finishes) and ends. Its fd is closed
   * once it has (by this thread: node warns of an fd a worker closes that it did not open); one
   * still writing after a second is left its fd, which cr's exit closes.
   */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    Atomics.store(this.ctl, STOP, 1);
    Atomics.notify(this.ctl, POSTED);
    const until = Date.now() + 1000;
    let gone = false;
    while (Atomics.load(this.ctl, QUIT) === 0 && Date.now() < until && !gone) {
      if (Atomics.wait(this.ctl, QUIT, 0, 10) === 'timed-out') gone = !this.watch.alive();
    }
    // A thread that died writes nothing more either.
    if (Atomics.load(this.ctl, QUIT) === 1 || gone) closeSync(this.fd);
    this.watch.close();
  }

  /** The slot p is a view of, or -1 for memory of its own. */
  private slotOf(p: Buffer): number {
    if (p.buffer !== this.shared) return -1;
    const at = p.byteOffset - this.base.byteOffset;
    const slot = Math.floor(at / this.slotBytes);
    return slot < this.slots.length && at + p.length <= (slot + 1) * this.slotBytes ? slot : -1;
  }

  private waitDone(n: number): void {
    for (let done = Atomics.load(this.ctl, DONE); done < n; done = Atomics.load(this.ctl, DONE)) {
      if (Atomics.load(this.ctl, FAILED) === 1) break;
      if (Atomics.load(this.ctl, READY) === 0 && Date.now() - this.started > START_MS) {
        this.failure ??= Object.assign(new Error('its writing thread did not start'), { code: undefined });
        throw this.failure;
      }
      // Its thread gone (and what it was writing not done since): it died outside JavaScript,
      // which no word of its could tell.
      if (Atomics.wait(this.ctl, DONE, done, 100) === 'timed-out' && !this.watch.alive() && Atomics.load(this.ctl, DONE) === done && Atomics.load(this.ctl, FAILED) === 0) {
        this.failure ??= Object.assign(new Error('its writing thread ended before its work was done (out of memory?)'), { code: undefined });
        throw this.failure;
      }
    }
    if (Atomics.load(this.ctl, FAILED) === 1) {
      const message = workerThreads().receiveMessageOnPort(this.port)?.message as { code?: string; syscall?: string; message: string } | undefined;
      this.failure ??= Object.assign(new Error(message?.message ?? 'the write thread failed'), { code: message?.code, syscall: message?.syscall });
      throw this.failure;
    }
  }
}
