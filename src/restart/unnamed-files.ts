// Shared mappings of files with no name (a memfd, a deleted file: mapping kind shared-unnamed).
// The file is a description of the fd table, made by the fd replay with its contents before the
// memory is rebuilt; each mapping is made again from the fd the process holds it at (or from a
// description of the same file opened through /proc/self/fd/N with the access the mapping had:
// a mapping that may be made writable needs a writable one, one that may not a read-only one), so
// that a write through the mapping is read() through the fd and the other way round. A memfd's
// seals come last, after every mapping: F_SEAL_WRITE refuses while a writable shared mapping
// exists and F_SEAL_FUTURE_WRITE forbids making one, yet the process may have mapped it writable
// before sealing; so the fd replay makes a mapped memfd without them (deferSeals) and mapAll adds
// them once its mappings exist (F_ADD_SEALS on the process's fd of it: a memfd's is O_RDWR).
// A file the process maps but holds no fd of (the head's `unheld`) is made by mapAll at a
// number of its own, its data written by cr through /proc/PID/fd/N, mapped, sealed, and closed.
import { closeSync, constants as fs, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Mapping } from '../image/process-head.js';
import type { CallQueue } from '../inject/batch.js';
import { SYS } from '../inject/syscalls.js';
import { createFlags, unsealed } from '../kinds/memfd.js';
import { O_ACCMODE, O_CLOEXEC, O_RDONLY, O_RDWR, type DeletedDesc, type Desc, type Fd, type MemfdDesc } from '../model/fdtable.js';
import { printable } from '../printable.js';

/** A file some shared-unnamed mapping maps: where the process holds it, and what is left to do. */
export interface UnnamedFile {
  /** the fd the process holds it at after the fd replay; for one it holds none, where mapAll makes it (-1 until then) */
  fd: number;
  /** one the process holds no fd of (the head's `unheld`): made by mapAll, its contents written by cr, closed after */
  unheld: MemfdDesc | DeletedDesc | null;
  /** its description's access mode (O_ACCMODE bits) */
  access: number;
  /** the seals to add once it is mapped (0: none, or not a memfd) */
  seals: number;
}

export type UnnamedFiles = Map<number, UnnamedFile>;

/** The descriptions mappings map (ids). */
export function mappedDescs(mappings: readonly Mapping[]): Set<number> {
  return new Set(mappings.flatMap((m) => (m.unnamed ? [m.unnamed.desc] : [])));
}

/** descs as the fd replay makes them when `mapped` are mapped: those memfds without the seals mapAll adds after. */
export function deferSeals<D extends Desc>(descs: D[], mapped: ReadonlySet<number>): D[] {
  if (mapped.size === 0) return descs;
  return descs.map((d) => (d.kind === 'memfd' && mapped.has(d.id) ? (unsealed(d) as D) : d));
}

/** For one process: each file its mappings map, at the first fd it holds it at (the image check saw it held), or one of `unheld`. */
export function unnamedFiles(mappings: readonly Mapping[], fds: readonly Fd[], descs: readonly Desc[], unheld: ReadonlyArray<MemfdDesc | DeletedDesc>): UnnamedFiles {
  const out: UnnamedFiles = new Map();
  const sealsOf = (d: Desc): number => (d.kind === 'memfd' && unsealed(d).seals !== d.seals ? d.seals : 0);
  for (const id of mappedDescs(mappings)) {
    const own = unheld.find((u) => u.id === id);
    if (own) {
      out.set(id, { fd: -1, unheld: own, access: O_RDWR, seals: sealsOf(own) });
      continue;
    }
    const fd = fds.find((f) => f.desc === id)!;
    const d = descs.find((x) => x.id === id)!;
    out.set(id, { fd: fd.fd, unheld: null, access: d.flags & O_ACCMODE, seals: sealsOf(d) });
  }
  return out;
}

const AT_FDCWD = -100n;
/** O_TMPFILE (__O_TMPFILE | O_DIRECTORY) */
const O_TMPFILE = 0o20200000;

/**
 * Queue the calls that make an unheld file at `fd` (the lowest free number then) as its kind
 * would, without its data (writeUnheld) and seals (added after the mappings): memfd_create, or an
 * O_TMPFILE file in its old directory made as the image's author; its permission bits; its size.
 */
export function makeUnheld(d: MemfdDesc | DeletedDesc, fd: number, q: CallQueue, failure: (call: string, r: bigint) => Error): void {
  const at = BigInt(fd);
  const mismatch = (call: string) => (r: bigint): Error => (r < 0n && r > -4096n ? failure(call, r) : new Error(`${call} in the husk gave fd ${r}, not ${fd}`));
  let mode: number;
  if (d.kind === 'memfd') {
    const c = createFlags(d, true);
    mode = c.mode;
    q.add('memfd_create', SYS.memfd_create, [q.put(d.name), BigInt(c.flags)], at, mismatch(`memfd_create("${printable(d.name, '"')}")`));
  } else {
    const dir = dirname(d.path);
    mode = -1;
    q.add('open', SYS.openat, [AT_FDCWD, q.put(dir), BigInt(O_RDWR | O_TMPFILE | O_CLOEXEC), BigInt(d.mode & 0o777)], at, mismatch(`openat("${printable(dir, '"')}", O_TMPFILE)`));
  }
  if (d.mode !== mode) q.add('fchmod', SYS.fchmod, [at, BigInt(d.mode)], 0n);
  if (d.size > 0) q.add('ftruncate', SYS.ftruncate, [at, BigInt(d.size)], 0n);
}

/** Write an unheld file's data into the one made at `fd` in process `pid` (cr writes through /proc/PID/fd/N: the same file). */
export function writeUnheld(pid: number, fd: number, d: MemfdDesc | DeletedDesc): void {
  if (d.extents.length === 0) return;
  const out = openSync(`/proc/${pid}/fd/${fd}`, fs.O_WRONLY | O_CLOEXEC);
  try {
    for (const e of d.extents) for (let done = 0; done < e.data.length; ) done += writeSync(out, e.data, done, e.data.length - done, e.offset + done);
  } finally {
    closeSync(out);
  }
}

/** The access a description mapping m is made from must have: read-write if it may be made writable ('mw'), else read-only. */
export const accessFor = (m: Mapping): number => (m.vmflags.includes('mw') ? O_RDWR : O_RDONLY);
