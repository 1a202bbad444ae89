// restore --map-path OLD=NEW: a file, FIFO or device the image opened by one path is now at
// another (a log rotated, a directory moved). Every path of the fd table equal to OLD, or under
// it when OLD is a directory, is rewritten before any check, so the new path is judged and opened
// like any other: refused if it leads into /proc, opened with the image author's rights
// (docs/trust.md). Also here: the warning for a file now shorter than the offset recorded, met
// when a file was truncated or rotated since the dump.
import { statSync } from 'node:fs';
import { posix } from 'node:path';
import { badInput } from '../errors.js';
import type { FdTable } from '../model/fdtable.js';
import { printable } from '../printable.js';

export interface PathMap {
  from: string;
  to: string;
}

const absolute = (path: string, what: string, flag: string): string => {
  if (!path.startsWith('/') || path.includes('\0')) badInput(`${flag}: ${what} ${JSON.stringify(path)} is not an absolute path`);
  return posix.normalize(path).replace(/(.)\/$/, '$1');
};

/** `OLD=NEW` (the first `=` splits), both absolute. */
export function parsePathMap(text: string, flag = '--map-path'): PathMap {
  const eq = text.indexOf('=');
  if (eq < 0) badInput(`${flag}: ${JSON.stringify(text)} is not OLD=NEW`);
  return { from: absolute(text.slice(0, eq), 'OLD', flag), to: absolute(text.slice(eq + 1), 'NEW', flag) };
}

/** path under maps: the longest OLD that is path or one of its directories wins; undefined when none. */
function mapped(path: string, maps: PathMap[]): { to: string; map: PathMap } | undefined {
  let best: PathMap | undefined;
  for (const m of maps) {
    const under = path === m.from || path.startsWith(m.from === '/' ? '/' : `${m.from}/`);
    if (under && (best === undefined || m.from.length > best.from.length)) best = m;
  }
  if (best === undefined) return undefined;
  return { to: best.from === '/' ? posix.join(best.to, path) : best.to + path.slice(best.from.length), map: best };
}

/**
 * Rewrite the table's paths in place (the table is this restore's own, read from its image);
 * returns one line per path changed. A map that changes nothing is refused: a mistyped OLD
 * would otherwise restore the old path quietly (a map shadowed by a longer one counts as unused).
 */
export function mapPaths(table: FdTable, maps: PathMap[]): string[] {
  const changed: string[] = [];
  const used = new Set<PathMap>();
  for (const d of table.descs) {
    if (!('path' in d)) continue;
    const m = mapped(d.path, maps);
    if (m === undefined) continue;
    used.add(m.map);
    changed.push(`${printable(d.path)} -> ${printable(m.to)}`);
    d.path = m.to;
  }
  const unused = maps.filter((m) => !used.has(m));
  if (unused.length > 0) badInput(`--map-path: the image opens no path at or under ${unused.map((m) => printable(m.from)).join(', ')}`);
  return changed;
}

/** A warning for each regular file now shorter than the offset the image recorded for it. */
export function shorterFiles(table: FdTable): string[] {
  const warnings: string[] = [];
  for (const d of table.descs) {
    if (d.kind !== 'file') continue;
    let size: number;
    try {
      size = statSync(d.path).size;
    } catch {
      continue; // gone or not cr's to see: the restore's open says so, with the author's rights
    }
    if (size >= d.offset) continue;
    const fds = table.fds.filter((f) => f.desc === d.id).map((f) => f.fd).sort((a, b) => a - b);
    warnings.push(
      `fd ${fds.join(', ')}: ${printable(d.path)} is now ${size} bytes, shorter than the offset ${d.offset} recorded; ` +
        'the restored offset lies past its end (a write there leaves a hole, a read finds nothing)',
    );
  }
  return warnings;
}
