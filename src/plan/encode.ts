// The planner's input words (layout: assembly/table.ts `decode`). Each description goes in as
// its kind's creation class and flags (src/kinds/), never as its kind. Description and
// pipe ids become indices; limits are clamped to what an i32 holds (the kernel's
// nr_open is at most 2^30 anyway).

import { CLASS_INHERITED, CLASS_PATH, CLASS_RENDEZVOUS, CLASS_SINGLE, DEFAULT_PIPE_CAPACITY, INPUT_VERSION, MODE_FRESH, MODE_INTO, MODE_INTO_EXACT, OBJECT_PACKETS, OBJECT_SOCKETPAIR } from '../abi.js';
import { kindOf } from '../kinds/registry.js';
import { pairOf, pipeOf, type FdTable } from '../model/fdtable.js';
import type { PlanTarget, TargetMode } from '../model/restore-target.js';

const LIMIT_CAP = 2 ** 30;
const MODE_CODE: Record<TargetMode, number> = { fresh: MODE_FRESH, into: MODE_INTO, 'into-exact': MODE_INTO_EXACT };

export interface Encoded {
  words: Int32Array;
  /** index -> id, to turn the plan's indices back into the table's ids */
  descIds: number[];
  pipeIds: number[];
  /** every id is its index (as a dump numbers them): the plan's indices need no mapping */
  idsAreIndices: boolean;
  /** a description whose creation has a text (a path, an offset, its kind's call): src/plan/decode.ts */
  anyText: boolean;
  /** a description's kind makes links (an epoll's items: src/plan/links.ts) */
  anyLinks: boolean;
  /** a description's kind prepares an object first (a pty: src/plan/ptys.ts) */
  anyPrepare: boolean;
}

const cap = (n: number) => Math.min(Math.max(0, Math.floor(n)), LIMIT_CAP);

/**
 * id -> index in `ids` (-1 for none). Dumps number descriptions and pipes from 0 up, so the ids
 * are looked up in a typed array by id (a Map's hashing per fd cost more than the rest of the
 * encode at 100,000 fds); ids that are not small non-negative integers take a Map.
 */
function indexById(ids: readonly number[]): (id: number) => number {
  let highest = -1;
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id > 4 * ids.length + 64) {
      const map = new Map<number, number>();
      ids.forEach((x, i) => map.set(x, i));
      return (key) => map.get(key) ?? -1;
    }
    if (id > highest) highest = id;
  }
  const byId = new Int32Array(highest + 1).fill(-1);
  ids.forEach((x, i) => (byId[x] = i));
  return (key) => byId[key] ?? -1;
}

/**
 * Each array of the table is read once (its objects lie scattered over the heap: at 1,000,000 fds
 * every pass over them was cache misses, most of the encode): the pipes' ids and words together,
 * then the descriptions', then the fds. A description's words are written before the table's ids
 * are all known, as if it were not inherited and on no socket pair; the few that are (a forked
 * child's inherited descriptions, socket pair ends) are written again once they are.
 *
 * `into(n)`: where the n words go, the planner's own input buffer (no fresh array of 27 MB at
 * 1,000,000 fds, faulted in and collected at every plan, and no copy). Every word is written. A
 * table with socket pairs needs more words than it gave (the pairs are objects of their own, known
 * only after the descriptions): those go to an array of encode's, `words` then not `into`'s.
 */
export function encodeInput(table: FdTable, target: PlanTarget, into?: (n: number) => Int32Array): Encoded {
  const { fds, descs, pipes } = table;
  const fdsAt = 10;
  const descsAt = fdsAt + fds.length * 3;
  const objectsAt = descsAt + descs.length * 6;
  const length = objectsAt + pipes.length * 3 + target.fds.length * 3;
  let words = into ? into(length) : new Int32Array(length);
  const pipeIds: number[] = new Array(pipes.length);
  let idsAreIndices = true;
  let anyText = false;
  let p = objectsAt;
  for (let i = 0; i < pipes.length; i++) {
    const q = pipes[i]!;
    pipeIds[i] = q.id;
    if (q.id !== i) idsAreIndices = false;
    words[p++] = q.capacity;
    words[p++] = q.data.length;
    words[p++] = q.packets && q.packets.length > 0 ? OBJECT_PACKETS : 0;
  }
  const pipeIndex = indexById(pipeIds);

  const descIds: number[] = new Array(descs.length);
  /** indices of the descriptions on a socket pair (few kinds are) */
  const paired: number[] = [];
  let anyLinks = false;
  let anyPrepare = false;
  let lastKind: unknown;
  p = descsAt;
  for (let i = 0; i < descs.length; i++) {
    const d = descs[i]!;
    descIds[i] = d.id;
    if (d.id !== i) idsAreIndices = false;
    const kind = kindOf(d);
    if (kind !== lastKind) {
      lastKind = kind;
      if (kind.links !== undefined) anyLinks = true;
      if (kind.prepare !== undefined) anyPrepare = true;
    }
    const c = kind.creation(d);
    const pipe = pipeOf(d);
    if (pairOf(d) !== undefined) {
      paired.push(i);
      anyText = true;
    }
    if (c.seek || c.cls === CLASS_PATH || c.cls === CLASS_RENDEZVOUS || c.cls === CLASS_SINGLE) anyText = true;
    words[p] = c.cls;
    words[p + 1] = d.flags;
    words[p + 2] = pipe !== undefined ? pipeIndex(pipe) : -1;
    words[p + 3] = c.seek ? 1 : 0;
    words[p + 4] = c.callFlags;
    words[p + 5] = c.after;
    p += 6;
  }
  const descIndex = indexById(descIds);

  // Target fds that hold a description of the table already (a forked child's): those descriptions
  // are CLASS_INHERITED, whatever their kind.
  const held = new Map<number, { desc: number; cloexec: boolean }>();
  for (const h of target.inherited ?? []) {
    const desc = descIndex(h.desc);
    held.set(h.fd, { desc: desc < 0 ? -2 : desc, cloexec: h.cloexec });
  }
  const inherited = new Set<number>([...held.values()].map((h) => h.desc));
  for (const i of inherited) {
    if (i < 0) continue;
    const flags = descs[i]!.flags;
    words.set([CLASS_INHERITED, flags, -1, 0, 0, flags], descsAt + i * 6);
  }
  // Socket pairs are objects after the pipes: the planner makes their two ends with one call.
  const pairIndex = new Map<number, number>();
  for (const i of paired) {
    if (inherited.has(i)) continue;
    const d = descs[i]!;
    const pair = pairOf(d)!;
    if (!pairIndex.has(pair)) pairIndex.set(pair, pipes.length + pairIndex.size);
    if (pipeOf(d) === undefined) words[descsAt + i * 6 + 2] = pairIndex.get(pair)!;
  }
  if (pairIndex.size > 0) {
    const more = new Int32Array(words.length + pairIndex.size * 3);
    more.set(words.subarray(0, objectsAt + pipes.length * 3));
    words = more;
  }

  const nObjects = pipes.length + pairIndex.size;
  words[0] = INPUT_VERSION;
  words[1] = fds.length;
  words[2] = descs.length;
  words[3] = nObjects;
  words[4] = target.fds.length;
  words[5] = cap(table.rlimit.soft);
  words[6] = cap(table.rlimit.hard);
  words[7] = cap(target.rlimit.soft);
  words[8] = cap(target.rlimit.hard);
  words[9] = MODE_CODE[target.mode];
  p = fdsAt;
  for (let i = 0; i < fds.length; i++) {
    const fd = fds[i]!;
    words[p++] = fd.fd;
    words[p++] = descIndex(fd.desc);
    words[p++] = fd.cloexec ? 1 : 0;
  }
  p = objectsAt + pipes.length * 3;
  for (let i = 0; i < pairIndex.size; i++) {
    words[p++] = DEFAULT_PIPE_CAPACITY;
    words[p++] = 0;
    words[p++] = OBJECT_SOCKETPAIR;
  }
  for (const fd of target.fds) {
    const h = held.get(fd);
    words[p++] = fd;
    words[p++] = h === undefined ? -1 : h.desc;
    words[p++] = h?.cloexec ? 1 : 0;
  }
  return { words, descIds, pipeIds, idsAreIndices, anyText, anyLinks, anyPrepare };
}
