// aio contexts (io_setup) as a dump sees them: each is a ring the kernel maps shared into the
// process (/[aio] (deleted)), its address the context id the program passes to io_submit. The
// ring's header (struct aio_ring, fs/aio.c) tells how many events it holds (nr) and which of them
// completed and are not yet reaped (head != tail): those cannot be put back, so such a ring is
// refused, as is one not whole (part of it moved or unmapped) and one another process maps too (a
// copy inherited across fork: the context is one process's, and cr cannot tell whose). Requests
// still in progress are not visible outside the kernel (docs/state.md).
import { closeSync, openSync, readdirSync, readSync } from 'node:fs';
import { AIO_HEADER_BYTES, ringEvents } from '../image/process-head.js';
import { readProc } from '../proc/read.js';
import { parseSmaps, type RawMapping } from '../proc/smaps.js';

export const AIO_NAME = '/[aio] (deleted)';
const AIO_RING_MAGIC = 0xa10a10a1;
const AIO_RING_COMPAT_FEATURES = 1;
const AIO_RING_INCOMPAT_FEATURES = 0;

export const isAioRing = (r: RawMapping): boolean => r.perms[3] === 's' && r.name === AIO_NAME;

const range = (r: RawMapping): string => `${r.start.toString(16)}-${r.end.toString(16)}`;

/** Why each aio ring of frozen process pid (its smaps `raw`) cannot be carried. */
export function aioRefusals(pid: number, raw: readonly RawMapping[]): string[] {
  const rings = raw.filter(isAioRing);
  if (rings.length === 0) return [];
  const reasons: string[] = [];
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  try {
    for (const r of rings) {
      const why = (text: string): number => reasons.push(`mapping ${range(r)} ${AIO_NAME}: an aio ring (io_setup) ${text}`);
      const h = Buffer.alloc(AIO_HEADER_BYTES);
      let got = 0;
      try {
        got = readSync(fd, h, 0, h.length, r.start);
      } catch {
        // Its pages went with its context: a copy inherited across fork from a process since gone.
        why('whose context is gone (a copy inherited across fork), which cr cannot carry');
        continue;
      }
      if (r.offset !== 0 || got !== h.length) {
        why('not whole (part of it moved or unmapped), which cr cannot carry');
        continue;
      }
      const [nr, head, tail, magic, compat, incompat, length] = [4, 8, 12, 16, 20, 24, 28].map((at) => h.readUInt32LE(at)) as [number, number, number, number, number, number, number];
      if (magic !== AIO_RING_MAGIC || compat !== AIO_RING_COMPAT_FEATURES || incompat !== AIO_RING_INCOMPAT_FEATURES || length !== AIO_HEADER_BYTES) why('of a layout cr does not know');
      else if (nr !== ringEvents(r.end - r.start)) why('not whole (part of it moved or unmapped), which cr cannot carry');
      else if (head !== tail) why(`with ${(tail - head + nr) % nr} completed events not yet reaped (io_getevents), which cr cannot carry`);
    }
  } finally {
    closeSync(fd);
  }
  // Another process's mapping of the same ring (its inode): a copy made by fork.
  const ours = new Map(rings.map((r) => [`${r.dev}:${r.ino}`, r]));
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === pid) continue;
    let maps: string;
    try {
      maps = readProc(`/proc/${entry}/maps`);
    } catch {
      continue; // gone, or not cr's to read
    }
    if (!maps.includes(AIO_NAME)) continue;
    for (const o of parseSmaps(maps)) {
      const r = ours.get(`${o.dev}:${o.ino}`);
      if (r && o.name === AIO_NAME) reasons.push(`mapping ${range(r)} ${AIO_NAME}: an aio ring that pid ${entry} maps too (a copy inherited across fork: the context is one process's), which cr cannot carry`);
    }
  }
  return reasons;
}
