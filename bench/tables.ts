// Deterministic fd tables for the benchmark: pipes with a dup of each end, at
// shuffled numbers, some bytes queued.

import type { Desc, Fd, FdTable, Pipe } from '../src/model/fdtable.js';
import { O_RDONLY, O_WRONLY } from '../src/model/fdtable.js';

/** mulberry32: a small seeded PRNG, so every run benchmarks the same tables. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function pipeTable(nFds: number, seed = 1): FdTable {
  const random = prng(seed);
  const limit = Math.max(1024, nFds * 2);
  const numbers = Array.from({ length: limit }, (_, i) => i);
  for (let i = numbers.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [numbers[i], numbers[j]] = [numbers[j], numbers[i]];
  }
  const fds: Fd[] = [];
  const descs: Desc[] = [];
  const pipes: Pipe[] = [];
  let next = 0;
  for (let p = 0; fds.length < nFds; p++) {
    pipes.push({ id: p, capacity: 65536, data: p % 3 === 0 ? Buffer.from('queued') : Buffer.alloc(0) });
    descs.push({ id: 2 * p, kind: 'pipe', flags: O_RDONLY, pipe: p }, { id: 2 * p + 1, kind: 'pipe', flags: O_WRONLY, pipe: p });
    for (const desc of [2 * p, 2 * p + 1, 2 * p, 2 * p + 1]) {
      if (fds.length < nFds) fds.push({ fd: numbers[next++], desc, cloexec: random() < 0.5 });
    }
  }
  const used = new Set(fds.map((f) => f.desc));
  const keptDescs = descs.filter((d) => used.has(d.id));
  const keptPipeIds = new Set(keptDescs.map((d) => ('pipe' in d ? d.pipe : -1)));
  const keptPipes = pipes.filter((q) => keptPipeIds.has(q.id));
  return { fds, descs: keptDescs, pipes: keptPipes, rlimit: { soft: limit, hard: limit } };
}

/**
 * Issue 15's dense layout: 1,031 fds on 393 pipes (each pipe's two ends, then 245 dups of the
 * first ends) at shuffled numbers, 1,476 bytes queued in every pipe (580 KB in all).
 */
export function denseTable(seed = 1): FdTable {
  const random = prng(seed);
  const pipeCount = 393;
  const fdCount = 1031;
  const limit = 2 * fdCount;
  const numbers = Array.from({ length: limit }, (_, i) => i);
  for (let i = numbers.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [numbers[i], numbers[j]] = [numbers[j], numbers[i]];
  }
  const pipes: Pipe[] = [];
  const descs: Desc[] = [];
  for (let p = 0; p < pipeCount; p++) {
    const bytes = Buffer.alloc(1476, `pipe ${p} `);
    pipes.push({ id: p, capacity: 65536, data: bytes });
    descs.push({ id: 2 * p, kind: 'pipe', flags: O_RDONLY, pipe: p }, { id: 2 * p + 1, kind: 'pipe', flags: O_WRONLY, pipe: p });
  }
  const fds: Fd[] = [];
  for (let i = 0; i < fdCount; i++) {
    const desc = i < 2 * pipeCount ? i : 2 * (i - 2 * pipeCount);
    fds.push({ fd: numbers[i]!, desc, cloexec: random() < 0.5 });
  }
  return { fds, descs, pipes, rlimit: { soft: limit, hard: limit } };
}
