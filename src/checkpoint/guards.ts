// The guard regions of a frozen process (madvise MADV_GUARD_INSTALL, Linux 6.13+): page-table
// markers, not mappings, so smaps does not list them and reading one through /proc/PID/mem fails
// with EIO. They are found without touching them, with one PAGEMAP_SCAN over the process's
// mappings (PAGE_IS_GUARD), and given to the mappings that hold them.
import { closeSync, openSync } from 'node:fs';
import { scanGuards } from '../../bridge/pagemap.js';
import { CrError } from '../errors.js';
import { GUARDED_KINDS, type AddressRange, type Mapping } from '../image/process-head.js';
import { printable } from '../printable.js';

const hex = (n: number): string => n.toString(16);

/**
 * The mappings with their guard regions filled in. `known` is false on a kernel that cannot
 * report guard regions (before 6.15): then none are recorded, and a guard page the page copy
 * meets is refused there (pages.ts).
 */
export function withGuards(pid: number, mappings: Mapping[]): { mappings: Mapping[]; known: boolean } {
  if (mappings.length === 0) return { mappings, known: true };
  const fd = openSync(`/proc/${pid}/pagemap`, 'r');
  let found: AddressRange[] | null;
  try {
    found = scanGuards(fd, mappings[0]!.start, mappings[mappings.length - 1]!.end);
  } finally {
    closeSync(fd);
  }
  if (found === null) return { mappings, known: false };
  const out = mappings.map((m) => ({ ...m, guards: [] as AddressRange[] }));
  let i = 0;
  for (const g of found) {
    // A scanned range may span two adjacent mappings: split it at their boundary.
    let from = g.start;
    while (from < g.end) {
      while (i < out.length && out[i]!.end <= from) i++;
      const m = out[i];
      if (!m || m.start > from) throw new CrError(`a guard region at ${hex(from)} lies outside every mapping cr records`);
      if (!GUARDED_KINDS.includes(m.kind)) throw new CrError(`mapping ${hex(m.start)}-${hex(m.end)} ${printable(m.name)}: guard regions in a ${m.kind} mapping are not supported`);
      const to = Math.min(g.end, m.end);
      m.guards.push({ start: from, end: to });
      from = to;
    }
  }
  return { mappings: out, known: true };
}
