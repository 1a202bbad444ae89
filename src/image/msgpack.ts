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
  const uint = (n: number): number => {
    let v = 0;
    for (let i = 0; i < n; i++) v = v * 256 + bytes[pos + i]!;
    pos += n;
    return v;
  };
  do {
    if (pos >= end) return 'truncated';
    const b = bytes[pos++]!;
    if (depth > 0) {
      if (isMap[depth - 1] === 1 && left[depth - 1]! % 2 === 0 && !((b >= 0xa0 && b <= 0xbf) || b === 0xd9 || b === 0xda || b === 0xdb)) {
        return 'a map key that is not a string';
      }
      left[depth - 1]!--;
    }
    cost += VALUE_COST;
    let skip = 0;
    let count = -1;
    let map = false;
    if (b <= 0x7f || b >= 0xe0 || b === 0xc0 || b === 0xc2 || b === 0xc3) {
      // fixint, nil, false, true: nothing more
    } else if (b <= 0x8f) {
      count = b & 0x0f;
      map = true;
    } else if (b <= 0x9f) {
      count = b & 0x0f;
    } else if (b <= 0xbf) {
      skip = b & 0x1f;
      cost += skip;
    } else {
      switch (b) {
        case 0xc4: case 0xc5: case 0xc6: // bin 8/16/32
        case 0xd9: case 0xda: case 0xdb: { // str 8/16/32
          const width = b <= 0xc6 ? 1 << (b - 0xc4) : 1 << (b - 0xd9);
          if (pos + width > end) return 'truncated';
          skip = uint(width);
          if (b >= 0xd9) cost += skip;
          break;
        }
        case 0xca: skip = 4; break; // float32
        case 0xcb: skip = 8; break; // float64
        case 0xcc: case 0xd0: skip = 1; break;
        case 0xcd: case 0xd1: skip = 2; break;
        case 0xce: case 0xd2: skip = 4; break;
        case 0xcf: case 0xd3: skip = 8; break;
        case 0xdc: case 0xdd: case 0xde: case 0xdf: { // array 16/32, map 16/32
          const width = b === 0xdc || b === 0xde ? 2 : 4;
          if (pos + width > end) return 'truncated';
          count = uint(width);
          map = b >= 0xde;
          break;
        }
        case 0xc7: case 0xc8: case 0xc9: case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8: {
          const type = b <= 0xc9 ? bytes[pos + (1 << (b - 0xc7))] : bytes[pos];
          return `a msgpack extension (type ${type === undefined ? '?' : `0x${type.toString(16)}`}); images are plain msgpack`;
        }
        default:
          return `the byte 0x${b.toString(16)}, which msgpack never uses`;
      }
    }
    if (pos + skip > end) return 'truncated';
    pos += skip;
    if (count >= 0) {
      const values = map ? 2 * count : count;
      // Every value takes at least one byte: a count the rest cannot hold is a lie.
      if (values > end - pos) return `a ${map ? 'map' : 'list'} of ${count} entries in ${end - pos} bytes`;
      cost += CONTAINER_COST;
      if (values > 0) {
        if (depth === MAX_DEPTH) return `nesting deeper than ${MAX_DEPTH}`;
        left[depth] = values;
        isMap[depth] = map ? 1 : 0;
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
