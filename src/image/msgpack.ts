// The one msgpack codec of images (fd-table envelope and payload, process-image head). Out:
// plain msgpack, readable by any msgpack reader, the bytes msgpackr writes (by packParts below,
// msgpackr itself for what packParts does not write). In: a checksum only says the
// bytes are the ones written, not that their writer meant well, so the bytes are decoded here by
// one walk that refuses, as it meets them, what could cost more to decode than the bytes justify:
// any extension type (msgpackr's records, shared references, Sets, Errors, ...: an image has
// none, and a shared reference lets a few bytes stand for millions of values), a map key that is
// not a string, nesting deeper than an image ever goes, counts that the remaining bytes cannot
// hold, or a decoded size far out of proportion to the bytes (a million empty arrays in a
// megabyte). docs/image-format.md gives the limits.
// msgpackr writes only what packParts does not, which no image cr makes holds: it is required
// the first time a value needs it, not imported, so that no command's bundle holds it (81 KB of
// source, its code cache and its modules' top levels in every restore and dump; its ESM entry
// for Node is index.js, which imports unpack.js too). Required, its entry for Node is the
// CommonJS build, which tries to load the native string extractor (msgpackr-extract): that cost
// is paid only then.
import { createRequire } from 'node:module';
import type { Packr } from 'msgpackr/pack';

let packr: Packr | undefined;

/** msgpackr's packer; useRecords: false keeps records out of what is written. */
function msgpackr(): Packr {
  if (packr === undefined) {
    const { Packr } = createRequire(import.meta.url)('msgpackr/pack') as typeof import('msgpackr/pack');
    packr = new Packr({ useRecords: false, mapsAsObjects: true, structuredClone: false });
  }
  return packr;
}

/**
 * msgpack of value, byte for byte what msgpackr's pack (with the options above) writes. The values
 * an image is made of (plain objects, arrays, strings, numbers, booleans, null, Buffers) are
 * written by packParts; anything else (undefined, a Map, a class's instance, a bigint, an object
 * of 65,536 keys or more) by msgpackr itself, the whole value again.
 */
export function packMsgpack(value: unknown): Buffer {
  const parts = packParts(value);
  if (parts === null) return msgpackr().pack(value);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/**
 * Bytes already msgpack-encoded (or any bytes), written as one bin of their total length: a
 * payload packed by packParts, in its parts, without joining them first.
 */
export class BinParts {
  constructor(readonly parts: readonly Uint8Array[]) {}
}

/**
 * packMsgpack's bytes as a list of parts, in order, or null where msgpackr must write them. A
 * bin of PART_MIN bytes or more is not copied: its Uint8Array is a part of its own (unchanged until
 * the parts are written), so that an fd table's pipe bytes go from where the dump read them
 * straight to the file. A BinParts is written as its parts.
 *
 * Why not msgpackr: a dump encodes its fd table once, in a fresh process, before V8 has optimised
 * anything; msgpackr's pack (one function for every type and option) then costs about 0.5 µs a
 * value, and it copies every bin into its buffer and the payload into the envelope's, fresh memory
 * each (docs/performance.md). This one writes each map key's bytes once per name (a cache) and
 * copies no large bin. What it writes mirrors msgpackr's choices: every plain object a map16 of
 * its own enumerable keys in for-in order, arrays by length (fixarray, array16, array32), integers
 * in the fewest bytes (positive fixint below 0x80, as msgpackr writes them without records), other
 * numbers as float64, strings by their UTF-8 length (msgpackr's own encoding below 64 chars, which
 * writes a lone surrogate as three bytes; Buffer's above it), Buffers and Uint8Arrays as bin.
 */
export function packParts(value: unknown): Buffer[] | null {
  parts = [];
  out = Buffer.allocUnsafe(CHUNK_BYTES);
  outView = new DataView(out.buffer, out.byteOffset, out.length);
  from = at = 0;
  try {
    write(value);
    flush();
    return parts;
  } catch (err) {
    if (err === NOT_OURS) return null;
    throw err;
  } finally {
    parts = [];
    out = EMPTY;
  }
}

/** A bin this long or longer is a part of its own, not copied. */
const PART_MIN = 1024;
/** Each buffer the encoder writes into: a full one is a part, and the next one fresh (no copy). */
const CHUNK_BYTES = 64 * 1024;
const EMPTY = Buffer.alloc(0);
/** Thrown where a value is none packParts writes: msgpackr writes the whole value instead. */
const NOT_OURS = new Error('not a value packParts writes');
let parts: Buffer[] = [];
let out: Buffer = EMPTY;
let outView: DataView<ArrayBufferLike> = new DataView(new ArrayBuffer(0));
/** Where in out the bytes not yet in parts start, and where the next byte goes. */
let from = 0;
let at = 0;
/** Each map key's msgpack bytes, made once per name. */
const keys = new Map<string, Buffer>();

/** out's bytes written since the last part, as a part. */
function flush(): void {
  if (at > from) parts.push(out.subarray(from, at));
  from = at;
}

/** Room for n more bytes in out: a full buffer is left as it is, its bytes a part, and a fresh one taken. */
function need(n: number): void {
  if (at + n <= out.length) return;
  flush();
  out = Buffer.allocUnsafe(Math.max(CHUNK_BYTES, n));
  outView = new DataView(out.buffer, out.byteOffset, out.length);
  from = at = 0;
}

function write(value: unknown): void {
  switch (typeof value) {
    case 'string':
      writeString(value);
      return;
    case 'number':
      writeNumber(value);
      return;
    case 'boolean':
      need(1);
      out[at++] = value ? 0xc3 : 0xc2;
      return;
    case 'object':
      if (value === null) {
        need(1);
        out[at++] = 0xc0;
        return;
      }
      break;
    default:
      throw NOT_OURS;
  }
  const c = (value as object).constructor;
  if (c === Object) writeMap(value as Record<string, unknown>);
  else if (c === Array) writeArray(value as unknown[]);
  else if (c === Buffer || c === Uint8Array || c === BinParts) writeBin(value as Uint8Array | BinParts);
  else throw NOT_OURS;
}

function writeMap(o: Record<string, unknown>): void {
  // msgpackr: always a map16, its size filled in after its entries (for-in, own keys only).
  need(3);
  out[at] = 0xde;
  // Its size goes where its header is, whichever buffer the encoder writes into by then.
  const header = out;
  const sizeAt = at + 1;
  at += 3;
  let size = 0;
  for (const key in o) {
    // As msgpackr asks: the object's own hasOwnProperty.
    if (typeof o.hasOwnProperty !== 'function' || o.hasOwnProperty(key)) {
      let bytes = keys.get(key);
      if (bytes === undefined) {
        // Room first (writeString's own need then takes no fresh buffer): start must be where its bytes go.
        need(key.length * 3 + 5);
        const start = at;
        writeString(key);
        keys.set(key, (bytes = Buffer.from(out.subarray(start, at))));
      } else {
        need(bytes.length);
        out.set(bytes, at);
        at += bytes.length;
      }
      write(o[key]);
      size++;
    }
  }
  if (size > 0xffff) throw NOT_OURS;
  header[sizeAt] = size >> 8;
  header[sizeAt + 1] = size & 0xff;
}

function writeArray(a: unknown[]): void {
  const n = a.length;
  need(5);
  if (n < 0x10) out[at++] = 0x90 | n;
  else if (n < 0x10000) {
    out[at++] = 0xdc;
    out[at++] = n >> 8;
    out[at++] = n & 0xff;
  } else {
    out[at++] = 0xdd;
    outView.setUint32(at, n);
    at += 4;
  }
  for (let i = 0; i < n; i++) write(a[i]);
}

function writeBin(b: Uint8Array | BinParts): void {
  const n = b instanceof BinParts ? b.parts.reduce((sum, p) => sum + p.byteLength, 0) : b.byteLength;
  need(5);
  if (n < 0x100) {
    out[at++] = 0xc4;
    out[at++] = n;
  } else if (n < 0x10000) {
    out[at++] = 0xc5;
    out[at++] = n >> 8;
    out[at++] = n & 0xff;
  } else {
    out[at++] = 0xc6;
    outView.setUint32(at, n);
    at += 4;
  }
  if (b instanceof BinParts || n >= PART_MIN) {
    flush();
    for (const p of b instanceof BinParts ? b.parts : [b]) parts.push(Buffer.from(p.buffer, p.byteOffset, p.byteLength));
    return;
  }
  need(n);
  out.set(b, at);
  at += n;
}

function writeNumber(v: number): void {
  need(9);
  if (v >>> 0 === v) {
    if (v < 0x80) out[at++] = v;
    else if (v < 0x100) {
      out[at++] = 0xcc;
      out[at++] = v;
    } else if (v < 0x10000) {
      out[at++] = 0xcd;
      out[at++] = v >> 8;
      out[at++] = v & 0xff;
    } else {
      out[at++] = 0xce;
      outView.setUint32(at, v);
      at += 4;
    }
  } else if (v >> 0 === v) {
    if (v >= -0x20) out[at++] = 0x100 + v;
    else if (v >= -0x80) {
      out[at++] = 0xd0;
      out[at++] = v + 0x100;
    } else if (v >= -0x8000) {
      out[at++] = 0xd1;
      outView.setInt16(at, v);
      at += 2;
    } else {
      out[at++] = 0xd2;
      outView.setInt32(at, v);
      at += 4;
    }
  } else {
    out[at++] = 0xcb;
    outView.setFloat64(at, v);
    at += 8;
  }
}

function writeString(s: string): void {
  const n = s.length;
  // The header's size guessed from the length in chars, the bytes written after it, and moved
  // when their UTF-8 length needs a longer header (as msgpackr does).
  const header = n < 0x20 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 5;
  need(n * 3 + 5);
  let p = at + header;
  if (n < 0x40) {
    for (let i = 0; i < n; i++) {
      let c = s.charCodeAt(i);
      if (c < 0x80) out[p++] = c;
      else if (c < 0x800) {
        out[p++] = (c >> 6) | 0xc0;
        out[p++] = (c & 0x3f) | 0x80;
      } else {
        const d = (c & 0xfc00) === 0xd800 ? s.charCodeAt(i + 1) : 0;
        if ((d & 0xfc00) === 0xdc00) {
          c = 0x10000 + ((c & 0x03ff) << 10) + (d & 0x03ff);
          i++;
          out[p++] = (c >> 18) | 0xf0;
          out[p++] = ((c >> 12) & 0x3f) | 0x80;
          out[p++] = ((c >> 6) & 0x3f) | 0x80;
          out[p++] = (c & 0x3f) | 0x80;
        } else {
          out[p++] = (c >> 12) | 0xe0;
          out[p++] = ((c >> 6) & 0x3f) | 0x80;
          out[p++] = (c & 0x3f) | 0x80;
        }
      }
    }
  } else {
    p += out.write(s, p, out.length - p, 'utf8');
  }
  const len = p - at - header;
  if (len < 0x20) out[at++] = 0xa0 | len;
  else if (len < 0x100) {
    if (header < 2) out.copyWithin(at + 2, at + 1, at + 1 + len);
    out[at++] = 0xd9;
    out[at++] = len;
  } else if (len < 0x10000) {
    if (header < 3) out.copyWithin(at + 3, at + 2, at + 2 + len);
    out[at++] = 0xda;
    out[at++] = len >> 8;
    out[at++] = len & 0xff;
  } else {
    if (header < 5) out.copyWithin(at + 5, at + 3, at + 3 + len);
    out[at++] = 0xdb;
    outView.setUint32(at, len);
    at += 4;
  }
  at += len;
}

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

// What the walk needs of a value's first byte, looked up rather than worked out by a chain of
// comparisons: it runs once per command over every value of an image's metadata (17,000 for a
// table of 1,000 fds), mostly before V8 has optimised it, where each comparison costs.
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

/** Why a value must not be decoded: thrown by the walk below, caught by unpackBounded. */
class Refused {
  constructor(readonly problem: string) {}
}

// Buffer's own UTF-8 decoder of a range (what toString('utf8', start, end) calls after checking
// its arguments and looking the encoding up: that costs more than the decoding of a short key,
// about 3.5 ms over the dense table's 10,000 keys in a fresh node). Not in Node's typings.
const bufferUtf8 = (Buffer.prototype as unknown as { utf8Slice?: (this: Buffer, start: number, end: number) => string }).utf8Slice;
const utf8 = (b: Buffer, start: number, end: number): string => (bufferUtf8 !== undefined ? bufferUtf8.call(b, start, end) : b.toString('utf8', start, end));

// The walk's state: one value is decoded at a time, start to end, by one call of unpackBounded.
let src: Buffer = Buffer.alloc(0);
let view = new DataView(src.buffer, 0, 0);
let pos = 0;
let end = 0;
let cost = 0;
let budget = 0;

const truncated = (): never => {
  throw new Refused('truncated');
};

/** The length or count of width 1, 2 or 4 after a value's first byte, past it. */
function sizeAfter(width: number): number {
  if (pos + width > end) truncated();
  const n = width === 1 ? src[pos]! : width === 2 ? view.getUint16(pos) : view.getUint32(pos);
  pos += width;
  return n;
}

/**
 * The value at pos, inside `depth` open maps and lists (`key`: a map's key, which must be a
 * string). Every check is made as each value is met, in the order of the bytes, and so is every
 * problem found: the first one refuses the whole.
 */
function value(depth: number, key: boolean): unknown {
  if (pos >= end) truncated();
  const b = src[pos++]!;
  if (key && IS_STRING[b] === 0) throw new Refused('a map key that is not a string');
  cost += VALUE_COST;
  let out: unknown;
  switch (KIND[b]) {
    case SCALAR: {
      const after = AFTER[b]!;
      if (pos + after > end) truncated();
      out = scalar(b);
      pos += after;
      break;
    }
    case FIXSTR: {
      const n = b & 0x1f;
      cost += n;
      if (pos + n > end) truncated();
      out = utf8(src, pos, (pos += n));
      break;
    }
    case FIXMAP:
      return map(b & 0x0f, depth);
    case FIXARRAY:
      return list(b & 0x0f, depth);
    case SIZED: {
      const n = b <= 0xc6 ? sizeAfter(1 << (b - 0xc4)) : sizeAfter(1 << (b - 0xd9));
      if (pos + n > end) truncated();
      if (b >= 0xd9) {
        cost += n;
        out = utf8(src, pos, (pos += n));
      } else {
        // bin: a view of the bytes, as msgpackr gave (pipe bytes are held so, not copied)
        out = src.subarray(pos, (pos += n));
      }
      break;
    }
    case CONTAINER: {
      const n = sizeAfter(b === 0xdc || b === 0xde ? 2 : 4);
      return b >= 0xde ? map(n, depth) : list(n, depth);
    }
    case EXTENSION: {
      const type = b <= 0xc9 ? src[pos + (1 << (b - 0xc7))] : src[pos];
      throw new Refused(`a msgpack extension (type ${type === undefined ? '?' : `0x${type.toString(16)}`}); images are plain msgpack`);
    }
    default:
      throw new Refused(`the byte 0x${b.toString(16)}, which msgpack never uses`);
  }
  overBudget();
  return out;
}

/** The number, nil or boolean a SCALAR first byte starts (its bytes after it are there). */
function scalar(b: number): unknown {
  if (b <= 0x7f) return b;
  if (b >= 0xe0) return b - 0x100;
  switch (b) {
    case 0xc0:
      return null;
    case 0xc2:
      return false;
    case 0xc3:
      return true;
    case 0xca:
      return view.getFloat32(pos);
    case 0xcb:
      return view.getFloat64(pos);
    case 0xcc:
      return src[pos]!;
    case 0xcd:
      return view.getUint16(pos);
    case 0xce:
      return view.getUint32(pos);
    case 0xcf:
      // 64-bit integers as bigints, as msgpackr gives them by default
      return view.getBigUint64(pos);
    case 0xd0:
      return view.getInt8(pos);
    case 0xd1:
      return view.getInt16(pos);
    case 0xd2:
      return view.getInt32(pos);
    default: // 0xd3
      return view.getBigInt64(pos);
  }
}

function overBudget(): void {
  if (cost > budget) {
    throw new Refused(`it would decode to over ${mib(budget)} (${mib(DECODE_FLOOR)} + ${DECODE_RATIO} x its ${end} bytes): too many values for its size`);
  }
}

/** A container of `values` values just met: its count, nesting and cost checked before any of them. */
function opened(values: number, depth: number, what: string, count: number): void {
  // Every value takes at least one byte: a count the rest cannot hold is a lie.
  if (values > end - pos) throw new Refused(`a ${what} of ${count} entries in ${end - pos} bytes`);
  cost += CONTAINER_COST;
  if (values > 0 && depth === MAX_DEPTH) throw new Refused(`nesting deeper than ${MAX_DEPTH}`);
  overBudget();
}

function list(count: number, depth: number): unknown[] {
  opened(count, depth, 'list', count);
  const out = new Array<unknown>(count);
  for (let i = 0; i < count; i++) out[i] = value(depth + 1, false);
  return out;
}

function map(count: number, depth: number): Record<string, unknown> {
  opened(2 * count, depth, 'map', count);
  const out: Record<string, unknown> = {};
  for (let i = 0; i < count; i++) {
    const key = value(depth + 1, true) as string;
    // as msgpackr: no key sets an object's prototype
    out[key === '__proto__' ? '__proto_' : key] = value(depth + 1, false);
  }
  return out;
}

const mib = (n: number): string => `${Math.round(n / (1 << 20))} MiB`;

/**
 * Decode bytes holding one msgpack value, or say why not (`{ problem }`): walked once, each value
 * checked as it is met (the limits above) and built as msgpackr builds it with the options it
 * was given here (maps as objects, bin as Buffer views of `bytes`, 64-bit integers as bigints); msgpackr
 * decoded the bytes after a walk of its own, and its string decoding in JavaScript cost more than
 * the rest (a 10 ms -> 5 ms in a fresh node for the dense table's payload, docs/performance.md).
 */
export function unpackBounded(bytes: Uint8Array): { value: unknown } | { problem: string } {
  src = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  pos = 0;
  end = bytes.length;
  cost = 0;
  budget = DECODE_FLOOR + DECODE_RATIO * end;
  try {
    const decoded = value(0, false);
    if (pos < end) return { problem: `undecodable msgpack (Data read, but end of buffer not reached ${jsonView(decoded)})` };
    return { value: decoded };
  } catch (err) {
    if (err instanceof Refused) return { problem: err.problem };
    throw err;
  } finally {
    // Not kept alive by the walk's state until the next decode.
    src = Buffer.alloc(0);
    view = new DataView(src.buffer, 0, 0);
  }
}

/** The start of a value as msgpackr names one followed by more bytes: its JSON, bigints as `Nn`. */
function jsonView(decoded: unknown): string {
  try {
    return JSON.stringify(decoded, (_, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)).slice(0, 100);
  } catch (err) {
    return `(JSON view not available ${String(err)})`;
  }
}
