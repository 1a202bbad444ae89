// The one msgpack codec of images (fd-table envelope and payload, process-image head). Out:
// plain msgpack, readable by any msgpack reader. In: a checksum only says the bytes are the ones
// written, not that their writer meant well, so before msgpackr builds anything the bytes are
// walked once (boundedMsgpack) and refused if decoding them could cost more than they justify:
// any extension type (msgpackr's records, shared references, Sets, Errors, ...: an image has
// none, and a shared reference lets a few bytes stand for millions of values), a map key that is
// not a string, nesting deeper than an image ever goes, counts that the remaining bytes cannot
// hold, or a decoded size far out of proportion to the bytes (a million empty arrays in a
// megabyte). docs/image-format.md gives the limits.
// msgpackr's plain-JS entry ('msgpackr/pack' is its index.js for Node, Unpackr included): its
// main entry loads the native string extractor (msgpackr-extract) when imported, about 15 ms of
// every command's start-up, more than it saves decoding an image's metadata (about 10 ms per
// 600 KB of fd table).
import { Packr, Unpackr } from 'msgpackr/pack';

// useRecords: false keeps records out of what is written; structuredClone: false makes msgpackr
// refuse its id/pointer extensions even if the scan below were ever bypassed.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, structuredClone: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, structuredClone: false, moreTypes: false });

export const packMsgpack = (value: unknown): Buffer => packr.pack(value);

/** Deepest nesting of maps and lists accepted; an image goes 5 deep (payload.table.descs[i].path). */
export const MAX_DEPTH = 16;
/**
 * Heap a decoded value may cost, estimated as CONTAINER_COST per map or list, VALUE_COST per
 * value (keys included) and the bytes of each string: at most DECODE_FLOOR plus
 * DECODE_RATIO times the encoded size. Images cr writes estimate at 2-4 times their size.
 */
export const CONTAINER_COST = 32;
export const VALUE_COST = 8;
export const DECODE_FLOOR = 32 << 20;
export const DECODE_RATIO = 8;

// What the scan needs of a value's first byte, looked up rather than worked out by a chain of
// comparisons: the scan runs once per command over every value of an image's metadata (17,000
// for a table of 1,000 fds), mostly before V8 has optimised it, where each comparison costs.
const SCALAR = 0; // nil, booleans, numbers: AFTER[b] bytes follow
const FIXMAP = 1;
const FIXARRAY = 2;
const FIXSTR = 3;
const SIZED = 4; // bin 8/16/32, str 8/16/32: a length of 1, 2 or 4 bytes, then that many
const CONTAINER = 5; // array 16/32, map 16/32: a count of 2 or 4 bytes
const EXTENSION = 6;
const NEVER_USED = 7; // 0xc1
const KIND = new Uint8Array(256);
const AFTER = new Uint8Array(256);
/** 1 for the first bytes of a string: what a map key must start with */
const IS_STRING = new Uint8Array(256);
for (let b = 0; b < 256; b++) {
  if (b <= 0x7f || b >= 0xe0) KIND[b] = SCALAR;
  else if (b <= 0x8f) KIND[b] = FIXMAP;
  else if (b <= 0x9f) KIND[b] = FIXARRAY;
  else if (b <= 0xbf) KIND[b] = FIXSTR;
  else if ((b >= 0xc4 && b <= 0xc6) || (b >= 0xd9 && b <= 0xdb)) KIND[b] = SIZED;
  else if (b >= 0xdc && b <= 0xdf) KIND[b] = CONTAINER;
  else if ((b >= 0xc7 && b <= 0xc9) || (b >= 0xd4 && b <= 0xd8)) KIND[b] = EXTENSION;
  else if (b === 0xc1) KIND[b] = NEVER_USED;
  else KIND[b] = SCALAR; // 0xc0 nil, 0xc2/0xc3 booleans, 0xca-0xd3 numbers
  // float32 and (u)int32, float64 and (u)int64, (u)int8, (u)int16
  AFTER[b] = b === 0xca || b === 0xce || b === 0xd2 ? 4 : b === 0xcb || b === 0xcf || b === 0xd3 ? 8 : b === 0xcc || b === 0xd0 ? 1 : b === 0xcd || b === 0xd1 ? 2 : 0;
  IS_STRING[b] = (b >= 0xa0 && b <= 0xbf) || b === 0xd9 || b === 0xda || b === 0xdb ? 1 : 0;
}

/** The big-endian unsigned integer of width 1, 2 or 4 at bytes[pos]. */
const uintAt = (bytes: Uint8Array, pos: number, width: number): number =>
  width === 1 ? bytes[pos]! : width === 2 ? (bytes[pos]! << 8) | bytes[pos + 1]! : bytes[pos]! * 0x1000000 + ((bytes[pos + 1]! << 16) | (bytes[pos + 2]! << 8) | bytes[pos + 3]!);

/** Why bytes must not be decoded, or null when decoding them is bounded. */
export function msgpackProblem(bytes: Uint8Array): string | null {
  const budget = DECODE_FLOOR + DECODE_RATIO * bytes.length;
  const end = bytes.length;
  // Values still to read in each open map or list (a map counts 2 per entry: a value read when
  // its map's count is even is a key), and whether it is a map.
  const left = new Float64Array(MAX_DEPTH);
  const isMap = new Uint8Array(MAX_DEPTH);
  let depth = 0;
  let cost = 0;
  let pos = 0;
  do {
    if (pos >= end) return 'truncated';
    const b = bytes[pos++]!;
    if (depth > 0) {
      const d = depth - 1;
      const n = left[d]!;
      if (isMap[d] === 1 && n % 2 === 0 && IS_STRING[b] === 0) return 'a map key that is not a string';
      left[d] = n - 1;
    }
    cost += VALUE_COST;
    let skip = 0;
    let count = -1;
    let map = 0;
    switch (KIND[b]) {
      case SCALAR:
        skip = AFTER[b]!;
        break;
      case FIXSTR:
        skip = b & 0x1f;
        cost += skip;
        break;
      case FIXMAP:
        count = b & 0x0f;
        map = 1;
        break;
      case FIXARRAY:
        count = b & 0x0f;
        break;
      case SIZED: {
        const width = b <= 0xc6 ? 1 << (b - 0xc4) : 1 << (b - 0xd9);
        if (pos + width > end) return 'truncated';
        skip = uintAt(bytes, pos, width);
        pos += width;
        if (b >= 0xd9) cost += skip;
        break;
      }
      case CONTAINER: {
        const width = b === 0xdc || b === 0xde ? 2 : 4;
        if (pos + width > end) return 'truncated';
        count = uintAt(bytes, pos, width);
        pos += width;
        map = b >= 0xde ? 1 : 0;
        break;
      }
      case EXTENSION: {
        const type = b <= 0xc9 ? bytes[pos + (1 << (b - 0xc7))] : bytes[pos];
        return `a msgpack extension (type ${type === undefined ? '?' : `0x${type.toString(16)}`}); images are plain msgpack`;
      }
      default:
        return `the byte 0x${b.toString(16)}, which msgpack never uses`;
    }
    if (pos + skip > end) return 'truncated';
    pos += skip;
    if (count >= 0) {
      const values = map === 1 ? 2 * count : count;
      // Every value takes at least one byte: a count the rest cannot hold is a lie.
      if (values > end - pos) return `a ${map === 1 ? 'map' : 'list'} of ${count} entries in ${end - pos} bytes`;
      cost += CONTAINER_COST;
      if (values > 0) {
        if (depth === MAX_DEPTH) return `nesting deeper than ${MAX_DEPTH}`;
        left[depth] = values;
        isMap[depth] = map;
        depth++;
      }
    }
    if (cost > budget) {
      return `it would decode to over ${mib(budget)} (${mib(DECODE_FLOOR)} + ${DECODE_RATIO} x its ${bytes.length} bytes): too many values for its size`;
    }
    while (depth > 0 && left[depth - 1] === 0) depth--;
  } while (depth > 0);
  return null;
}

const mib = (n: number): string => `${Math.round(n / (1 << 20))} MiB`;

/**
 * Decode bytes holding one msgpack value, once msgpackProblem has found nothing; otherwise (or
 * if msgpackr fails) return `{ problem }`.
 */
export function unpackBounded(bytes: Uint8Array): { value: unknown } | { problem: string } {
  const problem = msgpackProblem(bytes);
  if (problem !== null) return { problem };
  try {
    return { value: unpackr.unpack(bytes) };
  } catch (err) {
    return { problem: `undecodable msgpack (${(err as Error).message.split('\n')[0]})` };
  }
}
