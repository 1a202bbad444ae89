// A file's contents carried in the image (a memfd, a deleted file): its data extents, read
// sparse-aware (SEEK_DATA/SEEK_HOLE) so holes stay holes, each extent's bytes a Buffer (bin in an
// image file, base64 text in JSON: src/image/format.ts, tableJson); written
// back with pwrite64 in chunks a batch holds.
import { closeSync, constants as fs, openSync, readSync } from 'node:fs';
import { SEEK_DATA, SEEK_HOLE, seek } from '../../bridge/seek.js';
import { badInput } from '../errors.js';
import { array, fields, get, integer, object, show, type Obj } from '../model/json.js';
import type { CallQueue } from './kind.js';

import type { Extent } from '../model/fdtable.js';
export type { Extent };

/** The most one image carries of one file's contents, whatever a dump was told (bounds a bad image). */
export const MAX_CONTENTS = 2 ** 31;
/** Bytes of one pwrite64: well inside a batch's data area. */
const CHUNK = 256 * 1024;

/** The data of the file open at `path` (a /proc/PID/fd/N link: the same inode), or the bytes it holds when above `limit`. */
export function readContents(path: string, size: number, limit: number): Extent[] | { tooBig: number } {
  const fd = openSync(path, fs.O_RDONLY | fs.O_NONBLOCK | 0o2000000);
  try {
    const extents: Extent[] = [];
    let total = 0;
    let at = 0;
    while (at < size) {
      const start = seek(fd, at, SEEK_DATA);
      if (start === null || start >= size) break;
      const end = Math.min(seek(fd, start, SEEK_HOLE) ?? size, size);
      total += end - start;
      if (total > limit) return { tooBig: total };
      const buf = Buffer.alloc(end - start);
      for (let got = 0; got < buf.length; ) {
        const n = readSync(fd, buf, got, buf.length - got, start + got);
        if (n === 0) break;
        got += n;
      }
      // A run of zeros inside the data is kept as it is: SEEK_DATA's answer is the file system's.
      extents.push({ offset: start, data: buf });
      at = end;
    }
    return extents;
  } finally {
    closeSync(fd);
  }
}

/** Extents from an image (bytes) or JSON (base64 text): in order, apart, inside `size`, at most MAX_CONTENTS bytes in all. */
export function parseExtents(obj: Obj, where: string, size: number): Extent[] {
  let end = 0;
  let total = 0;
  return array(get(obj, 'extents'), `${where}.extents`).map((v, i) => {
    const w = `${where}.extents[${i}]`;
    const e = object(v, w);
    fields(e, w, ['offset', 'data']);
    const offset = integer(get(e, 'offset'), `${w}.offset`, end, Number.MAX_SAFE_INTEGER);
    const raw = get(e, 'data');
    let data: Buffer;
    if (raw instanceof Uint8Array && raw.length > 0) data = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
    else if (typeof raw === 'string' && raw.length > 0 && raw.length % 4 === 0 && /^[A-Za-z0-9+/]*={0,2}$/.test(raw)) data = Buffer.from(raw, 'base64');
    else badInput(`${w}.data: expected non-empty bytes (base64 in JSON), got ${typeof raw === 'string' ? `${raw.length} characters that are not` : raw instanceof Uint8Array ? 'none' : show(raw)}`);
    const bytes = data.length;
    total += bytes;
    if (total > MAX_CONTENTS) badInput(`${w}: more than ${MAX_CONTENTS} bytes of contents`);
    if (offset + bytes > size) badInput(`${w}: bytes ${offset} to ${offset + bytes} are past the size ${size}`);
    end = offset + bytes;
    return { offset, data };
  });
}

/** Bytes carried, for show. */
export const carried = (extents: Extent[]): number => extents.reduce((n, e) => n + e.data.length, 0);

/** Queue the writes of the extents into fd, a chunk at a time. */
export function writeExtents(fd: number, extents: Extent[], q: CallQueue): void {
  for (const e of extents) {
    const bytes = e.data;
    for (let from = 0; from < bytes.length; from += CHUNK) {
      const chunk = bytes.subarray(from, Math.min(bytes.length, from + CHUNK));
      q.call('pwrite64', [BigInt(fd), q.put(chunk), BigInt(chunk.length), BigInt(e.offset + from)], BigInt(chunk.length), `pwrite64(${fd}, <${chunk.length} bytes>, ${chunk.length}, ${e.offset + from})`);
    }
  }
}

/** The chunks writeExtents writes, for the simulator. */
export function chunksOf(extents: Extent[]): Array<{ offset: number; bytes: Buffer }> {
  const out: Array<{ offset: number; bytes: Buffer }> = [];
  for (const e of extents) {
    const bytes = e.data;
    for (let from = 0; from < bytes.length; from += CHUNK) out.push({ offset: e.offset + from, bytes: bytes.subarray(from, Math.min(bytes.length, from + CHUNK)) });
  }
  return out;
}

type Chunk = { offset: number; bytes: Buffer };

/** Chunks written one after another merged into runs: each its offset, end and parts. */
function runsOf(chunks: Chunk[]): Array<{ offset: number; end: number; parts: Buffer[] }> {
  const sorted = [...chunks].sort((a, b) => a.offset - b.offset);
  const runs: Array<{ offset: number; end: number; parts: Buffer[] }> = [];
  for (const c of sorted) {
    const last = runs[runs.length - 1];
    if (last && last.end === c.offset) {
      last.parts.push(c.bytes);
      last.end += c.bytes.length;
    } else runs.push({ offset: c.offset, parts: [c.bytes], end: c.offset + c.bytes.length });
  }
  return runs;
}

/** Whether two sets of writes (the simulator's and the image's) put the same bytes at the same places, runs merged; compared in place, no copy. */
export function sameRuns(a: Chunk[], b: Chunk[]): boolean {
  const x = runsOf(a);
  const y = runsOf(b);
  if (x.length !== y.length) return false;
  return x.every((r, i) => {
    const s = y[i]!;
    if (r.offset !== s.offset || r.end !== s.end) return false;
    // Walk both part lists together, comparing the overlapping pieces.
    let pi = 0, po = 0, qi = 0, qo = 0;
    while (pi < r.parts.length && qi < s.parts.length) {
      const p = r.parts[pi]!;
      const q = s.parts[qi]!;
      const n = Math.min(p.length - po, q.length - qo);
      if (!p.subarray(po, po + n).equals(q.subarray(qo, qo + n))) return false;
      po += n;
      qo += n;
      if (po === p.length) [pi, po] = [pi + 1, 0];
      if (qo === q.length) [qi, qo] = [qi + 1, 0];
    }
    return true;
  });
}
