// Turns untrusted JSON into an FdTable or PlanTarget, or a one-line bad-input error
// naming the field. Every rule here is one of docs/fd-table.md's invariants, or a
// kernel fact without which no restore could be planned (noted where it is one).
import { badInput } from '../errors.js';
import { checkEpolls } from '../kinds/epoll.js';
import { KINDS, KIND_NAMES } from '../kinds/registry.js';
import type { Desc, DescKind, Fd, FdTables, Pipe, ProcessFds, Rlimit } from '../model/fdtable.js';
import { pairOf, pathOf, pipeOf } from '../model/fdtable.js';
import { array, boolean, fields, get, integer, MAX_ENTRIES, object, show } from '../model/json.js';
import {
  O_ACCMODE,
  O_APPEND,
  O_ASYNC,
  O_CLOEXEC,
  O_DIRECT,
  O_DSYNC,
  O_LARGEFILE,
  O_NOATIME,
  O_NOFOLLOW,
  O_NONBLOCK,
  O_RDONLY,
  O_RDWR,
  O_SYNC,
} from '../model/fdtable.js';
import type { PlanTarget, TargetMode } from '../model/restore-target.js';

export { MAX_ENTRIES };
/** Highest RLIMIT_NOFILE the kernel can have (fs.nr_open's own ceiling, fs/file.c). */
export const MAX_NOFILE = 2147483584;
/** Largest pipe the kernel can make (round_pipe_size refuses more than 2^31). */
export const MAX_PIPE_CAPACITY = 2 ** 31;
export const PAGE_SIZE = 4096;
const MAX_ID = 2 ** 31 - 1;
/** Status flags F_GETFL can report for the kinds we handle (docs/fd-table.md). */
const KNOWN_FLAGS = O_ACCMODE | O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME | O_ASYNC | O_DSYNC | O_SYNC | O_LARGEFILE | O_NOFOLLOW;
const FLAG_NAMES: Array<[number, string]> = [
  [O_CLOEXEC, 'O_CLOEXEC'],
  [0o100, 'O_CREAT'],
  [0o200, 'O_EXCL'],
  [0o400, 'O_NOCTTY'],
  [0o1000, 'O_TRUNC'],
  [0o200000, 'O_DIRECTORY'],
  [0o10000000, 'O_PATH'],
  [0o20000000, '__O_TMPFILE'],
];
/** The bits of FLAG_NAMES together: one test per description, the names only for the message. */
const NEVER_FLAGS = FLAG_NAMES.reduce((all, [bit]) => all | bit, 0);
const MODES: readonly TargetMode[] = ['fresh', 'into', 'into-exact'];

function parseRlimitObject(value: unknown, where: string): Rlimit {
  const obj = object(value, where);
  fields(obj, where, ['soft', 'hard']);
  const soft = integer(get(obj, 'soft'), `${where}.soft`, 0, MAX_NOFILE);
  const hard = integer(get(obj, 'hard'), `${where}.hard`, 0, MAX_NOFILE);
  if (soft > hard) badInput(`${where}.soft: ${soft} is above ${where}.hard ${hard}`);
  return { soft, hard };
}

/** F_GETFL's answer: the common status flags, and `extra` bits the description's kind may show. */
function parseFlags(value: unknown, where: string, extra: number): number {
  const flags = integer(value, where, 0, 0xffffffff);
  if ((flags & O_ACCMODE) === O_ACCMODE) badInput(`${where}: access mode 3 is not O_RDONLY, O_WRONLY or O_RDWR`);
  if ((flags & NEVER_FLAGS & ~extra) !== 0) {
    const [, name] = FLAG_NAMES.find(([bit]) => (flags & bit & ~extra) !== 0)!;
    badInput(`${where}: ${name} is never part of F_GETFL's answer here`);
  }
  const unknown = flags & ~(KNOWN_FLAGS | extra);
  if (unknown !== 0) badInput(`${where}: unknown flag bits 0o${(unknown >>> 0).toString(8)}`);
  // open() turns O_SYNC into __O_SYNC|O_DSYNC, so the first bit never comes alone.
  if ((flags & O_SYNC) !== 0 && (flags & O_DSYNC) === 0) badInput(`${where}: __O_SYNC without O_DSYNC`);
  return flags >>> 0;
}

/**
 * A pipe's queued bytes: bin from an image file (taken as they are, no copy), or base64 text from
 * JSON, which must be canonical (Buffer's decoder skips what is not base64, so the bytes re-encode
 * to the same text only if the text had no stray characters, padding or bits).
 */
function pipeBytes(raw: unknown, where: string, capacity: number): Buffer {
  if (raw instanceof Uint8Array) {
    if (raw.length > capacity) badInput(`${where}: ${raw.length} bytes is more than capacity ${capacity}`);
    return Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength);
  }
  if (typeof raw !== 'string') badInput(`${where}: expected a base64 string, got ${show(raw)}`);
  if (raw.length > 4 * Math.ceil(capacity / 3)) badInput(`${where}: more bytes than capacity ${capacity}`);
  const bytes = Buffer.from(raw, 'base64');
  if (bytes.length > capacity) badInput(`${where}: ${bytes.length} bytes is more than capacity ${capacity}`);
  if (bytes.toString('base64') !== raw) badInput(`${where}: not canonical base64`);
  return bytes;
}

/** Whether a pipe of this many bytes can exist: a power of two times the page size, within the kernel's bounds. */
function pipeCapacityOk(capacity: number): boolean {
  return capacity >= PAGE_SIZE && capacity <= MAX_PIPE_CAPACITY && capacity % PAGE_SIZE === 0 && ((capacity / PAGE_SIZE) & (capacity / PAGE_SIZE - 1)) === 0;
}

/**
 * The bytes of every empty pipe: one Buffer of no bytes, which nothing can write to. Most pipes of a
 * table hold none, and a Buffer made per pipe (Buffer.from('', 'base64')) cost 74 ms of CPU and 9 MB
 * for 33,000 of them here.
 */
const NO_BYTES = Buffer.alloc(0);

/**
 * Whether obj, a plain object, has exactly these own fields in this order (the order JSON.parse or
 * msgpack gave them, which is the order they print in). A for-in walk: Object.keys would make an
 * array per entry, twice the time over a table's 100,000 fds.
 */
function hasKeys(obj: object, keys: readonly string[]): boolean {
  if (Object.getPrototypeOf(obj) !== Object.prototype) return false;
  let n = 0;
  for (const key in obj) {
    if (n === keys.length || key !== keys[n]) return false;
    n++;
  }
  return n === keys.length;
}
const FD_KEYS = ['fd', 'desc', 'cloexec'];
const PIPE_END_KEYS = ['id', 'kind', 'flags', 'pipe'];
/** A pipe as a dump writes it; the model's pipe is made new (its bytes a Buffer) in this order whatever the JSON's. */
const PIPE_KEYS = ['id', 'capacity', 'data'];

/**
 * The pipe at pipes[i]. Pipes are half the descriptions of a big table (50,000 in one), so one as a
 * dump writes it (id, capacity, data, no packets) is taken without building the names its messages
 * would use; anything else, and any bytes that are not canonical base64, go through parsePipe,
 * which says what is wrong.
 */
function parsePipeAt(value: unknown, i: number): Pipe {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    const { id, capacity, data } = obj;
    if (
      hasKeys(obj, PIPE_KEYS) &&
      Number.isInteger(id) && (id as number) >= 0 && (id as number) <= MAX_ID &&
      Number.isInteger(capacity) && pipeCapacityOk(capacity as number)
    ) {
      if (data instanceof Uint8Array && data.length <= (capacity as number)) {
        return { id: id as number, capacity: capacity as number, data: data.length === 0 ? NO_BYTES : Buffer.from(data.buffer, data.byteOffset, data.byteLength) };
      }
      if (data === '') return { id: id as number, capacity: capacity as number, data: NO_BYTES };
      if (typeof data === 'string' && data.length <= 4 * Math.ceil((capacity as number) / 3)) {
        const bytes = Buffer.from(data, 'base64');
        if (bytes.length <= (capacity as number) && bytes.toString('base64') === data) return { id: id as number, capacity: capacity as number, data: bytes };
      }
    }
  }
  return parsePipe(value, `pipes[${i}]`);
}

function parsePipe(value: unknown, where: string): Pipe {
  const obj = object(value, where);
  fields(obj, where, ['id', 'capacity', 'data', 'packets']);
  const id = integer(get(obj, 'id'), `${where}.id`, 0, MAX_ID);
  const capacity = integer(get(obj, 'capacity'), `${where}.capacity`, 1, MAX_PIPE_CAPACITY);
  if (!pipeCapacityOk(capacity)) {
    badInput(`${where}.capacity: ${capacity} is not a power of two times ${PAGE_SIZE}`);
  }
  const data = pipeBytes(get(obj, 'data'), `${where}.data`, capacity);
  const length = data.length;
  const pipe: Pipe = { id, capacity, data };
  const packetsValue = get(obj, 'packets');
  if (packetsValue !== undefined) {
    const list = array(packetsValue, `${where}.packets`);
    // Each packet sits in one page-sized pipe buffer, one buffer per slot of the ring.
    if (list.length > capacity / PAGE_SIZE) {
      badInput(`${where}.packets: ${list.length} packets do not fit the ${capacity / PAGE_SIZE} buffers of capacity ${capacity}`);
    }
    const packets = list.map((p, i) => integer(p, `${where}.packets[${i}]`, 1, PAGE_SIZE));
    const sum = packets.reduce((a, b) => a + b, 0);
    if (sum !== length) badInput(`${where}.packets: sum ${sum} is not the data length ${length}`);
    pipe.packets = packets;
  }
  return pipe;
}

/**
 * The description at descs[i]. Pipe ends are half the descriptions of a big table (50,000 in one),
 * so one as a dump writes it (id, kind, flags, pipe, in that order) is the table's entry as it is:
 * no copy, no names for its messages. It is what parseDesc and the pipe kind's parse would make of
 * it (parseFlags with no kind bits, no O_NOFOLLOW: src/kinds/pipe.ts); anything else goes through
 * them, which say what is wrong.
 */
function parseDescAt(value: unknown, i: number): Desc {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    const { id, kind, flags, pipe } = obj;
    if (
      kind === 'pipe' && hasKeys(obj, PIPE_END_KEYS) &&
      Number.isInteger(id) && (id as number) >= 0 && (id as number) <= MAX_ID &&
      Number.isInteger(pipe) && (pipe as number) >= 0 && (pipe as number) <= MAX_ID &&
      Number.isInteger(flags)
    ) {
      const f = flags as number;
      // parseFlags' checks, its answer (`flags >>> 0`) the number as it is (so not -0)
      if (
        (f > 0 ? f <= 0xffffffff : Object.is(f, 0)) &&
        (f & O_ACCMODE) !== O_ACCMODE && (f & (NEVER_FLAGS | O_NOFOLLOW)) === 0 && (f & ~KNOWN_FLAGS) === 0 && ((f & O_SYNC) === 0 || (f & O_DSYNC) !== 0)
      ) {
        return obj as unknown as Desc;
      }
    }
  }
  return parseDesc(value, `descs[${i}]`);
}

function parseDesc(value: unknown, where: string): Desc {
  const obj = object(value, where);
  const kindValue = get(obj, 'kind');
  const allowed = typeof kindValue === 'string' ? ALLOWED.get(kindValue) : undefined;
  if (allowed === undefined) badInput(`${where}.kind: expected one of ${KIND_NAMES.join(', ')}, got ${show(kindValue)}`);
  const kind = KINDS[kindValue as DescKind];
  for (const key of Object.keys(obj)) {
    if (!allowed.has(key)) {
      badInput(`${where}: ${OTHER_KIND_FIELDS.has(key) ? `a ${kind.kind} description has no ${key}` : `unknown field ${show(key)}`}`);
    }
  }
  const id = integer(get(obj, 'id'), `${where}.id`, 0, MAX_ID);
  const flags = parseFlags(get(obj, 'flags'), `${where}.flags`, kind.flagBits ?? 0);
  return kind.parse(obj, where, id, flags);
}

/** Per kind, the fields its descriptions may have. */
const ALLOWED = new Map<string, ReadonlySet<string>>(KIND_NAMES.map((k) => [k, new Set(['id', 'kind', 'flags', ...KINDS[k].fields])]));
/** Fields some kind has: on another kind, named as such rather than as unknown. */
const OTHER_KIND_FIELDS = new Set(KIND_NAMES.flatMap((k) => KINDS[k].fields));

/**
 * One fd of a process. Fds are most of a big table (100,000 in one), so a well-formed one, its
 * fields in the model's order (as a dump writes them), is the table's entry as it is: no copy, no
 * names for its messages; anything else goes through checkFd, which says what is wrong and makes
 * the entry in that order.
 */
function parseFd(value: unknown, owner: string, i: number, soft: number): Fd {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    const { fd, desc, cloexec } = obj;
    if (
      hasKeys(obj, FD_KEYS) &&
      Number.isInteger(fd) && (fd as number) >= 0 && (fd as number) <= MAX_NOFILE && (fd as number) < soft &&
      Number.isInteger(desc) && (desc as number) >= 0 && (desc as number) <= MAX_ID && typeof cloexec === 'boolean'
    ) {
      return obj as unknown as Fd;
    }
  }
  return checkFd(value, `${owner}.fds[${i}]`, soft);
}

function checkFd(value: unknown, where: string, soft: number): Fd {
  const obj = object(value, where);
  fields(obj, where, ['fd', 'desc', 'cloexec']);
  const fdValue = get(obj, 'fd');
  const fd = integer(fdValue, `${where}.fd`, 0, MAX_NOFILE);
  if (fd >= soft) badInput(`${where}.fd: ${fd} is not below rlimit.soft ${soft}`);
  const desc = integer(get(obj, 'desc'), `${where}.desc`, 0, MAX_ID);
  const cloexec = boolean(get(obj, 'cloexec'), `${where}.cloexec`);
  return { fd, desc, cloexec };
}

/** The file-system node a description needs at its path, as its kind's module says. */
function nodeOf(d: Desc): { path: string; type: string } | undefined {
  const kind = KINDS[d.kind] as { node?: (d: Desc) => { path: string; type: string } };
  return kind.node?.(d);
}

/** The highest pid the kernel hands out (PID_MAX_LIMIT on 64-bit). */
const MAX_PID = 4194304;

function parseProcess(value: unknown, where: string, pids: Map<number, number>): ProcessFds {
  const obj = object(value, where);
  fields(obj, where, ['pid', 'parent', 'fds', 'rlimit']);
  const pid = integer(get(obj, 'pid'), `${where}.pid`, 1, MAX_PID);
  const seen = pids.get(pid);
  if (seen !== undefined) badInput(`${where}.pid: ${pid} is used twice (also processes[${seen}])`);
  const parentValue = get(obj, 'parent');
  let parent: number | undefined;
  if (parentValue !== undefined) {
    parent = integer(parentValue, `${where}.parent`, 1, MAX_PID);
    // Listed after its parent: the order a tree is planned (and forked) in.
    if (!pids.has(parent)) badInput(`${where}.parent: no process with pid ${parent} is listed before it`);
  }
  const rlimit = parseRlimitObject(get(obj, 'rlimit'), `${where}.rlimit`);
  const list = array(get(obj, 'fds'), `${where}.fds`);
  // The list itself when every fd is taken as it is (a table's own JSON); a copy from the first that is not.
  let fds: Fd[] | undefined;
  for (let i = 0; i < list.length; i++) {
    const value = list[i];
    const fd = parseFd(value, where, i, rlimit.soft);
    if (fds !== undefined) fds.push(fd);
    else if (fd !== value) {
      fds = list.slice(0, i) as Fd[];
      fds.push(fd);
    }
  }
  fds ??= list as Fd[];
  return parent === undefined ? { pid, fds, rlimit } : { pid, parent, fds, rlimit };
}

/**
 * Where each id (or fd number) sits in its list, -1 when absent. A dump numbers its descriptions
 * and pipes from 0 up and its fds below about twice their count, so keys up to 4n + 64 index a
 * typed array (position + 1, 0 for none: only the pages the keys reach are ever touched); a key
 * above that is kept in a Map. Keys are validated non-negative integers.
 */
class Positions {
  private readonly slots: Int32Array;
  private far: Map<number, number> | undefined;

  constructor(n: number) {
    this.slots = new Int32Array(4 * n + 64);
  }

  get(key: number): number {
    if (key < this.slots.length) return this.slots[key]! - 1;
    return this.far?.get(key) ?? -1;
  }

  set(key: number, at: number): void {
    if (key < this.slots.length) this.slots[key] = at + 1;
    else (this.far ??= new Map()).set(key, at);
  }
}

/**
 * Validate checkpointed fd tables (docs/fd-table.md): the shared descriptions and pipes and each
 * process's fds; return them normalised. An entry already in the model's form (an fd or a pipe
 * end as a dump writes it) is taken as it is, and a list of only such entries with it: the result
 * may share them with `json`, which must not change afterwards.
 */
export function parseTables(json: unknown): FdTables {
  const top = object(json, 'table');
  if (Object.hasOwn(top, 'fds') || Object.hasOwn(top, 'rlimit')) {
    badInput('table: fds and rlimit at the top is the old one-process shape; they now go in processes: [{pid, fds, rlimit}] (docs/fd-table.md)');
  }
  fields(top, 'table', ['descs', 'pipes', 'processes']);
  const pipes = array(get(top, 'pipes'), 'pipes').map(parsePipeAt);
  const descList = array(get(top, 'descs'), 'descs');
  let descs: Desc[] | undefined;
  for (let i = 0; i < descList.length; i++) {
    const value = descList[i];
    const d = parseDescAt(value, i);
    if (descs !== undefined) descs.push(d);
    else if (d !== value) {
      descs = descList.slice(0, i) as Desc[];
      descs.push(d);
    }
  }
  descs ??= descList as Desc[];
  const pids = new Map<number, number>();
  const list = array(get(top, 'processes'), 'processes');
  if (list.length === 0) badInput('processes: an empty list (an image holds at least one process)');
  let fdCount = 0;
  const processes = list.map((p, i) => {
    const proc = parseProcess(p, `processes[${i}]`, pids);
    pids.set(proc.pid, i);
    fdCount += proc.fds.length;
    if (fdCount > MAX_ENTRIES) badInput(`processes[${i}].fds: more than ${MAX_ENTRIES} fds in all`);
    return proc;
  });

  const pipeIndex = new Positions(pipes.length);
  for (let i = 0; i < pipes.length; i++) {
    const id = pipes[i]!.id;
    const seen = pipeIndex.get(id);
    if (seen >= 0) badInput(`pipes[${i}].id: ${id} is used twice (also pipes[${seen}])`);
    pipeIndex.set(id, i);
  }
  const descIndex = new Positions(descs.length);
  let kinds = 0;
  for (let i = 0; i < descs.length; i++) {
    const d = descs[i]!;
    const seen = descIndex.get(d.id);
    if (seen >= 0) badInput(`descs[${i}].id: ${d.id} is used twice (also descs[${seen}])`);
    descIndex.set(d.id, i);
    if (d.kind !== 'pipe') kinds |= d.kind === 'epoll' ? HAS_EPOLL : d.kind === 'unix' ? HAS_UNIX : d.kind === 'pts' ? HAS_PTS : 0;
  }
  // What links name (an epoll's watched descriptions) must be there, and be what the kernel lets it watch.
  if ((kinds & HAS_EPOLL) !== 0) checkEpolls(descs, (id) => `descs[${descIndex.get(id)}]`);
  const descUsed = new Uint8Array(descs.length);
  for (let p = 0; p < processes.length; p++) {
    const fds = processes[p]!.fds;
    const fdIndex = new Positions(fds.length);
    for (let i = 0; i < fds.length; i++) {
      const f = fds[i]!;
      const seen = fdIndex.get(f.fd);
      if (seen >= 0) badInput(`processes[${p}].fds[${i}].fd: ${f.fd} appears twice (also fds[${seen}])`);
      fdIndex.set(f.fd, i);
      const d = descIndex.get(f.desc);
      if (d < 0) badInput(`processes[${p}].fds[${i}].desc: no description with id ${f.desc}`);
      descUsed[d] = 1;
    }
  }
  for (let i = 0; i < descs.length; i++) {
    if (!descUsed[i]) badInput(`descs[${i}]: description ${descs[i]!.id} has no fd`);
  }

  // Per pipe (by its position): the first description on it (its kind and FIFO path are the
  // pipe's), its pipe2()-made ends; each a position in descs + 1, 0 for none. Per path: one thing
  // in the file system (the simulator's node, as each kind's module says), one device.
  const pipeFirst = new Int32Array(pipes.length);
  const pipeRead = new Int32Array(pipes.length);
  const pipeWrite = new Int32Array(pipes.length);
  const pathKind = new Map<string, { kind: DescKind; node: string; pipe?: number; rdev?: number; at: number }>();
  for (let i = 0; i < descs.length; i++) {
    const d = descs[i]!;
    const node = nodeOf(d);
    if (node !== undefined) {
      const where = `descs[${i}]`;
      const pipe = pipeOf(d);
      const rdev = d.kind === 'chr' ? d.rdev : undefined;
      const seen = pathKind.get(node.path);
      if (seen === undefined) pathKind.set(node.path, { kind: d.kind, node: node.type, pipe, rdev, at: i });
      else if (seen.node !== node.type) badInput(`${where}.path: ${show(node.path)} is a ${seen.kind} in descs[${seen.at}], not a ${d.kind}`);
      else if (d.kind === 'chr' && seen.kind === 'chr' && seen.rdev !== rdev) {
        badInput(`${where}.rdev: device ${show(node.path)} has rdev ${seen.rdev ?? 'unrecorded'} in descs[${seen.at}], not ${rdev ?? 'unrecorded'}`);
      }
      else if (d.kind === 'fifo' && seen.kind === 'fifo' && seen.pipe !== pipe) {
        badInput(`${where}.path: FIFO ${show(node.path)} has pipe ${seen.pipe} in descs[${seen.at}], not ${pipe}`);
      }
    }
    const pipe = pipeOf(d);
    if (pipe === undefined) continue;
    const at = pipeIndex.get(pipe);
    if (at < 0) badInput(`descs[${i}].pipe: no pipe with id ${pipe}`);
    const first = pipeFirst[at]! - 1;
    if (first < 0) pipeFirst[at] = i + 1;
    else {
      const f = descs[first]!;
      if (f.kind !== d.kind) {
        badInput(`descs[${i}].kind: pipe ${pipe} has a ${f.kind} description (descs[${first}]) and a ${d.kind} one`);
      } else if (pathOf(f) !== pathOf(d)) {
        badInput(`descs[${i}].path: FIFO pipe ${pipe} is ${show(pathOf(f))} in descs[${first}], not ${show(pathOf(d))}`);
      }
    }
    if (d.kind !== 'pipe' || (d.flags & O_LARGEFILE) !== 0) continue;
    const mode = d.flags & O_ACCMODE;
    if (mode === O_RDWR) badInput(`descs[${i}].flags: an O_RDWR pipe description always has O_LARGEFILE`);
    // pipe2() gives only O_NONBLOCK and O_DIRECT, and F_SETFL cannot add O_DSYNC.
    if ((d.flags & O_DSYNC) !== 0) badInput(`descs[${i}].flags: O_DSYNC on a pipe end made by pipe2() (no O_LARGEFILE): nothing can set it there`);
    const ends = mode === O_RDONLY ? pipeRead : pipeWrite;
    const other = ends[at]! - 1;
    if (other >= 0) {
      badInput(`descs[${i}].flags: pipe ${pipe} already has a ${mode === O_RDONLY ? 'read' : 'write'} end made by pipe2() (descs[${other}]); a reopened end has O_LARGEFILE`);
    }
    ends[at] = i + 1;
  }
  for (let i = 0; i < pipes.length; i++) {
    if (pipeFirst[i] === 0) badInput(`pipes[${i}]: pipe ${pipes[i]!.id} has no description`);
  }
  // A socket pair is what one socketpair() made: at most two ends, of one type.
  if ((kinds & HAS_UNIX) !== 0) {
    const pairs = new Map<number, number[]>();
    descs.forEach((d, i) => {
      const pair = pairOf(d);
      if (pair === undefined || d.kind !== 'unix') return;
      const ends = pairs.get(pair) ?? [];
      if (ends.length === 2) badInput(`descs[${i}].pair: socket pair ${pair} already has two ends (descs[${ends[0]}], descs[${ends[1]}])`);
      const other = ends.length === 1 ? (descs[ends[0]!] as typeof d) : undefined;
      if (other && other.type !== d.type) badInput(`descs[${i}].type: socket pair ${pair} has a ${other.type} end (descs[${ends[0]}]) and a ${d.type} one`);
      ends.push(i);
      pairs.set(pair, ends);
    });
  }
  // A pty slave is made through its master: the master must be in the image.
  if ((kinds & HAS_PTS) !== 0) {
    descs.forEach((d, i) => {
      if (d.kind === 'pts' && descs[descIndex.get(d.master)]?.kind !== 'ptmx') badInput(`descs[${i}].master: no pty master (ptmx) description with id ${d.master}`);
    });
  }
  return { descs, pipes, processes };
}

/** Kinds that need a check of their own beyond each description's (parseTables' `kinds`). */
const HAS_EPOLL = 1;
const HAS_UNIX = 2;
const HAS_PTS = 4;

/** Validate a restore target given as JSON ({fds, rlimit, mode}). */
export function parseTarget(json: unknown): PlanTarget {
  const top = object(json, 'target');
  fields(top, 'target', ['fds', 'rlimit', 'mode']);
  const rlimit = parseRlimitObject(get(top, 'rlimit'), 'target.rlimit');
  const mode = get(top, 'mode');
  if (typeof mode !== 'string' || !(MODES as readonly string[]).includes(mode)) {
    badInput(`target.mode: expected one of ${MODES.join(', ')}, got ${show(mode)}`);
  }
  const list = array(get(top, 'fds'), 'target.fds').map((f, i) => integer(f, `target.fds[${i}]`, 0, MAX_NOFILE - 1));
  checkDistinct(list, 'target.fds');
  return { fds: list, rlimit, mode: mode as TargetMode };
}

function checkDistinct(list: number[], where: string): void {
  const seen = new Set<number>();
  list.forEach((fd, i) => {
    if (seen.has(fd)) badInput(`${where}[${i}]: ${fd} appears twice`);
    seen.add(fd);
  });
}

/** `--target-fds`: comma-separated fd numbers and ranges (`0-2,7,10-12`); empty or `none` for no fds. */
export function parseFdList(text: string, what = '--target-fds'): number[] {
  const trimmed = text.trim();
  if (trimmed === '' || trimmed === 'none') return [];
  const out: number[] = [];
  for (const item of trimmed.split(',')) {
    const m = /^\s*(\d{1,10})(?:\s*-\s*(\d{1,10}))?\s*$/.exec(item);
    if (!m) badInput(`${what}: ${show(item)} is not a number or a range like 3-9`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (hi >= MAX_NOFILE) badInput(`${what}: ${hi} is not below ${MAX_NOFILE}`);
    if (hi < lo) badInput(`${what}: range ${lo}-${hi} is backwards`);
    if (out.length + (hi - lo + 1) > MAX_ENTRIES) badInput(`${what}: more than ${MAX_ENTRIES} fds`);
    for (let fd = lo; fd <= hi; fd++) out.push(fd);
  }
  const seen = new Set<number>();
  for (const fd of out) {
    if (seen.has(fd)) badInput(`${what}: ${fd} appears twice`);
    seen.add(fd);
  }
  return out;
}

/** `--rlimit`: `N` (soft and hard) or `SOFT:HARD`. */
export function parseRlimit(text: string, what = '--rlimit'): Rlimit {
  const m = /^\s*(\d{1,10})\s*(?::\s*(\d{1,10})\s*)?$/.exec(text);
  if (!m) badInput(`${what}: ${show(text)} is not N or SOFT:HARD`);
  const soft = Number(m[1]);
  const hard = m[2] === undefined ? soft : Number(m[2]);
  if (hard > MAX_NOFILE) badInput(`${what}: ${hard} is above ${MAX_NOFILE}`);
  if (soft > hard) badInput(`${what}: soft ${soft} is above hard ${hard}`);
  return { soft, hard };
}
