// Images as raw msgpack, below the validating reader: open an envelope without judging it, and
// seal a payload (however wrong) into an envelope whose checksum matches, so a lie in the
// payload reaches the validation behind the checksum instead of stopping at it.
import { createHash } from 'node:crypto';
import { Packr, Unpackr } from 'msgpackr';
import { IMAGE_FORMAT_VERSION, IMAGE_MAGIC } from '../image/format.js';

// The options format.ts reads and writes with: plain msgpack maps, no records.
// variableMapSize: a mutant may have more fields than a fast 16-bit map header holds.
const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

export type Payload = Record<string, unknown>;

export const pack = (value: unknown): Buffer => packr.pack(value);
export const sha256 = (bytes: Uint8Array): Buffer => createHash('sha256').update(bytes).digest();

/** The payload map of a good image (decoded, not validated). */
export function openPayload(image: Buffer): Payload {
  const env = unpackr.unpack(image) as { payload: Uint8Array };
  return unpackr.unpack(env.payload) as Payload;
}

/** An envelope around payload bytes; `fields` replace or add envelope fields (undefined drops one). */
export function envelope(payloadBytes: Buffer, fields: Record<string, unknown> = {}): Buffer {
  const env: Record<string, unknown> = {
    magic: IMAGE_MAGIC,
    formatVersion: IMAGE_FORMAT_VERSION,
    checksum: { sha256: sha256(payloadBytes) },
    payload: payloadBytes,
  };
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) delete env[k];
    // defineProperty: a field named __proto__ is a field, not the object's prototype.
    else Object.defineProperty(env, k, { value: v, enumerable: true, configurable: true, writable: true });
  }
  return pack(env);
}

/** A payload packed and sealed with a matching checksum. */
export const seal = (payload: Payload): Buffer => envelope(pack(payload));

/**
 * A payload with raw msgpack bytes in place of one value: `set` puts MARKER where the value goes,
 * and the marker's encoding is swapped for `raw`. For values msgpackr would not build (nesting
 * deeper than its encoder's stack, headers that lie about their length).
 */
export const MARKER = '\u0001cr-imagefuzz-marker\u0001';
export function sealWithRaw(payload: Payload, raw: Buffer): Buffer {
  const bytes = pack(payload);
  const marker = pack(MARKER);
  const at = bytes.indexOf(marker);
  if (at < 0 || bytes.indexOf(marker, at + 1) >= 0) throw new Error('sealWithRaw: the marker must appear exactly once');
  return envelope(Buffer.concat([bytes.subarray(0, at), raw, bytes.subarray(at + marker.length)]));
}

/** A deep copy of a decoded payload (Buffers stay Buffers). */
export function clone<T>(value: T): T {
  if (Buffer.isBuffer(value)) return Buffer.from(value) as T;
  if (value instanceof Uint8Array) return Buffer.from(value) as T;
  if (Array.isArray(value)) return value.map(clone) as T;
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = clone(v);
    return out as T;
  }
  return value;
}
