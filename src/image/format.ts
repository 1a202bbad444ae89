// The fd-table image (docs/image-format.md): a msgpack envelope holding a magic string, the format
// version, a sha256 of the payload, and the payload (itself msgpack: tool and kernel versions, the
// process identity, the fd table, what dump dropped). Writing goes through OutputFile (0600,
// atomic, never through a symlink); reading works from bytes read once (file.ts) and trusts
// nothing.
import { sha256 } from '../../bridge/sha256.js';
import { badInput, CrError } from '../errors.js';
import { KINDS } from '../kinds/registry.js';
import type { Desc, DescKind, FdTables } from '../model/fdtable.js';
import { parseTables } from '../image/validate.js';
import { OutputFile } from '../output-file.js';
import { readImageFile } from './file.js';
import { BinParts, packMsgpack, packParts, unpackBounded } from './msgpack.js';

export const IMAGE_MAGIC = 'cr-fd-image';
/**
 * 3: the bytes kinds carry (a memfd's or deleted file's data extents, a unix socket's queue) are
 * bin, as pipe data always was, not base64 text.
 * 2: the table is FdTables (shared descriptions and pipes, per-process fds and limits); 1 held one
 * process's table and is refused.
 */
export const IMAGE_FORMAT_VERSION = 3;

/** A checkpoint: who was dumped, on what, and its fd table. */
export interface Image {
  magic: string;
  formatVersion: number;
  /** version of the cr that wrote the image (package.json) */
  toolVersion: string;
  /** `uname -r` of the machine the dump ran on */
  kernel: string;
  /** the process dumped (the root, when the table holds several) */
  process: { pid: number; comm: string; cmdline: string[]; uid: number };
  table: FdTables;
  /** fds left out of the table by `dump --skip-unsupported` */
  dropped: Array<{ fd: number; kind: string; reason: string }>;
}

/** The version of this cr, for Image.toolVersion. */
export { toolVersion } from '../version.js';

/**
 * A description with the fields its kind holds as bytes (`binary`) turned to binary (`toBytes`:
 * base64 text as the model may hold it decoded, bytes kept) or checked binary (`fromBytes`: the
 * kind's parse takes the bytes).
 */
function convertBinary(d: Record<string, unknown>, toBytes: boolean, where: string, bad: (what: string) => never): Record<string, unknown> {
  const paths = typeof d.kind === 'string' && Object.hasOwn(KINDS, d.kind) ? (KINDS[d.kind as DescKind].binary ?? []) : [];
  if (paths.length === 0) return d;
  const one = (v: unknown, w: string): unknown => {
    if (toBytes) return typeof v === 'string' ? Buffer.from(v, 'base64') : v;
    if (!(v instanceof Uint8Array)) bad(`${w} is not binary`);
    return v;
  };
  const out = { ...d };
  for (const path of paths) {
    const [field, sub] = path.split('[].') as [string, string | undefined];
    const [outer, inner] = field.split('.') as [string, string | undefined];
    if (inner !== undefined) {
      // `name.sub`: a field of an object field (an established connection's queues)
      const o = out[outer];
      if (isRecord(o) && inner in o) out[outer] = { ...o, [inner]: one(o[inner], `${where}.${field}`) };
      continue;
    }
    if (!(field in out)) continue; // the model's validation names what is missing
    const v = out[field];
    if (sub === undefined) {
      out[field] = one(v, `${where}.${field}`);
      continue;
    }
    if (!Array.isArray(v)) continue;
    out[field] = v.map((e, i) => (isRecord(e) && sub in e ? { ...e, [sub]: one(e[sub], `${where}.${field}[${i}].${sub}`) } : e));
  }
  return out;
}

const noBadInput = (what: string): never => {
  throw new Error(`encodeImage: ${what}`);
};

/** The envelope and payload bytes of an image. Pipe data and each kind's bytes go in as binary, not base64. */
export function encodeImage(image: Image): Buffer {
  const parts = encodeImageParts(image);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/**
 * encodeImage's bytes as parts, in order, for a writev: the bytes of every large bin (a pipe's
 * data) are its Buffer itself, not copied (packParts), and the payload is not copied into the
 * envelope (its SHA-256 taken over its parts).
 */
export function encodeImageParts(image: Image): Buffer[] {
  if (image.magic !== IMAGE_MAGIC || image.formatVersion !== IMAGE_FORMAT_VERSION) {
    throw new Error(`encodeImage: magic ${image.magic} version ${image.formatVersion} is not what this cr writes`);
  }
  const table = {
    descs: image.table.descs.map((d: Desc, i) => convertBinary(d as unknown as Record<string, unknown>, true, `descs[${i}]`, noBadInput)),
    pipes: image.table.pipes,
    processes: image.table.processes,
  };
  const value = { toolVersion: image.toolVersion, kernel: image.kernel, process: image.process, table, dropped: image.dropped };
  const payload = packParts(value) ?? [packMsgpack(value)];
  const envelope = packParts({ magic: IMAGE_MAGIC, formatVersion: IMAGE_FORMAT_VERSION, checksum: { sha256: sha256(payload) }, payload: new BinParts(payload) });
  // The envelope holds nothing but strings, a number, a digest and the payload's parts.
  if (envelope === null) throw new Error('encodeImage: the envelope could not be packed');
  return envelope;
}

/** Write an image to path atomically: whole and fsync'd, or not at all (OutputFile). */
export function writeImage(path: string, image: Image, opts: { force: boolean }): void {
  const bytes = encodeImage(image);
  const out = OutputFile.create(path, { force: opts.force, mode: 0o600 });
  try {
    out.write([bytes]);
    out.commit();
  } finally {
    out.abort();
  }
}

/** Read and validate an image; anything wrong is a one-line badInput. */
export function readImage(path: string): Image {
  return decodeImage(readImageFile(path).bytes, path);
}

/** Decode and validate image bytes; `name` is used in messages. */
export function decodeImage(bytes: Buffer, name: string): Image {
  const bad = (what: string): never => badInput(`${name}: not a valid cr image: ${what}`);
  const unpacked = unpackBounded(bytes);
  if ('problem' in unpacked) bad('no cr image envelope');
  const envelope = (unpacked as { value: unknown }).value;
  if (!isRecord(envelope)) bad('no cr image envelope');
  const env = envelope as Record<string, unknown>;
  if (env.magic !== IMAGE_MAGIC) bad(`wrong magic (expected "${IMAGE_MAGIC}")`);
  if (env.formatVersion !== IMAGE_FORMAT_VERSION) {
    if (typeof env.formatVersion === 'number') {
      const older = env.formatVersion < IMAGE_FORMAT_VERSION ? ': it is from an older cr, dump the process again' : '';
      badInput(`${name}: image format version ${env.formatVersion} is not supported (this cr reads version ${IMAGE_FORMAT_VERSION})${older}`);
    }
    bad('formatVersion is missing');
  }
  exactKeys(env, ['magic', 'formatVersion', 'checksum', 'payload'], 'envelope', bad);
  const checksum = env.checksum;
  if (!isRecord(checksum) || !(checksum.sha256 instanceof Uint8Array) || checksum.sha256.length !== 32) bad('checksum is not a sha256');
  exactKeys(checksum as Record<string, unknown>, ['sha256'], 'checksum', bad);
  if (!(env.payload instanceof Uint8Array)) bad('payload is not binary');
  const payloadBytes = env.payload as Uint8Array;
  if (!sha256(payloadBytes).equals((checksum as { sha256: Uint8Array }).sha256)) bad('checksum mismatch (the image is corrupt)');
  const decoded = unpackBounded(payloadBytes);
  if ('problem' in decoded) bad(`payload: ${decoded.problem}`);
  const payload = (decoded as { value: unknown }).value;
  if (!isRecord(payload)) bad('payload is not a map');
  const p = payload as Record<string, unknown>;
  exactKeys(p, ['toolVersion', 'kernel', 'process', 'table', 'dropped'], 'payload', bad);
  if (typeof p.toolVersion !== 'string') bad('toolVersion is not a string');
  if (typeof p.kernel !== 'string') bad('kernel is not a string');
  const proc = checkProcess(p.process, bad);
  const dropped = checkDropped(p.dropped, bad);
  const table = checkTable(p.table, name, bad);
  return {
    magic: IMAGE_MAGIC,
    formatVersion: IMAGE_FORMAT_VERSION,
    toolVersion: p.toolVersion as string,
    kernel: p.kernel as string,
    process: proc,
    table,
    dropped,
  };
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && Object.getPrototypeOf(v) === Object.prototype;

const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function exactKeys(obj: Record<string, unknown>, keys: string[], where: string, bad: (what: string) => never): void {
  for (const k of keys) if (!(k in obj)) bad(`${where} has no ${k}`);
  for (const k of Object.keys(obj)) if (!keys.includes(k)) bad(`${where} has an unknown field ${JSON.stringify(k)}`);
}

function checkProcess(v: unknown, bad: (what: string) => never): Image['process'] {
  if (!isRecord(v)) bad('process is not a map');
  const p = v as Record<string, unknown>;
  exactKeys(p, ['pid', 'comm', 'cmdline', 'uid'], 'process', bad);
  if (!isUint(p.pid) || p.pid === 0) bad('process.pid is not a pid');
  if (typeof p.comm !== 'string') bad('process.comm is not a string');
  if (!Array.isArray(p.cmdline) || !p.cmdline.every((a) => typeof a === 'string')) bad('process.cmdline is not a list of strings');
  if (!isUint(p.uid)) bad('process.uid is not a uid');
  return { pid: p.pid as number, comm: p.comm as string, cmdline: p.cmdline as string[], uid: p.uid as number };
}

function checkDropped(v: unknown, bad: (what: string) => never): Image['dropped'] {
  if (!Array.isArray(v)) bad('dropped is not a list');
  return (v as unknown[]).map((d, i) => {
    if (!isRecord(d)) bad(`dropped[${i}] is not a map`);
    const r = d as Record<string, unknown>;
    exactKeys(r, ['fd', 'kind', 'reason'], `dropped[${i}]`, bad);
    if (!isUint(r.fd)) bad(`dropped[${i}].fd is not an fd number`);
    if (typeof r.kind !== 'string' || typeof r.reason !== 'string') bad(`dropped[${i}] kind and reason must be strings`);
    return { fd: r.fd as number, kind: r.kind as string, reason: r.reason as string };
  });
}

/** Check that the table's pipe data and kinds' bytes are binary, and let the model's validation judge the rest. */
function checkTable(v: unknown, name: string, bad: (what: string) => never): FdTables {
  if (!isRecord(v)) bad('table is not a map');
  const t = v as Record<string, unknown>;
  if (!Array.isArray(t.descs)) bad('table.descs is not a list');
  const descs = (t.descs as unknown[]).map((d, i) => (isRecord(d) ? convertBinary(d, false, `table.descs[${i}]`, bad) : d));
  if (!Array.isArray(t.pipes)) bad('table.pipes is not a list');
  (t.pipes as unknown[]).forEach((p, i) => {
    if (!isRecord(p)) bad(`table.pipes[${i}] is not a map`);
    if (!((p as Record<string, unknown>).data instanceof Uint8Array)) bad(`table.pipes[${i}].data is not binary`);
  });
  return validTable({ ...t, descs }, name);
}

export function validTable(input: unknown, name: string): FdTables {
  try {
    return parseTables(input);
  } catch (err) {
    if (err instanceof CrError) badInput(`${name}: ${err.message}`);
    throw err;
  }
}
