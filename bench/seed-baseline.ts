// The 2008 seed's planning, ported as is for comparison: pipe fds paired by a
// pairwise scan over inodes (pair_pipe_fds), dups told from peers by equal flags,
// then the restore sequence restore_fd() issues. Quadratic by construction.

import type { FdTable } from '../src/model/fdtable.js';

interface SeedFdinfo {
  fdnum: number;
  flag: number;
  ino: number;
  peer: number;
  dup: number;
  createPipe: boolean;
}

type SeedOp = [string, number, number];

export function seedPlan(table: FdTable): SeedOp[] {
  const descs = new Map(table.descs.map((d) => [d.id, d]));
  const fi: SeedFdinfo[] = table.fds.map((f) => {
    const d = descs.get(f.desc)!;
    return { fdnum: f.fd, flag: d.flags, ino: 'pipe' in d ? d.pipe : -1, peer: -1, dup: -1, createPipe: false };
  });
  const pipes = fi.filter((f) => f.ino >= 0);
  for (let i = 0; i < pipes.length; i++) {
    const x = pipes[i];
    for (let j = i + 1; j < pipes.length; j++) {
      const y = pipes[j];
      if (y.ino !== x.ino) continue;
      if (x.flag === y.flag) {
        y.dup = x.fdnum;
      } else {
        if (x.peer !== -1 || x.dup !== -1) continue;
        if (x.fdnum < y.fdnum) x.createPipe = true;
        x.peer = y.fdnum;
        y.peer = x.fdnum;
      }
    }
  }
  const tramp = (fi.length ? Math.max(...fi.map((f) => f.fdnum)) : 0) + 1;
  const ops: SeedOp[] = [];
  for (const f of fi) {
    if (f.dup !== -1) ops.push(['dup2', f.dup, f.fdnum]);
    else if (f.createPipe) {
      ops.push(['pipe', tramp, tramp + 1]);
      ops.push(['dup2', tramp, f.fdnum], ['close', tramp, 0], ['dup2', tramp + 1, f.peer], ['close', tramp + 1, 0]);
    }
    ops.push(['fcntl', f.fdnum, f.flag]);
  }
  return ops;
}
