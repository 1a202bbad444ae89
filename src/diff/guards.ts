// Guard regions (MADV_GUARD_INSTALL) of two whole-process images compared: they are part of the
// process's memory (touching one faults), so two images that differ only there are not the same.
// Ranges are compared by address, adjacent ones joined: where a mapping boundary falls does not
// change which pages fault.
import { PAGE_SIZE } from '../image/process-format.js';
import { guardRegions, type Mapping } from '../image/process-head.js';

const describe = (start: number, end: number): string => {
  const pages = (end - start) / PAGE_SIZE;
  return `${start.toString(16)}-${end.toString(16)} (${pages} page${pages === 1 ? '' : 's'})`;
};

/** One line per stretch of pages guarded in one image and not in the other; empty when alike. */
export function compareGuards(mappingsA: Mapping[], mappingsB: Mapping[]): string[] {
  const a = guardRegions(mappingsA);
  const b = guardRegions(mappingsB);
  // Every address where either side starts or ends a guard: each stretch between two cuts is
  // wholly guarded or wholly not, on each side.
  const cuts = [...new Set([...a, ...b].flatMap((g) => [g.start, g.end]))].sort((x, y) => x - y);
  const only: Array<{ start: number; end: number; side: 'A' | 'B' }> = [];
  let ia = 0;
  let ib = 0;
  for (let i = 0; i + 1 < cuts.length; i++) {
    const start = cuts[i]!;
    const end = cuts[i + 1]!;
    while (ia < a.length && a[ia]!.end <= start) ia++;
    while (ib < b.length && b[ib]!.end <= start) ib++;
    const inA = ia < a.length && a[ia]!.start <= start;
    const inB = ib < b.length && b[ib]!.start <= start;
    if (inA === inB) continue;
    const side = inA ? 'A' : 'B';
    const last = only[only.length - 1];
    if (last && last.end === start && last.side === side) last.end = end;
    else only.push({ start, end, side });
  }
  return only.map((o) => `guard region ${describe(o.start, o.end)}: only in ${o.side}`);
}
