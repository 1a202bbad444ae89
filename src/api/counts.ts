// The counts of an fd table, as every command's summary says them.
import type { FdTables } from '../model/fdtable.js';

export const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** Counts of an fd table, as the summaries say them. */
export interface TableCounts {
  fds: number;
  descriptions: number;
  pipes: number;
  /** bytes queued in all the pipes */
  pipeBytes: number;
}

export function tableCounts(table: FdTables): TableCounts {
  const pipeBytes = table.pipes.reduce((n, p) => n + p.data.length, 0);
  const fds = table.processes.reduce((n, p) => n + p.fds.length, 0);
  return { fds, descriptions: table.descs.length, pipes: table.pipes.length, pipeBytes };
}

/** `5 fds, 3 descriptions, 2 pipes holding 77 bytes` */
export const describeCounts = (c: TableCounts): string =>
  `${plural(c.fds, 'fd')}, ${plural(c.descriptions, 'description')}, ${plural(c.pipes, 'pipe')} holding ${plural(c.pipeBytes, 'byte')}`;

export const isPid = (n: number): boolean => Number.isSafeInteger(n) && n >= 1 && n <= 0x7fffffff;
