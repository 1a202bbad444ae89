// Make a failing case small: greedily drop whole pipes, fds (long runs first, then
// single ones), stretches of the fd number line, target fds and queued bytes while
// the case still fails. What is left without an fd
// (descriptions, then pipes, a pty's slaves with their master) goes with it, so every candidate is
// still a valid table.
import { pipeOf, type FdTable } from '../model/fdtable.js';
import type { FuzzCase } from './generate.js';

/** The table without the fds at these indexes, and without what only they kept alive. */
function withoutFds(table: FdTable, drop: (index: number) => boolean): FdTable {
  const kept = table.fds.filter((_, i) => !drop(i));
  // A pty slave goes with its master: it is made through it.
  const masters = new Set(kept.map((f) => f.desc));
  const byId = new Map(table.descs.map((d) => [d.id, d]));
  const fds = kept.filter((f) => {
    const d = byId.get(f.desc);
    return d?.kind !== 'pts' || masters.has(d.master);
  });
  const liveDescs = new Set(fds.map((f) => f.desc));
  // An epoll's items go with the descriptions they watch.
  const descs = table.descs.filter((d) => liveDescs.has(d.id)).map((d) => (d.kind === 'epoll' ? { ...d, items: d.items.filter((i) => liveDescs.has(i.target)) } : d));
  const livePipes = new Set(descs.map((d) => pipeOf(d)));
  const pipes = table.pipes.filter((p) => livePipes.has(p.id));
  return { fds, descs, pipes, rlimit: table.rlimit };
}

/** How far the fd number line of a case reaches: its limits and its numbers. */
function numberLine(c: FuzzCase): number {
  let top = Math.max(c.table.rlimit.hard, c.target.rlimit.hard);
  for (const fd of c.target.fds) top = Math.max(top, fd + 1);
  return top;
}

/**
 * The case with the numbers [from, to) cut out of the number line: numbers above move
 * down, limits above shrink with them, target fds inside go. Null if an image fd is
 * inside (dropping those is the fd reducer's job).
 */
function squeeze(c: FuzzCase, from: number, to: number): FuzzCase | null {
  if (c.table.fds.some((f) => f.fd >= from && f.fd < to)) return null;
  const map = (n: number): number => n - Math.max(0, Math.min(to, n) - from);
  const limit = (r: { soft: number; hard: number }) => ({ soft: map(r.soft), hard: map(r.hard) });
  return {
    table: { ...c.table, fds: c.table.fds.map((f) => ({ ...f, fd: map(f.fd) })), rlimit: limit(c.table.rlimit) },
    target: { ...c.target, fds: c.target.fds.filter((fd) => fd < from || fd >= to).map(map), rlimit: limit(c.target.rlimit) },
  };
}

/**
 * Remove runs of items (halves, quarters, ... single ones) while `fails` holds.
 * `remove(case, from, to)` makes the candidate without items [from, to).
 */
function reduce(c: FuzzCase, length: (c: FuzzCase) => number, remove: (c: FuzzCase, from: number, to: number) => FuzzCase | null, fails: (c: FuzzCase) => boolean, budget: { left: number }): FuzzCase {
  let chunk = Math.ceil(length(c) / 2);
  while (chunk >= 1 && budget.left > 0) {
    let progressed = false;
    for (let from = 0; from < length(c) && budget.left > 0; ) {
      const candidate = remove(c, from, from + chunk);
      if (candidate === null) {
        from += chunk;
        continue;
      }
      budget.left--;
      if (fails(candidate)) {
        c = candidate;
        progressed = true;
      } else {
        from += chunk;
      }
    }
    if (!progressed) chunk = chunk === 1 ? 0 : Math.ceil(chunk / 2);
  }
  return c;
}

/** A smaller case that still fails; `fails` must be true for `c`. At most `tries` checks. */
export function shrink(c: FuzzCase, fails: (c: FuzzCase) => boolean, tries = 4000): FuzzCase {
  const budget = { left: tries };
  for (;;) {
    const before = JSON.stringify(c);
    // Whole pipes first: a pipe's descriptions and fds are often scattered through the list.
    c = reduce(
      c,
      (x) => x.table.pipes.length,
      (x, from, to) => {
        const gone = new Set(x.table.pipes.slice(from, to).map((p) => p.id));
        const descs = new Set(x.table.descs.filter((d) => 'pipe' in d && gone.has(d.pipe)).map((d) => d.id));
        return { ...x, table: withoutFds(x.table, (i) => descs.has(x.table.fds[i].desc)) };
      },
      fails,
      budget,
    );
    c = reduce(c, (x) => x.table.fds.length, (x, from, to) => ({ ...x, table: withoutFds(x.table, (i) => i >= from && i < to) }), fails, budget);
    // Then the number line: what matters is how numbers interleave, not how many there are.
    c = reduce(c, numberLine, squeeze, fails, budget);
    c = reduce(
      c,
      (x) => x.target.fds.length,
      (x, from, to) => ({ ...x, target: { ...x.target, fds: x.target.fds.filter((_, i) => i < from || i >= to) } }),
      fails,
      budget,
    );
    for (let i = 0; i < c.table.pipes.length && budget.left > 0; i++) {
      const p = c.table.pipes[i];
      if (p.data.length === 0) continue;
      const pipes = [...c.table.pipes];
      pipes[i] = { id: p.id, capacity: p.capacity, data: Buffer.alloc(0) };
      const candidate = { ...c, table: { ...c.table, pipes } };
      budget.left--;
      if (fails(candidate)) c = candidate;
    }
    if (JSON.stringify(c) === before || budget.left <= 0) return c;
  }
}
