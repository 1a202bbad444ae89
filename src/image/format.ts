// The image file (docs/image-format.md): a msgpack envelope holding a magic string, the format
// version, a sha256 of the payload, and the payload (itself msgpack: tool and kernel versions, the
// process identity, the fd table, what dump dropped). Writing is atomic, 0600, exclusive unless
// forced, and never follows a symlink at the image path. Reading trusts nothing.
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, fstatSync, fsyncSync, linkSync, lstatSync, openSync, readFileSync, readSync, renameSync, unlinkSync, writeSync, constants as fsc, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { badInput, CrError } from '../errors.js';
import type { FdTable } from '../model/fdtable.js';
import { parseTable } from '../model/validate.js';
import { packMsgpack, unpackBounded } from './msgpack.js';
// A cycle (process-format.ts reads its fd-table record with decodeImage): only functions cross it.
import { PROCESS_MAGIC, ProcessImageReader, type ProcessHead } from './process-format.js';

export const IMAGE_MAGIC = 'cr-fd-image';
export const IMAGE_FORMAT_VERSION = 1;

/** A checkpoint: who was dumped, on what, and its fd table. */
export interface Image {
  magic: string;
  formatVersion: number;
  /** version of the cr that wrote the image (package.json) */
  toolVersion: string;
  /** `uname -r` of the machine the dump ran on */
  kernel: string;
  process: { pid: number; comm: string; cmdline: string[]; uid: number };
  table: FdTable;
  /** fds left out of the table by `dump --skip-unsupported` */
  dropped: Array<{ fd: number; kind: string; reason: string }>;
}

/** The version of this cr, for Image.toolVersion. */
export function toolVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

const sha256 = (bytes: Uint8Array): Buffer => createHash('sha256').update(bytes).digest();

/** The envelope and payload bytes of an image. Pipe data goes in as binary, not base64. */
export function encodeImage(image: Image): Buffer {
  if (image.magic !== IMAGE_MAGIC || image.formatVersion !== IMAGE_FORMAT_VERSION) {
    throw new Error(`encodeImage: magic ${image.magic} version ${image.formatVersion} is not what this cr writes`);
  }
  const table = {
    fds: image.table.fds,
    descs: image.table.descs,
    pipes: image.table.pipes.map((p) => ({ ...p, data: Buffer.from(p.data, 'base64') })),
    rlimit: image.table.rlimit,
  };
  const payload = packMsgpack({
    toolVersion: image.toolVersion,
    kernel: image.kernel,
    process: image.process,
    table,
    dropped: image.dropped,
  });
  return packMsgpack({ magic: IMAGE_MAGIC, formatVersion: IMAGE_FORMAT_VERSION, checksum: { sha256: sha256(payload) }, payload });
}

/** A temporary file beside an image path, to be put in place by installTemp. */
export interface TempFile {
  tmp: string;
  fd: number;
}

/**
 * Start writing an image at path: refuse a directory, or an existing path unless force, then
 * create a temporary file beside it (0600, O_EXCL|O_NOFOLLOW, so nothing at its name is followed
 * or reused). Errors are one-line CrErrors.
 */
export function createTemp(path: string, opts: { force: boolean }): TempFile {
  const existing = lstatOrNull(path);
  if (existing?.isDirectory()) badInput(`${path} is a directory`);
  if (existing && !opts.force) badInput(`${path} exists (use --force to replace it)`);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    return { tmp, fd: openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600) };
  } catch (err) {
    throw new CrError(`cannot write ${path}: ${errMessage(err)}`);
  }
}

/**
 * Put a written and closed temporary file in place: link() (fails if path exists, whatever it
 * is) or, with force, rename() (replaces a file or a symlink itself, never what a symlink points
 * to). The caller unlinks tmp afterwards either way.
 */
export function installTemp(tmp: string, path: string, opts: { force: boolean }): void {
  try {
    if (opts.force) renameSync(tmp, path);
    else linkSync(tmp, path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') badInput(`${path} exists (use --force to replace it)`);
    if (code === 'EISDIR') badInput(`${path} is a directory`);
    throw new CrError(`cannot write ${path}: ${errMessage(err)}`);
  }
}

/** Write an image to path atomically: whole and fsync'd, or not at all. */
export function writeImage(path: string, image: Image, opts: { force: boolean }): void {
  const bytes = encodeImage(image);
  const { tmp, fd } = createTemp(path, opts);
  try {
    try {
      for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
      fsyncSync(fd);
    } catch (err) {
      // A full disk or a quota is the user's to fix: say so in one line.
      throw new CrError(`cannot write ${path}: ${errMessage(err)}`);
    } finally {
      closeSync(fd);
    }
    installTemp(tmp, path, opts);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // renamed into place
    }
  }
}

function lstatOrNull(path: string): ReturnType<typeof lstatSync> | null {
  try {
    return lstatSync(path);
  } catch {
    return null;
  }
}

/** `ENOENT (open)`: a node fs error in a few words, for one-line messages. */
export const errMessage = (err: unknown): string => {
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.code} (${e.syscall ?? 'fs'})` : String(err);
};

/** Read and validate an image; anything wrong is a one-line badInput. */
export function readImage(path: string): Image {
  return decodeImage(readInput(path), path);
}

function readInput(path: string): Buffer {
  return withInput(path, (fd) => readFileSync(fd));
}

/** The bytes of the input at path and the fstat of the file they came from (its owner is the image's author). */
function readInputAndStat(path: string): { bytes: Buffer; stat: Stats } {
  return withInput(path, (fd) => ({ stat: fstatSync(fd), bytes: readFileSync(fd) }));
}

/** fn on path opened for reading, once it is known to be a regular file; errors are one-line badInputs. */
function withInput<T>(path: string, fn: (fd: number) => T): T {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
    fd = openSync(path, fsc.O_RDONLY | fsc.O_NONBLOCK);
  } catch (err) {
    badInput(`cannot read ${path}: ${errMessage(err)}`);
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) badInput(`${path} is a directory, not an image`);
    if (!st.isFile()) badInput(`${path} is not a regular file`);
    return fn(fd);
  } catch (err) {
    if (err instanceof CrError) throw err;
    badInput(`cannot read ${path}: ${errMessage(err)}`);
  } finally {
    closeSync(fd);
  }
}

/** What kind of input path holds, judged by its first bytes: a whole-process image or not. */
export function inputKind(path: string): 'process' | 'other' {
  return withInput(path, (fd) => {
    const magic = Buffer.alloc(PROCESS_MAGIC.length);
    return readSync(fd, magic, 0, magic.length, 0) === magic.length && magic.equals(PROCESS_MAGIC) ? 'process' : 'other';
  });
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
      badInput(`${name}: image format version ${env.formatVersion} is not supported (this cr reads version ${IMAGE_FORMAT_VERSION})`);
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

/** Turn the table's binary pipe data back into base64 and let the model's validation judge it. */
function checkTable(v: unknown, name: string, bad: (what: string) => never): FdTable {
  if (!isRecord(v)) bad('table is not a map');
  const t = v as Record<string, unknown>;
  if (!Array.isArray(t.pipes)) bad('table.pipes is not a list');
  const pipes = (t.pipes as unknown[]).map((p, i) => {
    if (!isRecord(p)) bad(`table.pipes[${i}] is not a map`);
    const data = (p as Record<string, unknown>).data;
    if (!(data instanceof Uint8Array)) bad(`table.pipes[${i}].data is not binary`);
    return { ...(p as Record<string, unknown>), data: Buffer.from(data as Uint8Array).toString('base64') };
  });
  return validTable({ ...t, pipes }, name);
}

function validTable(input: unknown, name: string): FdTable {
  try {
    return parseTable(input);
  } catch (err) {
    if (err instanceof CrError) badInput(`${name}: ${err.message}`);
    throw err;
  }
}

/** What `show` tells of a whole-process image besides its fd table. */
export interface ProcessSummary {
  head: ProcessHead;
  /** bytes of page contents the image holds */
  pageBytes: number;
}

/**
 * Input for `plan`, `show`, `diff` and `restore`: a whole-process image (its fd table; the whole
 * file is read, so a corrupt or truncated one is refused), an fd-table image, or a JSON fd table
 * (docs/fd-table.md). A file whose first non-blank byte is `{` is JSON.
 */
export function loadTableInput(path: string): { table: FdTable; image?: Image; process?: ProcessSummary; stat: Stats } {
  if (inputKind(path) === 'process') {
    const reader = ProcessImageReader.open(path);
    try {
      let pageBytes = 0;
      for (const run of reader.pages()) pageBytes += run.data.length;
      return { table: reader.fdImage.table, image: reader.fdImage, process: { head: reader.head, pageBytes }, stat: reader.stat };
    } finally {
      reader.close();
    }
  }
  const { bytes, stat } = readInputAndStat(path);
  const first = bytes.find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09);
  if (first !== 0x7b) {
    const image = decodeImage(bytes, path);
    return { table: image.table, image, stat };
  }
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    badInput(`${path}: not valid JSON: ${(err as Error).message}`);
  }
  return { table: validTable(json, path), stat };
}
