// Structural comparison of two fd tables. Description and pipe ids are names a dump makes up, so
// they are never compared: fds are matched by number, and descriptions and pipes through the fds
// that reach them. Each difference is one line, naming fds, about A (first) and B (second).
import { kindOf } from '../kinds/registry.js';
import { O_ACCMODE, O_RDONLY, O_WRONLY, pathOf, pipeOf, viewOf, type Desc, type FdTable, type FdTables, type Pipe } from '../model/fdtable.js';
import { flagNames } from '../model/flags.js';
import { printable } from '../printable.js';

interface Side {
  fds: Map<number, { desc: Desc; cloexec: boolean }>;
  pipes: Map<number, Pipe>;
}

function sideOf(table: FdTable): Side {
  const descs = new Map(table.descs.map((d) => [d.id, d]));
  return {
    fds: new Map(table.fds.map((f) => [f.fd, { desc: descs.get(f.desc)!, cloexec: f.cloexec }])),
    pipes: new Map(table.pipes.map((p) => [p.id, p])),
  };
}


const fdList = (fds: number[]): string => (fds.length === 1 ? `fd ${fds[0]}` : `fds ${fds.join(', ')}`);

function what(desc: Desc): string {
  if (desc.kind !== 'pipe' && desc.kind !== 'fifo') return `${desc.kind} ${printable(pathOf(desc) ?? '')}`.trim();
  const mode = desc.flags & O_ACCMODE;
  return `${desc.kind} ${mode === O_RDONLY ? 'read end' : mode === O_WRONLY ? 'write end' : 'read-write end'}`;
}

/**
 * Group `fds` by a key on each side; where one side's group is split on the other side, say so.
 * Returns the classes (fds alike on both sides), each as its fds in ascending order.
 */
function partition(
  fds: number[],
  keyA: (fd: number) => number,
  keyB: (fd: number) => number,
  noun: string,
  out: string[],
): number[][] {
  const classes = new Map<string, number[]>();
  const byA = new Map<number, Set<string>>();
  const byB = new Map<number, Set<string>>();
  for (const fd of fds) {
    const a = keyA(fd);
    const b = keyB(fd);
    const key = `${a}/${b}`;
    const cls = classes.get(key);
    if (cls) cls.push(fd);
    else classes.set(key, [fd]);
    if (!byA.has(a)) byA.set(a, new Set());
    byA.get(a)!.add(key);
    if (!byB.has(b)) byB.set(b, new Set());
    byB.get(b)!.add(key);
  }
  const split = (groups: Map<number, Set<string>>, one: string, other: string): void => {
    for (const keys of groups.values()) {
      if (keys.size < 2) continue;
      const parts = [...keys].map((k) => classes.get(k)!);
      const all = parts.flat().sort((x, y) => x - y);
      out.push(`${fdList(all)} are on one ${noun} in ${one}, but on ${parts.length} in ${other}: ${parts.map((p) => p.join(' ')).join(' | ')}`);
    }
  };
  split(byA, 'A', 'B');
  split(byB, 'B', 'A');
  return [...classes.values()];
}

function comparePipes(where: string, a: Pipe, b: Pipe, out: string[]): void {
  if (a.capacity !== b.capacity) out.push(`${where}: capacity ${a.capacity} in A, ${b.capacity} in B`);
  const da = a.data;
  const db = b.data;
  if (da.length !== db.length) out.push(`${where}: ${da.length} bytes queued in A, ${db.length} in B`);
  else if (!da.equals(db)) {
    let at = 0;
    while (da[at] === db[at]) at++;
    out.push(`${where}: the ${da.length} queued bytes differ from byte ${at} on`);
  }
  const pa = a.packets?.join(',') ?? 'a byte stream';
  const pb = b.packets?.join(',') ?? 'a byte stream';
  if (pa !== pb) out.push(`${where}: ${a.packets ? `packets ${pa}` : pa} in A, ${b.packets ? `packets ${pb}` : pb} in B`);
}

/** Every difference between two tables, one line each; empty when they are the same table. */
export function compareTables(tableA: FdTable, tableB: FdTable): string[] {
  const A = sideOf(tableA);
  const B = sideOf(tableB);
  const out: string[] = [];
  const numbers = [...new Set([...A.fds.keys(), ...B.fds.keys()])].sort((x, y) => x - y);
  const common: number[] = [];
  for (const fd of numbers) {
    const a = A.fds.get(fd);
    const b = B.fds.get(fd);
    if (a && b) common.push(fd);
    else if (a) out.push(`fd ${fd}: only in A (${what(a.desc)})`);
    else out.push(`fd ${fd}: only in B (${what(b!.desc)})`);
  }
  for (const fd of common) {
    const a = A.fds.get(fd)!.cloexec;
    const b = B.fds.get(fd)!.cloexec;
    if (a !== b) out.push(`fd ${fd}: close-on-exec ${a ? 'on' : 'off'} in A, ${b ? 'on' : 'off'} in B`);
  }

  const descA = (fd: number): Desc => A.fds.get(fd)!.desc;
  const descB = (fd: number): Desc => B.fds.get(fd)!.desc;
  for (const cls of partition(common, (fd) => descA(fd).id, (fd) => descB(fd).id, 'description', out)) {
    const a = descA(cls[0]!);
    const b = descB(cls[0]!);
    const where = fdList(cls);
    if (a.kind !== b.kind) {
      out.push(`${where}: ${what(a)} in A, ${what(b)} in B`);
      continue;
    }
    if (a.flags !== b.flags) out.push(`${where}: flags ${flagNames(a.flags)} in A, ${flagNames(b.flags)} in B`);
    // Alike in kind: the kind's own fields, as its module compares them.
    for (const line of kindOf(a).diff(a, b)) out.push(`${where}: ${line}`);
  }

  const onPipes = common.filter((fd) => pipeOf(descA(fd)) !== undefined && pipeOf(descB(fd)) !== undefined);
  for (const cls of partition(onPipes, (fd) => pipeOf(descA(fd))!, (fd) => pipeOf(descB(fd))!, 'pipe', out)) {
    comparePipes(`the pipe at ${fdList(cls)}`, A.pipes.get(pipeOf(descA(cls[0]!))!)!, B.pipes.get(pipeOf(descB(cls[0]!))!)!, out);
  }

  const ra = tableA.rlimit;
  const rb = tableB.rlimit;
  if (ra.soft !== rb.soft || ra.hard !== rb.hard) out.push(`RLIMIT_NOFILE ${ra.soft}:${ra.hard} in A, ${rb.soft}:${rb.hard} in B`);
  return out;
}

/** Where each description shared across processes is held, as `PID:fd` lists (processes named by position). */
function sharedAcross(tables: FdTables): Set<string> {
  const where = new Map<number, string[]>();
  const procs = new Map<number, Set<number>>();
  tables.processes.forEach((p, i) => {
    for (const f of [...p.fds].sort((x, y) => x.fd - y.fd)) {
      (where.get(f.desc) ?? where.set(f.desc, []).get(f.desc)!).push(`${i}:${f.fd}`);
      (procs.get(f.desc) ?? procs.set(f.desc, new Set()).get(f.desc)!).add(i);
    }
  });
  const out = new Set<string>();
  for (const [desc, list] of where) if (procs.get(desc)!.size > 1) out.add(list.join(' '));
  return out;
}

/**
 * Two images of any number of processes: processes are matched by position (a tree's order),
 * each compared as compareTables does, then which descriptions the processes share.
 */
export function compareAll(a: FdTables, b: FdTables): string[] {
  const n = a.processes.length;
  if (n !== b.processes.length) return [`A holds ${n} processes, B holds ${b.processes.length}`];
  if (n === 1) return compareTables(viewOf(a, 0), viewOf(b, 0));
  const out: string[] = [];
  const name = (t: FdTables, i: number): string => `process ${t.processes[i]!.pid}`;
  const parentIndex = (t: FdTables, i: number): number => t.processes.findIndex((p) => p.pid === t.processes[i]!.parent);
  for (let i = 0; i < n; i++) {
    const label = a.processes[i]!.pid === b.processes[i]!.pid ? name(a, i) : `${name(a, i)} (${name(b, i)} in B)`;
    if (parentIndex(a, i) !== parentIndex(b, i)) out.push(`${label}: its parent is not the same process in A and B`);
    for (const line of compareTables(viewOf(a, i), viewOf(b, i))) out.push(`${label}: ${line}`);
  }
  const named = (t: FdTables, group: string): string =>
    group.split(' ').map((at) => { const [i, fd] = at.split(':'); return `fd ${fd} of ${name(t, Number(i))}`; }).join(', ');
  const sharedA = sharedAcross(a);
  const sharedB = sharedAcross(b);
  for (const g of sharedA) if (!sharedB.has(g)) out.push(`${named(a, g)}: one description in A, not in B`);
  for (const g of sharedB) if (!sharedA.has(g)) out.push(`${named(b, g)}: one description in B, not in A`);
  return out;
}
