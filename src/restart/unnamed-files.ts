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
import type { Mapping } from '../image/process-head.js';
import { unsealed } from '../kinds/memfd.js';
import { O_ACCMODE, O_RDONLY, O_RDWR, type Desc, type Fd } from '../model/fdtable.js';

/** A file some shared-unnamed mapping maps: where the process holds it, and what is left to do. */
export interface UnnamedFile {
  /** the fd the process holds it at after the fd replay */
  fd: number;
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

/** For one process: each file its mappings map, at the first fd it holds it at (the image check saw it held). */
export function unnamedFiles(mappings: readonly Mapping[], fds: readonly Fd[], descs: readonly Desc[]): UnnamedFiles {
  const out: UnnamedFiles = new Map();
  for (const id of mappedDescs(mappings)) {
    const fd = fds.find((f) => f.desc === id)!;
    const d = descs.find((x) => x.id === id)!;
    out.set(id, { fd: fd.fd, access: d.flags & O_ACCMODE, seals: d.kind === 'memfd' && unsealed(d).seals !== d.seals ? d.seals : 0 });
  }
  return out;
}

/** The access a description mapping m is made from must have: read-write if it may be made writable ('mw'), else read-only. */
export const accessFor = (m: Mapping): number => (m.vmflags.includes('mw') ? O_RDWR : O_RDONLY);
