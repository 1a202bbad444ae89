// The planner's input words (layout: assembly/table.ts `decode`). Each description goes in as
// its kind's creation class and flags (src/kinds/), never as its kind. Description and
// pipe ids become indices; limits are clamped to what an i32 holds (the kernel's
// nr_open is at most 2^30 anyway).

import { CLASS_INHERITED, DEFAULT_PIPE_CAPACITY, INPUT_VERSION, MODE_FRESH, MODE_INTO, MODE_INTO_EXACT, OBJECT_PACKETS, OBJECT_SOCKETPAIR } from '../abi.js';
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
  dataLength: number[];
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
 * every pass over them was cache misses, about half of the encode): ids, byte counts and the
 * descriptions on socket pairs are taken in one pass, the words in one more.
 */
export function encodeInput(table: FdTable, target: PlanTarget): Encoded {
  const { fds, descs, pipes } = table;
  const descIds: number[] = new Array(descs.length);
  /** indices of the descriptions on a socket pair (few kinds are) */
  const paired: number[] = [];
  for (let i = 0; i < descs.length; i++) {
    const d = descs[i]!;
    descIds[i] = d.id;
    if (pairOf(d) !== undefined) paired.push(i);
  }
  const pipeIds: number[] = new Array(pipes.length);
  const dataLength: number[] = new Array(pipes.length);
  for (let i = 0; i < pipes.length; i++) {
    const q = pipes[i]!;
    pipeIds[i] = q.id;
    dataLength[i] = q.data.length;
  }
  const descIndex = indexById(descIds);
  const pipeIndex = indexById(pipeIds);

  // Target fds that hold a description of the table already (a forked child's): those descriptions
  // are CLASS_INHERITED, whatever their kind.
  const held = new Map<number, { desc: number; cloexec: boolean }>();
  for (const h of target.inherited ?? []) {
    const desc = descIndex(h.desc);
    held.set(h.fd, { desc: desc < 0 ? -2 : desc, cloexec: h.cloexec });
  }
  const inherited = new Set<number>([...held.values()].map((h) => h.desc));
  // Socket pairs are objects after the pipes: the planner makes their two ends with one call.
  const pairIndex = new Map<number, number>();
  for (const i of paired) {
    const pair = inherited.has(i) ? undefined : pairOf(descs[i]!);
    if (pair !== undefined && !pairIndex.has(pair)) pairIndex.set(pair, pipes.length + pairIndex.size);
  }

  const nObjects = pipes.length + pairIndex.size;
  const n = 10 + fds.length * 3 + descs.length * 6 + nObjects * 3 + target.fds.length * 3;
  const words = new Int32Array(n);
  words.set([
    INPUT_VERSION, fds.length, descs.length, nObjects, target.fds.length,
    cap(table.rlimit.soft), cap(table.rlimit.hard), cap(target.rlimit.soft), cap(target.rlimit.hard),
    MODE_CODE[target.mode],
  ]);
  let p = 10;
  for (let i = 0; i < fds.length; i++) {
    const fd = fds[i]!;
    words[p++] = fd.fd;
    words[p++] = descIndex(fd.desc);
    words[p++] = fd.cloexec ? 1 : 0;
  }
  for (let i = 0; i < descs.length; i++) {
    const d = descs[i]!;
    if (inherited.has(i)) {
      words.set([CLASS_INHERITED, d.flags, -1, 0, 0, d.flags], p);
      p += 6;
      continue;
    }
    const c = kindOf(d).creation(d);
    words[p++] = c.cls;
    words[p++] = d.flags;
    const pipe = pipeOf(d);
    const pair = pairOf(d);
    words[p++] = pipe !== undefined ? pipeIndex(pipe) : pair !== undefined ? pairIndex.get(pair)! : -1;
    words[p++] = c.seek ? 1 : 0;
    words[p++] = c.callFlags;
    words[p++] = c.after;
  }
  for (let i = 0; i < pipes.length; i++) {
    const pipe = pipes[i]!;
    words[p++] = pipe.capacity;
    words[p++] = dataLength[i]!;
    words[p++] = pipe.packets && pipe.packets.length > 0 ? OBJECT_PACKETS : 0;
  }
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
  return { words, descIds, pipeIds, dataLength };
}
