// node:worker_threads, loaded when a thread is started rather than with the modules that start
// one: its internals cost every dump and restore about 2 ms of start-up (docs/performance.md), and
// only large images use a thread (src/write-thread.ts, src/restart/page-thread.ts).
import { createRequire } from 'node:module';

export const workerThreads = (): typeof import('node:worker_threads') =>
  createRequire(import.meta.url)('node:worker_threads') as typeof import('node:worker_threads');
