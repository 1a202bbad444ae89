// Turns untrusted JSON into an FdTable or PlanTarget, or a one-line bad-input error
// naming the field. Every rule here is one of docs/fd-table.md's invariants, or a
// kernel fact without which no restore could be planned (noted where it is one).
import { badInput } from '../errors.js';
import { checkEpolls } from '../kinds/epoll.js';
import { KINDS, KIND_NAMES } from '../kinds/registry.js';
import type { Desc, DescKind, Fd, FdTables, Pipe, ProcessFds, Rlimit } from '../model/fdtable.js';
import { pairOf, pathOf, pipeOf } from '../model/fdtable.js';
import { ByKey } from '../model/by-key.js';
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
      Object.keys(obj).length === 3 && Object.hasOwn(obj, 'id') && Object.hasOwn(obj, 'capacity') && Object.hasOwn(obj, 'data') &&
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
 * One fd of a process. Fds are most of a big table (100,000 in one), so a well-formed one is taken
 * without building the names its messages would use; anything else goes through checkFd, which
 * says what is wrong.
 */
function parseFd(value: unknown, owner: string, i: number, soft: number): Fd {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj);
    const { fd, desc, cloexec } = obj;
    if (
      keys.length === 3 && Object.hasOwn(obj, 'fd') && Object.hasOwn(obj, 'desc') && Object.hasOwn(obj, 'cloexec') &&
      Number.isInteger(fd) && (fd as number) >= 0 && (fd as number) <= MAX_NOFILE && (fd as number) < soft &&
      Number.isInteger(desc) && (desc as number) >= 0 && (desc as number) <= MAX_ID && typeof cloexec === 'boolean'
    ) {
      return { fd: fd as number, desc: desc as number, cloexec };
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
  const fds = array(get(obj, 'fds'), `${where}.fds`).map((f, i) => parseFd(f, where, i, rlimit.soft));
  return parent === undefined ? { pid, fds, rlimit } : { pid, parent, fds, rlimit };
}

/**
 * Validate checkpointed fd tables (docs/fd-table.md): the shared descriptions and pipes and each
 * process's fds; return a normalised copy.
 */
export function parseTables(json: unknown): FdTables {
  const top = object(json, 'table');
  if (Object.hasOwn(top, 'fds') || Object.hasOwn(top, 'rlimit')) {
    badInput('table: fds and rlimit at the top is the old one-process shape; they now go in processes: [{pid, fds, rlimit}] (docs/fd-table.md)');
  }
  fields(top, 'table', ['descs', 'pipes', 'processes']);
  const pipes = array(get(top, 'pipes'), 'pipes').map(parsePipeAt);
  const descs = array(get(top, 'descs'), 'descs').map((d, i) => parseDesc(d, `descs[${i}]`));
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

  const pipeIndex = ByKey.sized<number>(pipes.length);
  pipes.forEach((p, i) => {
    const seen = pipeIndex.get(p.id);
    if (seen !== undefined) badInput(`pipes[${i}].id: ${p.id} is used twice (also pipes[${seen}])`);
    pipeIndex.set(p.id, i);
  });
  const descIndex = ByKey.sized<number>(descs.length);
  descs.forEach((d, i) => {
    const seen = descIndex.get(d.id);
    if (seen !== undefined) badInput(`descs[${i}].id: ${d.id} is used twice (also descs[${seen}])`);
    descIndex.set(d.id, i);
  });
  // What links name (an epoll's watched descriptions) must be there, and be what the kernel lets it watch.
  checkEpolls(descs, (id) => `descs[${descIndex.get(id)}]`);
  const descUsed = new Uint8Array(descs.length);
  processes.forEach((proc, p) => {
    const fdIndex = ByKey.sized<number>(proc.fds.length);
    proc.fds.forEach((f, i) => {
      const seen = fdIndex.get(f.fd);
      if (seen !== undefined) badInput(`processes[${p}].fds[${i}].fd: ${f.fd} appears twice (also fds[${seen}])`);
      fdIndex.set(f.fd, i);
      const d = descIndex.get(f.desc);
      if (d === undefined) badInput(`processes[${p}].fds[${i}].desc: no description with id ${f.desc}`);
      descUsed[d] = 1;
    });
  });
  descs.forEach((d, i) => {
    if (!descUsed[i]) badInput(`descs[${i}]: description ${d.id} has no fd`);
  });

  // Per pipe: which kind of description it has, its FIFO path, its pipe2()-made ends. Per path:
  // one thing in the file system (the simulator's node, as each kind's module says), one device.
  const pipeKind = new Map<number, { kind: DescKind; path?: string; at: number; read?: number; write?: number }>();
  const pathKind = new Map<string, { kind: DescKind; node: string; pipe?: number; rdev?: number; at: number }>();
  descs.forEach((d, i) => {
    const where = `descs[${i}]`;
    const node = nodeOf(d);
    if (node !== undefined) {
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
    if (pipe === undefined) return;
    if (!pipeIndex.has(pipe)) badInput(`${where}.pipe: no pipe with id ${pipe}`);
    let info = pipeKind.get(pipe);
    if (info === undefined) {
      info = { kind: d.kind, path: pathOf(d), at: i };
      pipeKind.set(pipe, info);
    } else if (info.kind !== d.kind) {
      badInput(`${where}.kind: pipe ${pipe} has a ${info.kind} description (descs[${info.at}]) and a ${d.kind} one`);
    } else if (info.path !== pathOf(d)) {
      badInput(`${where}.path: FIFO pipe ${pipe} is ${show(info.path)} in descs[${info.at}], not ${show(pathOf(d))}`);
    }
    if (d.kind !== 'pipe' || (d.flags & O_LARGEFILE) !== 0) return;
    const mode = d.flags & O_ACCMODE;
    if (mode === O_RDWR) badInput(`${where}.flags: an O_RDWR pipe description always has O_LARGEFILE`);
    // pipe2() gives only O_NONBLOCK and O_DIRECT, and F_SETFL cannot add O_DSYNC.
    if ((d.flags & O_DSYNC) !== 0) badInput(`${where}.flags: O_DSYNC on a pipe end made by pipe2() (no O_LARGEFILE): nothing can set it there`);
    const end = mode === O_RDONLY ? 'read' : 'write';
    const other = info[end];
    if (other !== undefined) {
      badInput(`${where}.flags: pipe ${pipe} already has a ${end} end made by pipe2() (descs[${other}]); a reopened end has O_LARGEFILE`);
    }
    info[end] = i;
  });
  pipes.forEach((p, i) => {
    if (!pipeKind.has(p.id)) badInput(`pipes[${i}]: pipe ${p.id} has no description`);
  });
  // A socket pair is what one socketpair() made: at most two ends, of one type.
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
  // A pty slave is made through its master: the master must be in the image.
  descs.forEach((d, i) => {
    if (d.kind === 'pts' && descs[descIndex.get(d.master) ?? -1]?.kind !== 'ptmx') badInput(`descs[${i}].master: no pty master (ptmx) description with id ${d.master}`);
  });
  return { descs, pipes, processes };
}

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
