// Bad whole-process images (docs/process-image.md: a file header, then records TREE, FDS, then HEAD
// and its PAGES per live member, END holding the checksum of every byte before it). Byte damage is left for the END checksum to
// catch; lies in the head or in the record structure get a recomputed END, so they reach the
// validation behind it.
import { Unpackr } from 'msgpackr';
import { PAGE_SIZE, PROCESS_FORMAT_VERSION, PROCESS_MAGIC, RECORD_END, RECORD_FDS, RECORD_HEAD, RECORD_PAGES, RECORD_TREE } from '../image/process-format.js';
import { Rng } from '../fuzz/random.js';
import type { Column } from './cli.js';
import type { Mutant, MutantOptions, Seed } from './mutant.js';
import { clone, pack } from './raw.js';
import { imageChecksum } from '../image/checksum.js';

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
const FILE_HEADER = 16;

export const isProcessSeed = (s: Seed): boolean => s.bytes.subarray(0, PROCESS_MAGIC.length).equals(PROCESS_MAGIC);

interface Parsed {
  header: Buffer;
  /** every record before END */
  records: Array<{ type: number; body: Buffer }>;
}

function parse(bytes: Buffer): Parsed {
  const records: Parsed['records'] = [];
  let at = FILE_HEADER;
  for (;;) {
    const type = bytes.readUInt32LE(at);
    const length = bytes.readUInt32LE(at + 4);
    const body = bytes.subarray(at + 8, at + 8 + length);
    at += 8 + length;
    if (type === RECORD_END) break;
    records.push({ type, body });
  }
  return { header: bytes.subarray(0, FILE_HEADER), records };
}

const record = (type: number, body: Buffer, length = body.length): Buffer => {
  const h = Buffer.alloc(8);
  h.writeUInt32LE(type, 0);
  h.writeUInt32LE(length >>> 0, 4);
  return Buffer.concat([h, body]);
};

/** The file for these records, with an END record whose checksum matches. */
function seal(header: Buffer, records: Buffer[]): Buffer {
  const before = Buffer.concat([header, ...records]);
  return Buffer.concat([before, record(RECORD_END, imageChecksum(before))]);
}

// The head is deliberately untyped here: mutants put any value anywhere.
type Loose = any;

/** Paths to the values of the head (arrays: their first element), skipping the bulky binaries. */
function headPaths(value: unknown, at: Array<string | number> = []): Array<Array<string | number>> {
  if (value instanceof Uint8Array || value === null || typeof value !== 'object') return [];
  const out: Array<Array<string | number>> = [];
  const entries: Array<[string | number, unknown]> = Array.isArray(value) ? (value.length ? [[0, value[0]]] : []) : Object.entries(value);
  for (const [k, v] of entries) out.push([...at, k], ...headPaths(v, [...at, k]));
  return out;
}

function wrong(original: unknown): unknown[] {
  if (original instanceof Uint8Array) return [null, 'x', 7, Buffer.alloc(1)];
  if (Array.isArray(original)) return [null, {}, 'x', 7];
  if (original === null) return [7, 'x', []];
  switch (typeof original) {
    case 'number':
      return [null, 'x', -1, 0.5, 2 ** 64];
    case 'string':
      return [null, 7, []];
    case 'boolean':
      return [null, 1];
    default:
      return [null, [], 7];
  }
}

/** Head fields the format lets be null (docs/process-image.md). */
const NULLABLE = new Set(['exe', 'rseq', 'robustList', 'vdsoSha256', 'soft', 'hard', 'file']);

/**
 * Whether replacing `original` by `w` can leave a valid head: null where null is allowed, a number
 * for an unlimited (null) rlimit, any number for a file's mtime, -1 for the attributes that may be
 * negative, another length of a binary the
 * head does not size (auxv; the XSAVE area is checked against the CPU at restart).
 */
function mayStayValid(key: string | number, original: unknown, w: unknown): boolean {
  if (original === null) return true;
  if (w === null && NULLABLE.has(String(key))) return true;
  if (key === 'mtimeMs') return true;
  // The attributes that may be negative: -1 is an oom_score_adj and a nice value.
  if ((key === 'oomScoreAdj' || key === 'nice') && w === -1) return true;
  return original instanceof Uint8Array && w instanceof Uint8Array;
}

/** A whole-process image with its head changed by `change` and the END checksum recomputed. */
export function withHead(bytes: Buffer, change: (head: Loose) => void): Buffer {
  const parsed = parse(bytes);
  const at = parsed.records.findIndex((r) => r.type === RECORD_HEAD);
  const head: Loose = unpackr.unpack(parsed.records[at]!.body);
  change(head);
  return seal(parsed.header, parsed.records.map((r, i) => (i === at ? record(RECORD_HEAD, pack(head)) : record(r.type, r.body))));
}

/** Mutants of one whole-process image; `columns` adds `restart` to what must refuse them. */
export function* processMutants(s: Seed, opts: MutantOptions, columns: readonly Column[]): Generator<Mutant> {
  const rng = new Rng(opts.seed ^ 0x70c);
  const parsed = parse(s.bytes);
  const [treeRec, fdsRec, headRec, ...pageRecs] = parsed.records;
  if (treeRec?.type !== RECORD_TREE || fdsRec?.type !== RECORD_FDS || headRec?.type !== RECORD_HEAD) throw new Error(`${s.name}: not TREE, FDS, HEAD first`);
  const head: Loose = unpackr.unpack(headRec.body);
  const tree: Loose = unpackr.unpack(treeRec.body);
  const rebuild = (h: Buffer, fds: Buffer, pages: Array<{ type: number; body: Buffer }>, t: Buffer = treeRec.body): Buffer =>
    seal(parsed.header, [record(RECORD_TREE, t), record(RECORD_FDS, fds), record(RECORD_HEAD, h), ...pages.map((p) => record(p.type, p.body))]);
  const m = (family: string, name: string, bytes: () => Buffer): Mutant => ({ family, name: `${s.name}: ${name}`, expect: 'reject', bytes, columns });

  // Truncations: every length through the tree, fd table and head, random ones in the pages.
  const headEnd = FILE_HEADER + 24 + treeRec.body.length + headRec.body.length + fdsRec.body.length;
  for (let n = 0; n < headEnd; n += n < 64 ? 1 : 97) yield m('proc-truncated', `cut to ${n} bytes`, () => s.bytes.subarray(0, n));
  for (let i = 0; i < opts.truncations; i++) {
    const n = headEnd + rng.below(s.bytes.length - headEnd);
    yield m('proc-truncated', `cut to ${n} bytes`, () => s.bytes.subarray(0, n));
  }
  for (let i = 0; i < opts.flips; i++) {
    const bit = rng.below(s.bytes.length * 8);
    yield m('proc-bit-flip', `bit ${bit}`, () => {
      const b = Buffer.from(s.bytes);
      b[bit >> 3]! ^= 1 << (bit & 7);
      return b;
    });
  }
  // The file header and the record structure, with the END checksum recomputed.
  const header = (change: (h: Buffer) => void): Buffer => {
    const h = Buffer.from(parsed.header);
    change(h);
    return seal(h, parsed.records.map((r) => record(r.type, r.body)));
  };
  for (const version of [PROCESS_FORMAT_VERSION + 1, PROCESS_FORMAT_VERSION - 1, 0]) {
    yield m('proc-record', `version ${version}`, () => header((h) => h.writeUInt32LE(version, 8)));
  }
  yield m('proc-record', 'magic one byte off', () => header((h) => void (h[3]! ^= 1)));
  const body = (r: { type: number; body: Buffer }): Buffer => record(r.type, r.body);
  const all = parsed.records;
  // all[0] the tree, all[1] the fd table, all[2] the head, then its page runs.
  const structural: Array<[string, () => Buffer[]]> = [
    ['no tree', () => all.slice(1).map(body)],
    ['no head', () => [...all.slice(0, 2), ...all.slice(3)].map(body)],
    ['no fd table', () => [all[0]!, ...all.slice(2)].map(body)],
    ['fd table first', () => [all[1]!, all[0]!, ...all.slice(2)].map(body)],
    ['head before the fd table', () => [all[0]!, all[2]!, all[1]!, ...all.slice(3)].map(body)],
    ['two trees', () => [all[0]!, ...all].map(body)],
    ['two heads', () => [...all.slice(0, 3), all[2]!, ...all.slice(3)].map(body)],
    ['a page run before the head', () => [...all.slice(0, 2), ...(all[3] ? [all[3]] : []), all[2]!, ...all.slice(4)].map(body)],
    ['an unknown record type', () => [...all.map(body), record(9, Buffer.alloc(4))]],
    ['a head record that claims 4 GiB', () => [...all.slice(0, 2).map(body), record(RECORD_HEAD, all[2]!.body, 0xffffffff), ...all.slice(3).map(body)]],
    ['a tree record that claims 4 GiB', () => [record(RECORD_TREE, all[0]!.body, 0xffffffff), ...all.slice(1).map(body)]],
    ['a page record that claims 64 MiB', () => [...all.slice(0, 3).map(body), ...(all[3] ? [record(RECORD_PAGES, all[3].body, 64 << 20)] : []), ...all.slice(4).map(body)]],
    ['page runs in reverse order', () => [...all.slice(0, 3).map(body), ...all.slice(3).reverse().map(body)]],
    ['a page run twice', () => [...all.map(body), ...(all[3] ? [body(all[3])] : [])]],
    ['an empty page run', () => [...all.slice(0, 3).map(body), record(RECORD_PAGES, Buffer.alloc(16)), ...all.slice(3).map(body)]],
  ];
  for (const [name, records] of structural) yield m('proc-record', name, () => seal(parsed.header, records()));
  yield m('proc-record', 'bytes after the end record', () => Buffer.concat([s.bytes, Buffer.from([0])]));
  yield m('proc-record', 'no end record', () => Buffer.concat([parsed.header, ...all.map(body)]));
  const run = pageRecs[0];
  if (run) {
    const page = (change: (b: Buffer) => void, name: string): Mutant =>
      m('proc-record', name, () => {
        const b = Buffer.from(run.body);
        change(b);
        return rebuild(headRec.body, fdsRec.body, [{ type: RECORD_PAGES, body: b }, ...pageRecs.slice(1)]);
      });
    yield page((b) => b.writeUInt32LE(99_999, 0), 'a page run for a mapping the head lacks');
    yield page((b) => b.writeBigUInt64LE(b.readBigUInt64LE(8) + 1n, 8), 'a page run not page-aligned');
    yield page((b) => b.writeBigUInt64LE(0xfffffffff000n, 8), 'a page run outside its mapping');
  }
  // Guard regions the head cannot have: misplaced, not in order, not merged, in the vdso, or over
  // a page the image carries.
  const range = (at: number, pages: number): Loose => ({ start: at, end: at + pages * PAGE_SIZE });
  const lies: Array<[string, (mappings: Loose[]) => void]> = [];
  const wide = head.mappings.findIndex((x: Loose) => x.kind === 'anon' && x.end - x.start >= 3 * PAGE_SIZE);
  if (wide >= 0) {
    const { start, end } = head.mappings[wide];
    lies.push(
      ['a guard region not page-aligned', (ms) => void (ms[wide].guards = [range(start + 1, 1)])],
      ['a guard region past its mapping', (ms) => void (ms[wide].guards = [range(end - PAGE_SIZE, 2)])],
      ['guard regions out of order', (ms) => void (ms[wide].guards = [range(start + 2 * PAGE_SIZE, 1), range(start, 1)])],
      ['two adjacent guard regions', (ms) => void (ms[wide].guards = [range(start, 1), range(start + PAGE_SIZE, 1)])],
    );
  }
  const vdso = head.mappings.findIndex((x: Loose) => x.kind === 'vdso');
  if (vdso >= 0) lies.push(['a guard region in the vdso', (ms) => void (ms[vdso].guards = [range(ms[vdso].start, 1)])]);
  // A shared mapping of a memfd or deleted file names a description the process holds of one.
  const shared = head.mappings.findIndex((x: Loose) => x.kind === 'shared-file' || x.kind === 'anon');
  if (shared >= 0) {
    const unnamed = (desc: number) => (ms: Loose[]): void => void Object.assign(ms[shared], { kind: 'shared-unnamed', file: null, unnamed: { desc, offset: 0 } });
    lies.push(['a shared-unnamed mapping of a description the fd table lacks', unnamed(99_999)], ['a shared-unnamed mapping of a description that is no memfd', unnamed(0)]);
  }
  if (run) lies.push(['a guard region over a page the image carries', (ms) => void (ms[run.body.readUInt32LE(0)].guards = [range(Number(run.body.readBigUInt64LE(8)), 1)])]);
  for (const [name, change] of lies) {
    yield m('proc-head', name, () => {
      const h = clone(head);
      change(h.mappings);
      return rebuild(pack(h), fdsRec.body, pageRecs);
    });
  }
  // The head: every field of the wrong type, removed, or beside an unknown one.
  for (const path of headPaths(head)) {
    const key = path[path.length - 1]!;
    const parentOf = (h: Loose): Loose => path.slice(0, -1).reduce((v: Loose, k) => v[k], h);
    const original = parentOf(head)[key];
    for (const w of wrong(original)) {
      const mutant = m('proc-head', `head.${path.join('.')} = ${w instanceof Uint8Array ? `bin(${w.length})` : typeof w === 'object' ? JSON.stringify(w) : String(w)}`, () => {
        const h = clone(head);
        parentOf(h)[key] = w;
        return rebuild(pack(h), fdsRec.body, pageRecs);
      });
      if (mayStayValid(key, original, w)) mutant.expect = 'any';
      yield mutant;
    }
    if (typeof key === 'string') {
      yield m('proc-head', `no head.${path.join('.')}`, () => {
        const h = clone(head);
        delete parentOf(h)[key];
        return rebuild(pack(h), fdsRec.body, pageRecs);
      });
    }
  }
  // Well-typed lies: values no process can have, each refused by the head's meaning check
  // (src/image/process-check.ts) before a restart starts anything.
  for (const [name, change] of headLies(head)) {
    yield m('proc-lie', name, () => {
      const h = clone(head);
      change(h);
      return rebuild(pack(h), fdsRec.body, pageRecs);
    });
  }
  yield m('proc-head', 'an unknown field in the head', () => rebuild(pack({ ...clone(head), zz: 1 }), fdsRec.body, pageRecs));
  yield m('proc-head', 'the head not msgpack', () => rebuild(Buffer.from([0xc1, 0xc1]), fdsRec.body, pageRecs));
  yield m('proc-head', 'the fd table not an image', () => rebuild(headRec.body, Buffer.from('not an image'), pageRecs));
  // The tree: every member field of the wrong type or removed, and trees no process could form.
  const member = tree.members[0];
  const withTree = (change: (t: Loose) => void): Buffer => {
    const t = clone(tree);
    change(t);
    return rebuild(headRec.body, fdsRec.body, pageRecs, pack(t));
  };
  for (const key of Object.keys(member)) {
    for (const w of wrong(member[key])) {
      yield m('proc-tree', `tree.members[0].${key} = ${JSON.stringify(w)}`, () => withTree((t) => void (t.members[0][key] = w)));
    }
    yield m('proc-tree', `no tree.members[0].${key}`, () => withTree((t) => void delete t.members[0][key]));
  }
  const pid = member.pid as number;
  const other = pid === 1 ? 2 : pid - 1;
  const treeLies: Array<[string, (t: Loose) => void]> = [
    ['an unknown field in the tree', (t) => void (t.zz = 1)],
    ['no members', (t) => void (t.members = [])],
    ['the root a zombie', (t) => void (t.members[0].zombie = { code: 0, signal: null, core: false })],
    ['a zombie with both a code and a signal', (t) => void t.members.push({ ...member, pid: other, ppid: pid, zombie: { code: 1, signal: 9, core: false } })],
    ['a zombie exit code of 256', (t) => void t.members.push({ ...member, pid: other, ppid: pid, zombie: { code: 256, signal: null, core: false } })],
    ['a member twice', (t) => void t.members.push({ ...member, ppid: pid, zombie: { code: 0, signal: null, core: false } })],
    ['a member whose parent is not in the tree', (t) => void t.members.push({ ...member, pid: other, ppid: 4_000_000, zombie: { code: 0, signal: null, core: false } })],
    ['a session no member leads', (t) => void t.members.push({ ...member, pid: other, ppid: pid, sid: 4_000_000, zombie: { code: 0, signal: null, core: false } })],
    ['a group no member leads', (t) => void t.members.push({ ...member, pid: other, ppid: pid, pgid: 4_000_000, zombie: { code: 0, signal: null, core: false } })],
    ['a live member without a head', (t) => void t.members.push({ ...member, pid: other, ppid: pid, zombie: null })],
    ['the tree names another pid than the head', (t) => void (t.members[0].pid = other)],
    ['a comm of 16 characters', (t) => void (t.members[0].comm = 'x'.repeat(16))],
  ];
  for (const [name, change] of treeLies) yield m('proc-tree', name, () => withTree(change));
}

const siginfo = (signo: number): Buffer => {
  const b = Buffer.alloc(128);
  b.writeInt32LE(signo, 0);
  return b;
};

/** A copy of the 64 sigactions with signal sig's handler (and flags) set. */
const withAction = (actions: Uint8Array, sig: number, handler: bigint, flags = 0n): Buffer => {
  const b = Buffer.from(actions);
  b.writeBigUInt64LE(handler, (sig - 1) * 32);
  b.writeBigUInt64LE(flags, (sig - 1) * 32 + 8);
  return b;
};

const BEYOND = 2 ** 47;

/** A System V object's saved owner and mode, for the mutants that add one. */
const IPC_OWNER = { mode: 0o600, uid: 0, gid: 0, cuid: 0, cgid: 0 };

/** Changes that keep every field's type but make the head impossible. */
function headLies(head: Loose): Array<[string, (h: Loose) => void]> {
  const last = head.mappings.length - 1;
  const regAt = (name: string): number => ['r15', 'r14', 'r13', 'r12', 'rbp', 'rbx', 'r11', 'r10', 'r9', 'r8', 'rax', 'rcx', 'rdx', 'rsi', 'rdi', 'orig_rax', 'rip', 'cs', 'eflags', 'rsp', 'ss', 'fs_base', 'gs_base', 'ds', 'es', 'fs', 'gs'].indexOf(name) * 8;
  const reg = (name: string, value: bigint) => (h: Loose): void => {
    const b = Buffer.from(h.regs);
    b.writeBigUInt64LE(value, regAt(name));
    h.regs = b;
  };
  return [
    ['a pending SIGKILL (shared)', (h) => void h.signals.pending.push({ shared: true, info: siginfo(9) })],
    ['a pending SIGKILL (thread)', (h) => void h.signals.pending.push({ shared: false, info: siginfo(9) })],
    ['a pending SIGSTOP', (h) => void h.signals.pending.push({ shared: true, info: siginfo(19) })],
    ['a pending signal 0', (h) => void h.signals.pending.push({ shared: true, info: siginfo(0) })],
    ['a pending signal 65', (h) => void h.signals.pending.push({ shared: false, info: siginfo(65) })],
    ['a pending signal -1', (h) => void h.signals.pending.push({ shared: false, info: siginfo(-1) })],
    ['a handler for SIGKILL', (h) => void (h.signals.actions = withAction(h.signals.actions, 9, 0x401000n))],
    ['SIGSTOP ignored', (h) => void (h.signals.actions = withAction(h.signals.actions, 19, 1n))],
    ['a handler beyond the address space', (h) => void (h.signals.actions = withAction(h.signals.actions, 10, 0xffff800000000000n))],
    ['a restorer beyond the address space', (h) => {
      const b = withAction(h.signals.actions, 10, 0x401000n, 0x04000000n);
      b.writeBigUInt64LE(0xffffffffff600000n, 9 * 32 + 16);
      h.signals.actions = b;
    }],
    ['SIGKILL blocked', (h) => void (h.signals.blocked = Buffer.from([0, 1, 0, 0, 0, 0, 0, 0]))],
    ['a System V semaphore of value 40000 (above 32767)', (h) => void h.sysvIpc.push({ kind: 'sem', key: 0, id: 7, saved: { ...IPC_OWNER, values: [40000] } })],
    ['a System V semaphore set of no semaphores', (h) => void h.sysvIpc.push({ kind: 'sem', key: 0, id: 7, saved: { ...IPC_OWNER, values: [] } })],
    ['a System V message of type 0', (h) => void h.sysvIpc.push({ kind: 'msg', key: 0, id: 7, saved: { ...IPC_OWNER, qbytes: 16384, messages: [{ type: 0, text: Buffer.from('x') }] } })],
    ['an alternate stack of 16 bytes', (h) => void (h.signals.altstack = { sp: 0x10000000, flags: 0, size: 16 })],
    ['an alternate stack with unknown flags', (h) => void (h.signals.altstack = { sp: 0x10000000, flags: 8, size: 65536 })],
    ['a mapping beyond the address space', (h) => void (h.mappings[last].end = BEYOND + 4096)],
    ['two overlapping mappings', (h) => void (h.mappings[1].start = h.mappings[0].start)],
    ['a vdso mapping named otherwise', (h) => void (h.mappings.find((x: Loose) => x.kind === 'vdso').name = '[heap]')],
    ['two vdso mappings', (h) => {
      const v = h.mappings.findIndex((x: Loose) => x.kind === 'vdso');
      const anon = h.mappings.findIndex((x: Loose) => x.kind === 'anon' && x.name === '');
      Object.assign(h.mappings[anon], { kind: 'vdso', name: '[vdso]', file: null });
      if (v < 0) throw new Error('the seed has no vdso');
    }],
    ['a file mapping at a relative path', (h) => void (h.mappings.find((x: Loose) => x.file).file.path = 'lib.so')],
    ['pid 0', (h) => void (h.process.pid = 0)],
    ['pid 2^23', (h) => void (h.process.pid = 2 ** 23)],
    ['a comm of 16 characters', (h) => void (h.process.comm = 'abcdefghijklmnop')],
    ['a comm with a NUL', (h) => void (h.process.comm = 'a\0b')],
    ['a relative cwd', (h) => void (h.cwd = 'tmp')],
    ['a relative exe', (h) => void (h.exe = { ...h.exe, path: 'bin/sleeper' })],
    ['umask 01000', (h) => void (h.umask = 0o1000)],
    ['a removed cwd with mode 010000', (h) => void (h.cwdRemoved = 0o10000)],
    ['the root directory removed', (h) => void ((h.cwd = '/'), (h.cwdRemoved = 0o755))],
    ['a removed cwd as text', (h) => void (h.cwdRemoved = 'yes')],
    ['personality 0xffffffff', (h) => void (h.personality = 0xffffffff)],
    ['rlimit resource 16', (h) => void (h.rlimits[0].resource = 16)],
    ['one rlimit twice', (h) => void h.rlimits.push({ ...h.rlimits[0] })],
    ['a soft limit above the hard one', (h) => void (h.rlimits[0] = { resource: h.rlimits[0].resource, soft: 100, hard: 10 })],
    ['an unlimited soft limit under a finite hard one', (h) => void (h.rlimits[0] = { resource: h.rlimits[0].resource, soft: null, hard: 10 })],
    ['brk below its start', (h) => void (h.mm.brk = h.mm.startBrk - 4096)],
    ['the arguments ending before they start', (h) => void (h.mm.argEnd = h.mm.argStart - 1)],
    ['an mm field beyond the address space', (h) => void (h.mm.startStack = BEYOND + 4096)],
    ['auxv without its AT_NULL', (h) => void (h.auxv = Buffer.from(h.auxv).subarray(0, h.auxv.length - 16))],
    ['auxv of 13 bytes', (h) => void (h.auxv = Buffer.alloc(13))],
    ['a 32-bit code segment', reg('cs', 0x23n)],
    ['fs_base beyond the address space', reg('fs_base', 0xffff800000000000n)],
    ['an XSAVE area of 64 bytes', (h) => void (h.xstate = Buffer.alloc(64))],
    ['a robust list of 8 bytes', (h) => void (h.robustList = { head: 0x10000000, len: 8 })],
    ['a robust list beyond the address space', (h) => void (h.robustList = { head: BEYOND, len: 24 })],
    ['rseq misaligned', (h) => void (h.rseq = { pointer: 0x10000004, size: 32, signature: 0x53053053 })],
    ['rseq of 16 bytes', (h) => void (h.rseq = { pointer: 0x10000000, size: 16, signature: 0x53053053 })],
    ['rseq with a 33-bit signature', (h) => void (h.rseq = { pointer: 0x10000000, size: 32, signature: 2 ** 32 })],
    ['clear_child_tid beyond the address space', (h) => void (h.tidAddress = BEYOND)],
  ];
}
