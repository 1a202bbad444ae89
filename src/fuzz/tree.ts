// Several processes in the planner fuzzer: a generated table split over a small tree (each fd in
// one process, some also in another, as a fork leaves them), planned by planTree and checked
// by the simulator's verifyTree. Derived from the case and its own seed, so a shrunk case
// keeps its tree's shape.
import type { Fd, FdTable, FdTables } from '../model/fdtable.js';
import { Rng } from './random.js';

/** Tables of 2 to 4 processes, pids 1.., each a descendant of the first, sharing `table`'s objects. */
export function treeOf(table: FdTable, seed: number): FdTables {
  const rng = new Rng((seed ^ 0x5eed7) >>> 0);
  const n = rng.int(2, 4);
  const fds: Fd[][] = Array.from({ length: n }, () => []);
  for (const f of table.fds) {
    const owner = rng.below(n);
    fds[owner]!.push(f);
    // Also held by another process: inherited, at the same number (fork keeps numbers).
    if (rng.chance(0.25)) fds[(owner + 1 + rng.below(n - 1)) % n]!.push({ ...f, cloexec: rng.chance(0.5) });
  }
  const processes = fds.map((list, i) => {
    const rlimit = { ...table.rlimit };
    return i === 0 ? { pid: 1, fds: list, rlimit } : { pid: i + 1, parent: rng.int(1, i), fds: list, rlimit };
  });
  return { descs: table.descs, pipes: table.pipes, processes };
}
