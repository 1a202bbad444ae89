// Bad images made from good ones. Each mutant says what it is (family and name, enough to rebuild
// it), whether every reader must refuse it ('reject') or may also accept it ('any': the change
// can leave a valid image, e.g. a flipped byte of pipe data behind a recomputed checksum), and
// makes its bytes only when asked, so a run never holds more than one huge mutant.
import { IMAGE_FORMAT_VERSION, IMAGE_MAGIC } from '../image/format.js';
import { MAX_ENTRIES, MAX_NOFILE } from '../image/validate.js';
import { O_ACCMODE, O_CLOEXEC, O_DIRECTORY, O_DSYNC, O_LARGEFILE, O_PATH, O_RDONLY, O_RDWR, O_WRONLY } from '../model/fdtable.js';
import { Rng } from '../fuzz/random.js';
import { COLUMNS, type Column } from './cli.js';
import { isProcessSeed, processMutants } from './process.js';
import type { Mutant, MutantOptions, Seed } from './mutant.js';
import { clone, envelope, MARKER, openPayload, pack, seal, sealWithRaw, sha256 } from './raw.js';

// The decoded payload is deliberately untyped: mutants put any value anywhere.
type Loose = any;

// ---------------------------------------------------------------------------------------------
// Byte-level damage: no checksum fix-up, so every one of these must be refused.

function* truncations(seeds: Seed[], opts: MutantOptions, rng: Rng): Generator<Mutant> {
  const smallest = seeds.reduce((a, b) => (b.bytes.length < a.bytes.length ? b : a));
  for (let n = 0; n < smallest.bytes.length; n++) {
    yield { family: 'truncated', name: `${smallest.name} cut to ${n} bytes`, expect: 'reject', bytes: () => smallest.bytes.subarray(0, n) };
  }
  for (const s of seeds) {
    if (s === smallest) continue;
    for (let i = 0; i < opts.truncations; i++) {
      const n = rng.below(s.bytes.length);
      yield { family: 'truncated', name: `${s.name} cut to ${n} bytes`, expect: 'reject', bytes: () => s.bytes.subarray(0, n) };
    }
  }
}

function* bitFlips(seeds: Seed[], opts: MutantOptions, rng: Rng): Generator<Mutant> {
  for (const s of seeds) {
    for (let i = 0; i < opts.flips; i++) {
      // Mostly one bit; sometimes a burst of several, anywhere in the file.
      const bits = rng.chance(0.7) ? [rng.below(s.bytes.length * 8)] : Array.from({ length: rng.int(2, 16) }, () => rng.below(s.bytes.length * 8));
      yield {
        family: 'bit-flip',
        name: `${s.name} bits ${bits.join(',')}`,
        expect: 'reject',
        bytes: () => {
          const b = Buffer.from(s.bytes);
          for (const bit of bits) b[bit >> 3]! ^= 1 << (bit & 7);
          return b;
        },
      };
    }
  }
}

function* splices(seeds: Seed[], opts: MutantOptions, rng: Rng): Generator<Mutant> {
  for (const s of seeds) {
    for (let i = 0; i < opts.splices; i++) {
      const at = rng.below(s.bytes.length);
      const len = rng.int(1, 8);
      const junk = Buffer.from(rng.bytes(len));
      const how = rng.pick(['overwrite', 'insert', 'delete'] as const);
      yield {
        family: 'splice',
        name: `${s.name} ${how} ${len} at ${at}`,
        expect: 'reject',
        bytes: () => {
          const b = s.bytes;
          if (how === 'insert') return Buffer.concat([b.subarray(0, at), junk, b.subarray(at)]);
          if (how === 'delete') return Buffer.concat([b.subarray(0, at), b.subarray(at + len)]);
          const out = Buffer.from(b);
          junk.copy(out, at);
          // An overwrite with the same bytes would be no change at all.
          if (out.equals(b)) out[at]! ^= 0xff;
          return out;
        },
      };
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The envelope: magic, version, checksum, payload and the file as a whole.

function* envelopes(seeds: Seed[]): Generator<Mutant> {
  const s = seeds[0]!;
  const payloadBytes = pack(openPayload(s.bytes));
  const e = (name: string, bytes: () => Buffer): Mutant => ({ family: 'envelope', name, expect: 'reject', bytes });
  for (const magic of ['', 'cr-fd-imagf', 'CR-FD-IMAGE', 'cr-fd-image\0', ' cr-fd-image', 'cr-proc\n', 7, null, true, [], {}, Buffer.from(IMAGE_MAGIC)]) {
    yield e(`magic ${JSON.stringify(magic)}`, () => envelope(payloadBytes, { magic }));
  }
  yield e('no magic', () => envelope(payloadBytes, { magic: undefined }));
  for (const version of [0, 1, 2, IMAGE_FORMAT_VERSION + 1, 99, -1, 1.5, 2 ** 32 + 1, 2 ** 53, '1', null, true, [1], { v: 1 }, 2n ** 64n - 1n, NaN]) {
    yield e(`formatVersion ${String(version)}`, () => envelope(payloadBytes, { formatVersion: version }));
  }
  yield e('no formatVersion', () => envelope(payloadBytes, { formatVersion: undefined }));
  const checksums: Array<[string, unknown]> = [
    ['missing', undefined],
    ['null', null],
    ['empty map', {}],
    ['31 bytes', { sha256: sha256(payloadBytes).subarray(0, 31) }],
    ['33 bytes', { sha256: Buffer.concat([sha256(payloadBytes), Buffer.alloc(1)]) }],
    ['zeros', { sha256: Buffer.alloc(32) }],
    ['one bit off', { sha256: (() => { const h = sha256(payloadBytes); h[31]! ^= 1; return h; })() }],
    ['of another payload', { sha256: sha256(Buffer.concat([payloadBytes, Buffer.alloc(1)])) }],
    ['hex string', { sha256: sha256(payloadBytes).toString('hex') }],
    ['as an array', [...sha256(payloadBytes)]],
    ['md5 field', { md5: sha256(payloadBytes).subarray(0, 16) }],
    ['an extra field', { sha256: sha256(payloadBytes), crc32: 0 }],
  ];
  for (const [name, checksum] of checksums) {
    yield e(`checksum ${name}`, () => envelope(payloadBytes, { checksum }));
  }
  const wrongPayloads: Array<[string, Buffer | undefined, unknown]> = [
    ['missing', undefined, undefined],
    ['a string', undefined, payloadBytes.toString('latin1')],
    ['a map', undefined, openPayload(s.bytes)],
    ['nil', undefined, null],
    ['empty bytes', Buffer.alloc(0), undefined],
    ['garbage bytes', Buffer.from('\xc1\xc1\xc1 not msgpack', 'latin1'), undefined],
    ['an array', pack([1, 2, 3]), undefined],
    ['a number', pack(42), undefined],
    ['trailing byte', Buffer.concat([payloadBytes, Buffer.from([0xc0])]), undefined],
    ['two payloads', Buffer.concat([payloadBytes, payloadBytes]), undefined],
  ];
  for (const [name, bytes, value] of wrongPayloads) {
    yield e(`payload ${name}`, () => {
      if (bytes) return envelope(bytes);
      return envelope(payloadBytes, { payload: value, checksum: { sha256: sha256(payloadBytes) } });
    });
  }
  yield e('an unknown envelope field', () => envelope(payloadBytes, { extra: 1 }));
  yield e('__proto__ in the envelope', () => envelope(payloadBytes, { ['__proto__']: { magic: IMAGE_MAGIC } }));
  for (const [name, value] of [['an array', [IMAGE_MAGIC, 1]], ['a number', 1], ['a string', IMAGE_MAGIC], ['nil', null], ['bytes', payloadBytes]] as Array<[string, unknown]>) {
    yield e(`envelope is ${name}`, () => pack(value));
  }
  yield e('empty file', () => Buffer.alloc(0));
  yield e('one NUL', () => Buffer.alloc(1));
  yield e('trailing garbage', () => Buffer.concat([s.bytes, Buffer.from('junk')]));
  yield e('two images back to back', () => Buffer.concat([s.bytes, s.bytes]));
  yield e('a UTF-8 BOM first', () => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), s.bytes]));
  yield e('JSON that does not parse', () => Buffer.from('{"fds": [}'));
  yield e('JSON of the wrong shape', () => Buffer.from('{"magic": "cr-fd-image"}'));
  yield e('JSON with a huge number', () => Buffer.from(`{"descs":[],"pipes":[],"processes":[{"pid":1,"fds":[{"fd":1e999,"desc":0,"cloexec":false}],"rlimit":{"soft":1,"hard":1}}]}`));
  yield e('JSON of the old one-process shape', () => Buffer.from(`{"fds":[],"descs":[],"pipes":[],"rlimit":{"soft":1,"hard":1}}`));
  yield e('text', () => Buffer.from('hello, I am not an image\n'));
  yield e('an ELF header', () => Buffer.from('\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0', 'latin1'));
}

// ---------------------------------------------------------------------------------------------
// Lies: payloads that decode and carry a valid checksum but say something that cannot be.

/**
 * The payload's table as one process sees it: fds and rlimit are the first process's, descs and
 * pipes the shared ones. The lies below were written for one process; each still changes the
 * payload itself.
 */
const table = (p: Loose): Loose => {
  const t = p.table;
  const proc = t.processes[0];
  return {
    get fds() { return proc.fds; },
    set fds(v: Loose) { proc.fds = v; },
    get rlimit() { return proc.rlimit; },
    set rlimit(v: Loose) { proc.rlimit = v; },
    get descs() { return t.descs; },
    set descs(v: Loose) { t.descs = v; },
    get pipes() { return t.pipes; },
    set pipes(v: Loose) { t.pipes = v; },
  };
};
const nextId = (list: Array<{ id: number }>): number => list.reduce((m, x) => Math.max(m, x.id), -1) + 1;
const freeFd = (t: Loose): number | undefined => {
  const used = new Set<number>(t.fds.map((f: Loose) => f.fd));
  for (let fd = 0; fd < t.rlimit.soft; fd++) if (!used.has(fd)) return fd;
  return undefined;
};

/** Add a description with one fd; undefined if no fd number is free below the soft limit. */
function addDesc(t: Loose, desc: Loose): Loose | undefined {
  const fd = freeFd(t);
  if (fd === undefined) return undefined;
  const d = { id: nextId(t.descs), ...desc };
  t.descs.push(d);
  t.fds.push({ fd, desc: d.id, cloexec: false });
  return d;
}

const pipeDescs = (t: Loose): Loose[] => t.descs.filter((d: Loose) => d.kind === 'pipe');
const pathDescs = (t: Loose): Loose[] => t.descs.filter((d: Loose) => typeof d.path === 'string');
/** A description opened by path, adding a plain file one when the seed has none. */
const somePathDesc = (t: Loose): Loose | undefined =>
  pathDescs(t)[0] ?? addDesc(t, { kind: 'file', flags: O_RDONLY | O_LARGEFILE, path: '/etc/hostname', offset: 0 });

interface Lie {
  name: string;
  /** change the payload; false if the seed has nothing to lie about here */
  apply(p: Loose): boolean;
  knownGap?: string;
  columns?: readonly Column[];
}

/** A change to a payload; it calls skip() when the seed has nothing to lie about there. */
type Change = (p: Loose) => void;
const NOT_HERE = Symbol('not applicable');
const skip = (): never => {
  throw NOT_HERE;
};
const lie = (name: string, apply: Change, knownGap?: string, columns?: readonly Column[]): Lie => ({
  name,
  apply: (p) => {
    try {
      apply(p);
      return true;
    } catch (err) {
      if (err === NOT_HERE) return false;
      throw err;
    }
  },
  knownGap,
  columns,
});

function fdLies(): Lie[] {
  const out: Lie[] = [];
  const badFds: unknown[] = [-1, -(2 ** 31), -(2 ** 53), 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 64, 1e300, 3.5, NaN, Infinity, -Infinity, 2n ** 63n, -(2n ** 63n)];
  for (const v of badFds) out.push(lie(`fd ${String(v)}`, (p) => void (table(p).fds[0].fd = v)));
  out.push(lie('fd at rlimit.soft', (p) => void (table(p).fds[0].fd = table(p).rlimit.soft)));
  out.push(lie('fd at rlimit.hard', (p) => {
    const t = table(p);
    t.fds[0].fd = t.rlimit.hard;
  }));
  out.push(lie('fd above rlimit.soft, below hard', (p) => {
    const t = table(p);
    if (t.rlimit.hard <= t.rlimit.soft) skip();
    t.fds[0].fd = t.rlimit.soft + 1;
  }));
  out.push(lie('rlimit.soft lowered below the highest fd', (p) => {
    const t = table(p);
    t.rlimit.soft = Math.max(...t.fds.map((f: Loose) => f.fd));
  }));
  out.push(lie('rlimit.soft 0', (p) => void (table(p).rlimit.soft = 0)));
  out.push(lie('the same fd twice', (p) => {
    const t = table(p);
    if (t.fds.length < 2) skip();
    t.fds[1].fd = t.fds[0].fd;
  }));
  out.push(lie('an fd repeated as a new entry', (p) => void table(p).fds.push({ ...table(p).fds[0] })));
  out.push(lie('an fd naming a missing description', (p) => void (table(p).fds[0].desc = nextId(table(p).descs) + 7)));
  out.push(lie('an fd naming description -1', (p) => void (table(p).fds[0].desc = -1)));
  out.push(lie('a description with no fds (added)', (p) => void table(p).descs.push({ id: nextId(table(p).descs), kind: 'chr', flags: O_WRONLY | O_LARGEFILE, path: '/dev/null' })));
  out.push(lie('a description with no fds (its fds removed)', (p) => {
    const t = table(p);
    const last = t.fds[t.fds.length - 1].desc;
    t.fds = t.fds.filter((f: Loose) => f.desc !== last);
  }));
  out.push(lie('no fds at all', (p) => void (table(p).fds = [])));
  out.push(lie('a duplicate description id', (p) => {
    const t = table(p);
    if (t.descs.length < 2) skip();
    t.descs[1].id = t.descs[0].id;
  }));
  for (const id of [-1, 2 ** 31, 1.5]) out.push(lie(`description id ${id}`, (p) => void (table(p).descs[0].id = id)));
  out.push(lie('rlimit soft above hard', (p) => {
    const t = table(p);
    t.rlimit.hard = t.rlimit.soft - 1;
  }));
  for (const v of [-1, MAX_NOFILE + 1, 2 ** 53, 1.5]) out.push(lie(`rlimit.hard ${v}`, (p) => void (table(p).rlimit.hard = v)));
  return out;
}

function pipeLies(): Lie[] {
  const out: Lie[] = [];
  // A pipe2() end is the one without O_LARGEFILE; a pipe has at most one of each.
  for (const [end, mode] of [['read', O_RDONLY], ['write', O_WRONLY]] as const) {
    out.push(lie(`two ${end} ends from one pipe2()`, (p) => {
      const t = table(p);
      const d = pipeDescs(t).find((x) => (x.flags & O_ACCMODE) === mode && (x.flags & O_LARGEFILE) === 0);
      if (!d) skip();
      if (!addDesc(t, { kind: 'pipe', flags: mode, pipe: d.pipe })) skip();
    }));
    out.push(lie(`a reopened ${end} end passed off as pipe2()'s`, (p) => {
      const t = table(p);
      const twin = pipeDescs(t).find((x) => (x.flags & O_ACCMODE) === mode && (x.flags & O_LARGEFILE) === 0);
      const reopened = twin && pipeDescs(t).find((x) => x.pipe === twin.pipe && (x.flags & O_ACCMODE) === mode && (x.flags & O_LARGEFILE) !== 0);
      if (!reopened) skip();
      reopened.flags &= ~O_LARGEFILE;
    }));
  }
  out.push(lie('an O_RDWR pipe end without O_LARGEFILE', (p) => {
    const d = pipeDescs(table(p))[0];
    if (!d) skip();
    d.flags = O_RDWR;
  }));
  out.push(lie('O_DSYNC on a pipe2() end', (p) => {
    const d = pipeDescs(table(p)).find((x) => (x.flags & O_LARGEFILE) === 0);
    if (!d) skip();
    d.flags |= O_DSYNC;
  }));
  out.push(lie('a description naming a missing pipe', (p) => {
    const t = table(p);
    const d = t.descs.find((x: Loose) => x.pipe !== undefined);
    if (!d) skip();
    d.pipe = nextId(t.pipes) + 3;
  }));
  out.push(lie('a pipe with no description', (p) => void table(p).pipes.push({ id: nextId(table(p).pipes), capacity: 65536, data: Buffer.alloc(0) })));
  out.push(lie('a duplicate pipe id', (p) => {
    const t = table(p);
    if (t.pipes.length < 2) skip();
    t.pipes[1].id = t.pipes[0].id;
  }));
  out.push(lie('a pipe end on a file description', (p) => {
    const d = pipeDescs(table(p))[0];
    if (!d) skip();
    d.kind = 'file';
    d.path = '/etc/hostname';
    d.offset = 0;
  }));
  out.push(lie('a pipe with a pipe end and a FIFO end', (p) => {
    const t = table(p);
    const d = pipeDescs(t)[0];
    if (!d) skip();
    if (!addDesc(t, { kind: 'fifo', flags: O_RDONLY | O_LARGEFILE, pipe: d.pipe, path: '/tmp/cr-imagefuzz-fifo' })) skip();
  }));
  out.push(lie('one FIFO under two paths', (p) => {
    const t = table(p);
    const d = t.descs.find((x: Loose) => x.kind === 'fifo');
    if (!d) skip();
    if (!addDesc(t, { kind: 'fifo', flags: O_RDONLY | O_LARGEFILE, pipe: d.pipe, path: `${d.path}-other` })) skip();
  }));
  out.push(lie('one FIFO path for two pipes', (p) => {
    const t = table(p);
    const d = t.descs.find((x: Loose) => x.kind === 'fifo');
    if (!d) skip();
    const id = nextId(t.pipes);
    t.pipes.push({ id, capacity: 65536, data: Buffer.alloc(0) });
    if (!addDesc(t, { kind: 'fifo', flags: O_RDONLY | O_LARGEFILE, pipe: id, path: d.path })) skip();
  }));
  out.push(lie('a path that is a FIFO and a file', (p) => {
    const t = table(p);
    const d = t.descs.find((x: Loose) => x.kind === 'fifo');
    if (!d) skip();
    if (!addDesc(t, { kind: 'file', flags: O_RDONLY | O_LARGEFILE, path: d.path, offset: 0 })) skip();
  }));
  // Bytes and capacity.
  const withPipe = (fn: (pipe: Loose, t: Loose) => void): Change => (p) => {
    const t = table(p);
    const pipe = t.pipes[0];
    if (!pipe) skip();
    fn(pipe, t);
  };
  out.push(lie('one byte more than capacity', withPipe((pipe) => {
    pipe.data = Buffer.alloc(pipe.capacity + 1, 0x61);
    delete pipe.packets;
  })));
  out.push(lie('capacity shrunk below the bytes', withPipe((pipe) => {
    if (pipe.data.length <= 4096) {
      pipe.data = Buffer.alloc(5000, 0x62);
      delete pipe.packets;
    }
    pipe.capacity = 4096;
  })));
  for (const cap of [0, -4096, 1, 4095, 4097, 12288, 3 * 65536, 2 ** 31 + 4096, 2 ** 32, 2 ** 53, 2 ** 64, 1.5, 6144.5, NaN, Infinity]) {
    out.push(lie(`capacity ${cap}`, withPipe((pipe) => void (pipe.capacity = cap))));
  }
  out.push(lie('packets that do not sum to the bytes', withPipe((pipe) => {
    if (pipe.data.length === 0) pipe.data = Buffer.alloc(10);
    pipe.packets = [pipe.data.length + 1];
  })));
  out.push(lie('a packet of 0 bytes', withPipe((pipe) => {
    pipe.data = Buffer.alloc(3);
    pipe.packets = [0, 3];
  })));
  out.push(lie('a packet longer than a page', withPipe((pipe) => {
    pipe.data = Buffer.alloc(4097);
    pipe.packets = [4097];
  })));
  out.push(lie('more packets than buffers', withPipe((pipe) => {
    const n = pipe.capacity / 4096 + 1;
    pipe.data = Buffer.alloc(n);
    pipe.packets = Array.from({ length: n }, () => 1);
  })));
  out.push(lie('a negative packet', withPipe((pipe) => {
    pipe.data = Buffer.alloc(2);
    pipe.packets = [3, -1];
  })));
  return out;
}

function descLies(): Lie[] {
  const out: Lie[] = [];
  const d0 = (fn: (d: Loose) => void): Change => (p) => fn(table(p).descs[0]);
  for (const [name, flags] of [
    ['access mode 3', O_ACCMODE],
    ['O_CLOEXEC', O_CLOEXEC],
    ['O_PATH', O_PATH],
    ['O_CREAT', 0o100],
    ['O_TRUNC', 0o1000],
    ['O_DIRECTORY', 0o200000],
    ['__O_SYNC without O_DSYNC', 0o4000000],
    ['unknown bit 2^31', 2 ** 31],
    ['unknown bit 2^30', 2 ** 30],
  ] as Array<[string, number]>) {
    out.push(lie(`flags with ${name}`, d0((d) => void (d.flags = ((d.flags & ~(name === 'access mode 3' ? O_ACCMODE : 0)) | flags) >>> 0))));
  }
  for (const v of [-1, 2 ** 32, 1.5]) out.push(lie(`flags ${v}`, d0((d) => void (d.flags = v))));
  for (const kind of ['socket', '', 'PIPE', 'anon_inode', 'directory', 'other']) out.push(lie(`kind ${JSON.stringify(kind)}`, d0((d) => void (d.kind = kind))));
  out.push(lie('a path on a pipe end', (p) => {
    const d = pipeDescs(table(p))[0];
    if (!d) skip();
    d.path = '/tmp/x';
  }));
  out.push(lie('an offset on a pipe end', (p) => {
    const d = pipeDescs(table(p))[0];
    if (!d) skip();
    d.offset = 0;
  }));
  out.push(lie('a pipe id on a file', (p) => {
    const d = table(p).descs.find((x: Loose) => x.kind === 'file' || x.kind === 'chr');
    if (!d) skip();
    d.pipe = 0;
  }));
  out.push(lie('a file with no offset', (p) => {
    const d = table(p).descs.find((x: Loose) => x.kind === 'file');
    if (!d) skip();
    delete d.offset;
  }));
  for (const off of [-1, 2 ** 53, 2 ** 64, 0.5]) {
    out.push(lie(`file offset ${off}`, (p) => {
      const d = table(p).descs.find((x: Loose) => x.kind === 'file') ?? addDesc(table(p), { kind: 'file', flags: O_LARGEFILE, path: '/etc/hostname', offset: 0 });
      if (!d) skip();
      d.offset = off;
    }));
  }
  out.push(lie('a FIFO without a path', (p) => {
    const d = table(p).descs.find((x: Loose) => x.kind === 'fifo');
    if (!d) skip();
    delete d.path;
  }));
  // The kinds added as modules (src/kinds/): each added to the seed, then made to lie.
  const eventfd = (p: Loose): Loose => addDesc(table(p), { kind: 'eventfd', flags: O_RDWR, count: 3, semaphore: false }) ?? skip();
  const dir = (p: Loose): Loose => addDesc(table(p), { kind: 'dir', flags: O_RDONLY | O_LARGEFILE | O_DIRECTORY, path: '/etc', offset: '0' }) ?? skip();
  const opath = (p: Loose): Loose => addDesc(table(p), { kind: 'opath', flags: O_PATH, path: '/etc/hostname', type: 'regular file' }) ?? skip();
  const timerfd = (p: Loose): Loose => addDesc(table(p), { kind: 'timerfd', flags: O_RDWR, clock: 0, settime: 1, value: '2000000000000000000', interval: '0', ticks: 0 }) ?? skip();
  const signalfd = (p: Loose): Loose => addDesc(table(p), { kind: 'signalfd', flags: O_RDWR, mask: '0000000000000200' }) ?? skip();
  const memfd = (p: Loose): Loose => addDesc(table(p), { kind: 'memfd', flags: O_RDWR | O_LARGEFILE, name: 'm', size: 8192, offset: 0, mode: 0o777, seals: 0, extents: [{ offset: 4096, data: 'aGVsbG8=' }] }) ?? skip();
  const deleted = (p: Loose): Loose => addDesc(table(p), { kind: 'deleted', flags: O_RDONLY | O_LARGEFILE, path: '/tmp/gone', size: 10, offset: 0, mode: 0o600, extents: [{ offset: 2, data: 'aGk=' }] }) ?? skip();
  const tcp = (p: Loose): Loose => addDesc(table(p), {
    kind: 'inet', flags: O_RDWR, family: 4, protocol: 'tcp', state: 'established', address: '127.0.0.1', port: 5000, peerAddress: '127.0.0.1', peerPort: 5001, options: {},
    tcp: { sendSeq: 1000, recvSeq: 2000, sendQueue: 'aGk=', unsent: 1, recvQueue: '', mss: 1460, wscale: [7, 7], sack: true, timestamps: true, tsval: 5, window: [2000, 65535, 65535, 65535, 2000] },
  }) ?? skip();
  const inotify = (p: Loose): Loose => addDesc(table(p), { kind: 'inotify', flags: O_RDONLY, watches: [{ wd: 2, path: '/etc', mask: 0x100 }] }) ?? skip();
  const pidfd = (p: Loose): Loose => addDesc(table(p), { kind: 'pidfd', flags: O_RDWR, pid: 1 }) ?? skip();
  const ptmx = (p: Loose): Loose => addDesc(table(p), { kind: 'ptmx', flags: O_RDWR | O_LARGEFILE, index: 3, termios: '00'.repeat(44), winsize: '1800500000000000', locked: false, packet: false }) ?? skip();
  /** A slave of a new master. */
  const pts = (p: Loose): Loose => addDesc(table(p), { kind: 'pts', flags: O_RDWR, master: ptmx(p).id, index: 3 }) ?? skip();
  const unixEnd = (p: Loose, extra: Loose = {}): Loose =>
    addDesc(table(p), { kind: 'unix', flags: O_RDWR, type: 'stream', state: 'connected', pair: 7, queue: '', shutdown: 0, options: {}, ...extra }) ?? skip();
  /** Both ends of a new socket pair. */
  const unixPair = (p: Loose, extra: Loose = {}): [Loose, Loose] => [unixEnd(p, extra), unixEnd(p, extra)];
  const unixListener = (p: Loose): Loose => addDesc(table(p), { kind: 'unix', flags: O_RDWR, type: 'stream', state: 'listening', address: '/tmp/cr-imagefuzz-sock', backlog: 5, queue: '', shutdown: 0, options: {} }) ?? skip();
  const inet = (p: Loose): Loose => addDesc(table(p), { kind: 'inet', flags: O_RDWR, family: 4, protocol: 'tcp', state: 'listening', address: '127.0.0.1', port: 8080, backlog: 5, options: {} }) ?? skip();
  /** An epoll watching a new eventfd under the eventfd's own number. */
  const epoll = (p: Loose): Loose => {
    const e = eventfd(p);
    const fd = table(p).fds.find((f: Loose) => f.desc === e.id).fd;
    return addDesc(table(p), { kind: 'epoll', flags: O_RDWR, items: [{ fd, target: e.id, events: 0x19, data: '0000000000000001' }] }) ?? skip();
  };
  for (const [name, change] of [
    ['an eventfd count of -1', (p) => void (eventfd(p).count = -1)],
    ['an eventfd count of 2^53', (p) => void (eventfd(p).count = 2 ** 53)],
    ['an eventfd semaphore of 1', (p) => void (eventfd(p).semaphore = 1)],
    ['an eventfd opened O_RDONLY', (p) => void (eventfd(p).flags = O_RDONLY)],
    ['an eventfd with a path', (p) => void (eventfd(p).path = '/etc/hostname')],
    ['a directory opened for writing', (p) => void (dir(p).flags = O_WRONLY | O_LARGEFILE | O_DIRECTORY)],
    ['a directory position as a number', (p) => void (dir(p).offset = 12)],
    ['a directory position of 2^64', (p) => void (dir(p).offset = '18446744073709551616')],
    ['a directory position with a sign', (p) => void (dir(p).offset = '-1')],
    ['an epoll watching a description the image lacks', (p) => void (epoll(p).items[0].target = 2 ** 31 - 1)],
    ['an epoll watching itself', (p) => { const d = epoll(p); d.items[0].target = d.id; }],
    ['an epoll item twice', (p) => { const d = epoll(p); d.items.push({ ...d.items[0] }); }],
    ['an epoll item with data as a number', (p) => void (epoll(p).items[0].data = 1)],
    ['an epoll item with events 2^32', (p) => void (epoll(p).items[0].events = 2 ** 32)],
    ['an epoll item with a negative fd', (p) => void (epoll(p).items[0].fd = -1)],
    ['an epoll item with EPOLLEXCLUSIVE|EPOLLPRI', (p) => void (epoll(p).items[0].events = 0x10000002)],
    ['an epoll item with no target', (p) => void delete epoll(p).items[0].target],
    ['an epoll without items', (p) => void delete epoll(p).items],
    ['an epoll watching a file', (p) => {
      const f = addDesc(table(p), { kind: 'file', flags: O_RDONLY | O_LARGEFILE, path: '/etc/hostname', offset: 0 }) ?? skip();
      epoll(p).items[0].target = f.id;
    }],
    ['two epolls watching each other', (p) => {
      const a = epoll(p);
      const b = epoll(p);
      a.items[0].target = b.id;
      b.items[0].target = a.id;
    }],
    ['a timerfd on clock 2 (CPU time)', (p) => void (timerfd(p).clock = 2)],
    ['a timerfd value as a number', (p) => void (timerfd(p).value = 5)],
    ['a timerfd value of 2^63', (p) => void (timerfd(p).value = '9223372036854775808')],
    ['a timerfd interval with a sign', (p) => void (timerfd(p).interval = '-1')],
    ['a timerfd with CANCEL_ON_SET alone', (p) => void (timerfd(p).settime = 2)],
    ['a timerfd with CANCEL_ON_SET on CLOCK_MONOTONIC', (p) => { const t = timerfd(p); t.settime = 3; t.clock = 1; }],
    ['a timerfd with settime flags 4', (p) => void (timerfd(p).settime = 4)],
    ['a timerfd with -1 ticks', (p) => void (timerfd(p).ticks = -1)],
    ['a signalfd mask with SIGKILL', (p) => void (signalfd(p).mask = '0000000000000100')],
    ['a signalfd mask as a number', (p) => void (signalfd(p).mask = 512)],
    ['a signalfd mask of 17 digits', (p) => void (signalfd(p).mask = '00000000000000200')],
    ['a signalfd opened O_WRONLY', (p) => void (signalfd(p).flags = O_WRONLY)],
    ['a memfd extent past its size', (p) => void (memfd(p).size = 2)],
    ['memfd extents out of order', (p) => { const m = memfd(p); m.extents.push({ offset: 0, data: 'QQ==' }); }],
    ['a memfd extent that is not base64', (p) => void (memfd(p).extents[0].data = '@@@@')],
    ['a memfd extent with no data', (p) => void (memfd(p).extents[0].data = '')],
    ['a memfd name of 250 bytes', (p) => void (memfd(p).name = 'n'.repeat(250))],
    ['a memfd name with NUL', (p) => void (memfd(p).name = 'a\0b')],
    ['memfd seals 0x40', (p) => void (memfd(p).seals = 0x40)],
    ['a memfd mode 0o10000', (p) => void (memfd(p).mode = 0o10000)],
    ['a memfd opened O_RDONLY', (p) => void (memfd(p).flags = O_RDONLY | O_LARGEFILE)],
    ['a deleted file at /', (p) => void (deleted(p).path = '/')],
    ['a deleted file with a relative path', (p) => void (deleted(p).path = 'tmp/x')],
    ['a deleted file extent past its size', (p) => void (deleted(p).size = 1)],
    ['a deleted file with O_PATH', (p) => void (deleted(p).flags = O_PATH)],
    ['a deleted file with no extents', (p) => void delete deleted(p).extents],
    ['a TCP connection with a sequence number of 2^32', (p) => void (tcp(p).tcp.sendSeq = 2 ** 32)],
    ['a TCP connection with more unsent bytes than queued', (p) => void (tcp(p).tcp.unsent = 3)],
    ['a TCP connection with window scale 15', (p) => void (tcp(p).tcp.wscale = [15, 7])],
    ['a TCP connection whose rcv_wup is past what it received', (p) => void (tcp(p).tcp.window[4] = 2001)],
    ['a TCP connection without its repair state', (p) => void delete tcp(p).tcp],
    ['a UDP socket with TCP repair state', (p) => void (tcp(p).protocol = 'udp')],
    ['a TCP connection with no peer', (p) => void delete tcp(p).peerPort],
    ['a reset TCP connection with repair state', (p) => void (tcp(p).state = 'reset')],
    ['a pidfd of pid 0', (p) => void (pidfd(p).pid = 0)],
    ['a pidfd of a pid beyond the kernel\'s limit', (p) => void (pidfd(p).pid = 2 ** 23)],
    ['a pidfd opened O_RDONLY', (p) => void (pidfd(p).flags = O_RDONLY)],
    ['a pidfd with O_DSYNC', (p) => void (pidfd(p).flags = O_RDWR | O_DSYNC)],
    ['an inotify wd of 0', (p) => void (inotify(p).watches[0].wd = 0)],
    ['an inotify wd twice', (p) => { const d = inotify(p); d.watches.push({ ...d.watches[0] }); }],
    ['an inotify wd of 2^20', (p) => void (inotify(p).watches[0].wd = 2 ** 20)],
    ['an inotify watch with a relative path', (p) => void (inotify(p).watches[0].path = 'etc')],
    ['an inotify watch with mask 0', (p) => void (inotify(p).watches[0].mask = 0)],
    ['an inotify opened O_RDWR', (p) => void (inotify(p).flags = O_RDWR)],
    ['an O_PATH fd without O_PATH', (p) => void (opath(p).flags = O_RDONLY)],
    ['an O_PATH fd naming a socket', (p) => void (opath(p).type = 'socket')],
    ['an O_PATH fd with O_DIRECTORY on a file', (p) => void (opath(p).flags = O_PATH | O_DIRECTORY)],
    ['a pty termios of 43 bytes', (p) => void (ptmx(p).termios = '00'.repeat(43))],
    ['a pty termios in capitals', (p) => void (ptmx(p).termios = 'AB'.repeat(44))],
    ['a pty window size as a number', (p) => void (ptmx(p).winsize = 0)],
    ['a pty locked as 1', (p) => void (ptmx(p).locked = 1)],
    ['a pty index of -1', (p) => void (ptmx(p).index = -1)],
    ['a pty master with O_DIRECT', (p) => void (ptmx(p).flags = O_RDWR | O_LARGEFILE | 0o40000)],
    ['a pty master without its packet mode', (p) => void delete ptmx(p).packet],
    ['a pty slave of a master the image lacks', (p) => void (pts(p).master = 2 ** 31 - 1)],
    ['a pty slave of an eventfd', (p) => void (pts(p).master = eventfd(p).id)],
    ['a pty slave of a pty slave', (p) => { const a = pts(p); const b = pts(p); b.master = a.id; }],
    ['a pty slave with O_CLOEXEC in its flags', (p) => void (pts(p).flags = O_RDWR | 0o2000000)],
    ['a pty slave without its master', (p) => void delete pts(p).master],
    ['a socket pair of three ends', (p) => { unixPair(p); unixEnd(p); }],
    ['a socket pair of a stream and a datagram end', (p) => void (unixPair(p)[1].type = 'dgram')],
    ['a connected socket without its pair', (p) => void delete unixPair(p)[0].pair],
    ['an unconnected socket with a pair', (p) => void (unixEnd(p).state = 'unconnected')],
    ['a socket of type raw', (p) => void (unixPair(p)[0].type = 'raw')],
    ['a socket opened O_RDONLY', (p) => void (unixPair(p)[0].flags = O_RDONLY)],
    ['a socket queue that is not base64', (p) => void (unixPair(p)[0].queue = '@@@@')],
    ['a datagram queue without its message lengths', (p) => void unixPair(p, { type: 'dgram', queue: 'YWJj' })],
    ['datagram message lengths that miss a byte', (p) => void unixPair(p, { type: 'dgram', queue: 'YWJj', packets: [1, 1] })],
    ['a stream socket with message lengths', (p) => void unixPair(p, { queue: 'YWJj', packets: [3] })],
    ['a socket shutdown of 4', (p) => void (unixPair(p)[0].shutdown = 4)],
    ['a socket option cr does not carry', (p) => void (unixPair(p)[0].options = { debug: 1 })],
    ['a socket option of -1', (p) => void (unixPair(p)[0].options = { sndbuf: -1 })],
    ['a connected socket with a name', (p) => void (unixPair(p)[0].address = '/tmp/x')],
    ['a listening socket without its name', (p) => void delete unixListener(p).address],
    ['a listening socket without its backlog', (p) => void delete unixListener(p).backlog],
    ['a listening socket with a relative name', (p) => void (unixListener(p).address = 'tmp/sock')],
    ['a listening socket with bytes queued', (p) => void (unixListener(p).queue = 'YWJj')],
    ['an abstract socket name that is not base64', (p) => void (unixListener(p).address = '@not base64!')],
    ['an inet socket of family 5', (p) => void (inet(p).family = 5)],
    ['an inet socket of protocol sctp', (p) => void (inet(p).protocol = 'sctp')],
    ['a listening UDP socket', (p) => void (inet(p).protocol = 'udp')],
    ['a connected TCP socket', (p) => { const d = inet(p); d.state = 'connected'; d.peerAddress = '127.0.0.1'; d.peerPort = 1; }],
    ['an inet port of 0', (p) => void (inet(p).port = 0)],
    ['an inet port of 65536', (p) => void (inet(p).port = 65536)],
    ['an IPv4 socket at an IPv6 address', (p) => void (inet(p).address = '::1')],
    ['an inet address that is no address', (p) => void (inet(p).address = '127.0.0.256')],
    ['an O_PATH fd on a path a directory also opens as a file', (p) => {
      dir(p);
      const d = opath(p);
      d.path = '/etc';
    }],
  ] as Array<[string, Change]>) out.push(lie(name, change));
  return out;
}

/** Paths validation must refuse by their text alone. */
const BAD_PATHS: Array<[string, string]> = [
  ['relative', 'etc/hostname'],
  ['dot-relative', './etc/hostname'],
  ['empty', ''],
  ['with NUL', '/etc/host\0name'],
  ['only NUL', '\0'],
  ['/proc itself', '/proc'],
  ['/proc/self/mem', '/proc/self/mem'],
  ['/proc/1/environ', '/proc/1/environ'],
  ['/proc/self/fd/0', '/proc/self/fd/0'],
  ['//proc', '//proc/self/mem'],
  ['/./proc', '/./proc/self/status'],
  ['/tmp/../proc', '/tmp/../proc/self/status'],
  ['/../proc', '/../proc/1/mem'],
  ['/proc/', '/proc/'],
  ['longer than PATH_MAX', '/' + 'a'.repeat(4200)],
];

/**
 * Paths under /proc by way of a symlink: the text never says /proc, the kernel's walk ends there.
 * validate.ts judges paths by their text (src/image/validate.ts parsePath), so these pass it.
 */
const PROC_BY_SYMLINK: Array<[string, string]> = [
  ['/dev/fd/0', '/dev/fd/0'],
  ['/dev/stdin', '/dev/stdin'],
  ['/dev/fd/../status', '/dev/fd/../status'],
  ['/dev/fd/../../1/environ', '/dev/fd/../../1/environ'],
  ['/etc/mtab', '/etc/mtab'],
];
const PROC_GAP = 'src/image/validate.ts parsePath checks the text only: a path through a symlink into /proc (/dev/fd, /dev/stdin, /etc/mtab) passes';

function pathLies(): Lie[] {
  const out: Lie[] = [];
  for (const [name, path] of BAD_PATHS) {
    out.push(lie(`path ${name}`, (p) => {
      const d = somePathDesc(table(p));
      if (!d) skip();
      d.path = path;
    }));
  }
  for (const [name, path] of PROC_BY_SYMLINK) {
    out.push(lie(`path into /proc through ${name}`, (p) => {
      const d = somePathDesc(table(p));
      if (!d) skip();
      d.path = path;
      if (d.kind === 'fifo') {
        // A FIFO's path is shared by its pipe's descriptions: keep them in step.
        for (const x of table(p).descs) if (x.pipe === d.pipe) x.path = path;
      }
    }, PROC_GAP));
  }
  return out;
}

function headerLies(): Lie[] {
  const out: Lie[] = [];
  for (const pid of [0, -1, 2 ** 53, 1.5]) out.push(lie(`process.pid ${pid}`, (p) => void (p.process.pid = pid)));
  for (const uid of [-1, 2 ** 53, 0.5]) out.push(lie(`process.uid ${uid}`, (p) => void (p.process.uid = uid)));
  out.push(lie('a number in cmdline', (p) => void p.process.cmdline.push(7)));
  out.push(lie('dropped fd -1', (p) => void (p.dropped = [{ fd: -1, kind: 'socket', reason: 'x' }])));
  out.push(lie('dropped entry missing its reason', (p) => void (p.dropped = [{ fd: 5, kind: 'socket' }])));
  out.push(lie('dropped entry not a map', (p) => void (p.dropped = [5])));
  return out;
}

/**
 * Fd numbers far beyond any limit a kernel here can have (fs.nr_open is 1048576), which validation
 * accepts because MAX_NOFILE is the kernel's ceiling. `show` may print such a table; planning and
 * restoring must refuse it (the planner refuses fds above 2^21), quickly and in little memory.
 */
function nrOpenLies(): Lie[] {
  return [2 ** 30 - 1, 10 ** 8, MAX_NOFILE - 1].map((fd) =>
    lie(`fd ${fd} with rlimit ${fd + 1}`, (p) => {
      const t = table(p);
      t.rlimit = { soft: fd + 1, hard: fd + 1 };
      t.fds[0].fd = fd;
    }, undefined, ['plan', 'restore', 'into']),
  );
}

/** Lies about the processes: their list, pids and parents (docs/fd-table.md). */
function processLies(): Lie[] {
  const child = (p: Loose, over: Loose): void => {
    const first = p.table.processes[0];
    p.table.processes.push({ pid: first.pid + 1, parent: first.pid, fds: [], rlimit: { ...first.rlimit }, ...over });
  };
  return [
    lie('no processes at all', (p) => void (p.table.processes = [])),
    lie('a second process with the first one\'s pid', (p) => child(p, { pid: p.table.processes[0].pid })),
    lie('a process whose parent is not in the image', (p) => child(p, { parent: p.table.processes[0].pid + 7 })),
    lie('a process listed before its parent', (p) => {
      child(p, {});
      p.table.processes.reverse();
    }),
    lie('pid 0', (p) => void (p.table.processes[0].pid = 0)),
    lie('a process with an unknown field', (p) => void (p.table.processes[0].threads = 1)),
    lie('the one-process shape of format 1 (fds and rlimit at the top)', (p) => {
      const t = p.table;
      p.table = { fds: t.processes[0].fds, descs: t.descs, pipes: t.pipes, rlimit: t.processes[0].rlimit };
    }),
  ];
}

function* lies(seeds: Seed[]): Generator<Mutant> {
  const all: Array<[string, Lie[]]> = [
    ['lie-fd', fdLies()],
    ['lie-process', processLies()],
    ['lie-pipe', pipeLies()],
    ['lie-desc', descLies()],
    ['lie-path', pathLies()],
    ['lie-header', headerLies()],
    ['lie-huge-fd', nrOpenLies()],
  ];
  for (const s of seeds) {
    const base: Loose = openPayload(s.bytes);
    for (const [family, list] of all) {
      for (const l of list) {
        const p = clone(base);
        if (!l.apply(p)) continue;
        const bytes = seal(p);
        yield { family, name: `${s.name}: ${l.name}`, expect: 'reject', bytes: () => bytes, knownGap: l.knownGap, columns: l.columns };
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Every field: the wrong type, missing, and an unknown field beside it.

type Path = Array<string | number>;

/** Paths to every value in the payload (arrays: their first and last element only). */
function valuePaths(value: unknown, at: Path = []): Path[] {
  const out: Path[] = [];
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return out;
  if (Array.isArray(value)) {
    const idx = value.length > 1 ? [0, value.length - 1] : value.length === 1 ? [0] : [];
    for (const i of idx) out.push([...at, i], ...valuePaths(value[i], [...at, i]));
  } else if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) out.push([...at, k], ...valuePaths(v, [...at, k]));
  }
  return out;
}

const getAt = (root: Loose, path: Path): Loose => path.reduce((v, k) => v[k], root);

function wrongValues(original: unknown): unknown[] {
  if (Buffer.isBuffer(original) || original instanceof Uint8Array) return [null, 'aGVsbG8=', 7, [], {}, true];
  if (Array.isArray(original)) return [null, {}, 'x', 7, Buffer.alloc(1), true];
  if (original === null) return [7];
  switch (typeof original) {
    case 'number':
      return [null, true, String(original), [], {}, Buffer.from([7]), -1, 0.5, NaN, 2n ** 64n - 1n];
    case 'string':
      return [null, 7, true, [], {}, Buffer.from(original.slice(0, 8) || 'x')];
    case 'boolean':
      return [null, 0, 1, 'true', [], {}];
    default:
      return [null, [], 'x', 7, Buffer.alloc(1), true];
  }
}

/** Fields a valid image may leave out. */
function optional(parent: Loose, key: string | number): boolean {
  return key === 'packets' || ((key === 'offset' || key === 'rdev') && parent?.kind === 'chr');
}

function* fieldMutants(seeds: Seed[]): Generator<Mutant> {
  for (const s of seeds) {
    const base: Loose = openPayload(s.bytes);
    for (const path of valuePaths(base)) {
      const where = path.join('.');
      const parent = getAt(base, path.slice(0, -1));
      const key = path[path.length - 1]!;
      for (const wrong of wrongValues(getAt(base, path))) {
        const p = clone(base);
        getAt(p, path.slice(0, -1))[key] = wrong;
        const bytes = seal(p);
        yield { family: 'wrong-type', name: `${s.name}: ${where} = ${describe(wrong)}`, expect: 'reject', bytes: () => bytes };
      }
      if (typeof key === 'string') {
        const p = clone(base);
        delete getAt(p, path.slice(0, -1))[key];
        const bytes = seal(p);
        yield { family: 'missing-field', name: `${s.name}: no ${where}`, expect: optional(parent, key) ? 'any' : 'reject', bytes: () => bytes };
      }
    }
    // An unknown field in every map (the payload itself included).
    const maps: Path[] = [[], ...valuePaths(base).filter((path) => {
      const v = getAt(base, path);
      return v !== null && typeof v === 'object' && !Array.isArray(v) && !Buffer.isBuffer(v) && !(v instanceof Uint8Array);
    })];
    for (const path of maps) {
      for (const key of ['zz', '__proto__', 'constructor', 'toString']) {
        const p = clone(base);
        Object.defineProperty(getAt(p, path), key, { value: 1, enumerable: true, configurable: true, writable: true });
        const bytes = seal(p);
        yield { family: 'unknown-field', name: `${s.name}: ${[...path, key].join('.')}`, expect: 'reject', bytes: () => bytes };
      }
    }
  }
}

function describe(v: unknown): string {
  if (Buffer.isBuffer(v)) return `bin(${v.length})`;
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'number') return String(v);
  return JSON.stringify(v) ?? String(v);
}

// ---------------------------------------------------------------------------------------------
// Deep and huge: values that cost a careless reader its stack, its memory or its time.

function* deepAndHuge(seeds: Seed[], opts: MutantOptions): Generator<Mutant> {
  const s = seeds[0]!;
  const base: Loose = openPayload(s.bytes);
  const nested = (depth: number, leaf: number): Buffer => Buffer.concat([Buffer.alloc(depth, 0x91), Buffer.from([leaf])]);
  const places: Array<[string, (p: Loose) => void]> = [
    ['table.processes[0].fds[0].fd', (p) => void (p.table.processes[0].fds[0].fd = MARKER)],
    ['table.processes[0].fds', (p) => void (p.table.processes[0].fds = MARKER)],
    ['table.processes', (p) => void (p.table.processes = MARKER)],
    ['process.cmdline', (p) => void (p.process.cmdline = MARKER)],
    ['dropped', (p) => void (p.dropped = MARKER)],
    ['table.processes[0].rlimit', (p) => void (p.table.processes[0].rlimit = MARKER)],
  ];
  for (const depth of [64, 10_000, 200_000]) {
    for (const [where, put] of places) {
      const p = clone(base);
      put(p);
      yield { family: 'deep', name: `${s.name}: ${where} nested ${depth} deep`, expect: 'reject', bytes: () => sealWithRaw(p, nested(depth, 0x00)) };
    }
    // Nested maps: {"a": {"a": ...}}.
    const p = clone(base);
    p.table.descs[0].path = MARKER;
    const map = Buffer.concat([Buffer.from(Array.from({ length: depth }, () => [0x81, 0xa1, 0x61]).flat()), Buffer.from([0xc0])]);
    yield { family: 'deep', name: `${s.name}: a path of maps ${depth} deep`, expect: 'reject', bytes: () => sealWithRaw(p, map) };
    yield { family: 'deep', name: `the payload itself nested ${depth} deep`, expect: 'reject', bytes: () => envelope(nested(depth, 0x80)) };
  }
  // Headers that promise more than the file holds.
  const liars: Array<[string, Buffer]> = [
    ['array32 of 2^32-1 items', Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff, 0x01])],
    ['map32 of 2^32-1 pairs', Buffer.from([0xdf, 0xff, 0xff, 0xff, 0xff, 0x01, 0x01])],
    ['str32 of 4 GiB', Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x61])],
    ['bin32 of 4 GiB', Buffer.from([0xc6, 0xff, 0xff, 0xff, 0xff, 0x61])],
    ['ext32 of 4 GiB', Buffer.from([0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 0x61])],
    ['a reserved byte (0xc1)', Buffer.from([0xc1])],
    ['an unknown extension', Buffer.from([0xd4, 0x01, 0x00])],
    ['a timestamp extension', Buffer.from([0xd6, 0xff, 0, 0, 0, 1])],
    ['a bigint extension', Buffer.from([0xd4, 0x42, 0x05])],
  ];
  for (const [name, raw] of liars) {
    for (const [where, put] of places) {
      const p = clone(base);
      put(p);
      yield { family: 'huge', name: `${s.name}: ${where} is ${name}`, expect: 'reject', bytes: () => sealWithRaw(p, raw) };
    }
  }
  yield {
    family: 'huge',
    name: 'a payload bin32 header of 4 GiB',
    expect: 'reject',
    bytes: () => {
      const good = s.bytes;
      const at = good.indexOf(Buffer.from('payload'));
      return Buffer.concat([good.subarray(0, at + 7), Buffer.from([0xc6, 0xff, 0xff, 0xff, 0xff]), Buffer.from('abc')]);
    },
  };
  if (!opts.huge) return;
  const big = (name: string, change: (p: Loose) => void): Mutant => ({
    family: 'huge',
    name: `${s.name}: ${name}`,
    expect: 'reject',
    big: true,
    bytes: () => {
      const p = clone(base);
      change(p);
      return seal(p);
    },
  });
  yield big(`${MAX_ENTRIES + 1} fds`, (p) => {
    p.table.processes[0].fds = Array.from({ length: MAX_ENTRIES + 1 }, (_, i) => ({ fd: i, desc: 0, cloexec: false }));
  });
  yield big('200,000 descriptions with no fds', (p) => {
    const first = nextId(p.table.descs);
    for (let i = 0; i < 200_000; i++) p.table.descs.push({ id: first + i, kind: 'chr', flags: O_WRONLY | O_LARGEFILE, path: '/dev/null' });
  });
  yield big('100,000 unknown fields in the table', (p) => {
    for (let i = 0; i < 100_000; i++) p.table[`x${i}`] = i;
  });
  yield big('1,000,000 cmdline entries, the last a number', (p) => {
    p.process.cmdline = [...Array.from({ length: 1_000_000 }, () => 'x'), 7];
  });
  yield big('a 64 MiB comm beside a bad fd', (p) => {
    p.process.comm = 'c'.repeat(64 << 20);
    p.table.processes[0].fds[0].fd = -1;
  });
  yield big('128 MiB of pipe data in a 1 MiB pipe', (p) => {
    const pipe = p.table.pipes[0] ?? { id: 0, capacity: 1 << 20 };
    pipe.capacity = 1 << 20;
    pipe.data = Buffer.alloc(128 << 20, 0x7a);
    delete pipe.packets;
    if (!p.table.pipes[0]) p.table.pipes.push(pipe);
  });
}

// ---------------------------------------------------------------------------------------------
// Refits: random damage inside the payload with a recomputed checksum. Some leave a valid image
// (a flipped byte of pipe data, a path letter); none may crash a reader.

function* refits(seeds: Seed[], opts: MutantOptions, rng: Rng): Generator<Mutant> {
  for (const s of seeds) {
    const payloadBytes = pack(openPayload(s.bytes));
    for (let i = 0; i < opts.refits; i++) {
      const bits = Array.from({ length: rng.int(1, 3) }, () => rng.below(payloadBytes.length * 8));
      yield {
        family: 'refit',
        name: `${s.name} payload bits ${bits.join(',')}, checksum recomputed`,
        expect: 'any',
        bytes: () => {
          const b = Buffer.from(payloadBytes);
          for (const bit of bits) b[bit >> 3]! ^= 1 << (bit & 7);
          return envelope(b);
        },
      };
    }
  }
}

/** Every mutant of the seeds, in a fixed order for a given seed and options. */
export function* mutants(allSeeds: Seed[], opts: MutantOptions): Generator<Mutant> {
  for (const s of allSeeds.filter(isProcessSeed)) yield* processMutants(s, opts, COLUMNS);
  const seeds = allSeeds.filter((s) => !isProcessSeed(s));
  if (seeds.length === 0) return;
  const rng = new Rng(opts.seed);
  yield* envelopes(seeds);
  yield* truncations(seeds, opts, rng);
  yield* lies(seeds);
  yield* fieldMutants(seeds);
  yield* deepAndHuge(seeds, opts);
  yield* bitFlips(seeds, opts, rng);
  yield* splices(seeds, opts, rng);
  yield* refits(seeds, opts, rng);
}
