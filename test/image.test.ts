// The image file: round trip, atomic exclusive 0600 writes that never follow a symlink, and a
// loader that answers every kind of bad image with one line and exit code 2.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { main } from '../src/cli.js';
import { CrError } from '../src/errors.js';
import { decodeImage, encodeImage, encodeImageParts, IMAGE_FORMAT_VERSION, IMAGE_MAGIC, readImage, writeImage, type Image } from '../src/image/format.js';
import { packMsgpack, packParts } from '../src/image/msgpack.js';
import { loadInput } from '../src/image/input.js';
import { tableJson } from '../src/model/json.js';

const dir = mkdtempSync(join(tmpdir(), 'cr-image-'));
const packr = new Packr({ useRecords: false });

function sample(): Image {
  return {
    magic: IMAGE_MAGIC,
    formatVersion: IMAGE_FORMAT_VERSION,
    toolVersion: '0.1.0',
    kernel: '6.18.0-test',
    process: { pid: 1234, comm: 'python3', cmdline: ['python3', '-S', 'x.py'], uid: 1000 },
    table: {
      processes: [{
        pid: 1234,
        fds: [
          { fd: 3, desc: 0, cloexec: false },
          { fd: 4, desc: 1, cloexec: true },
          { fd: 7, desc: 1, cloexec: false },
          { fd: 9, desc: 2, cloexec: false },
        ],
        rlimit: { soft: 1024, hard: 4096 },
      }],
      descs: [
        { id: 0, kind: 'pipe', flags: 0, pipe: 0 },
        { id: 1, kind: 'pipe', flags: 0o40001, pipe: 0 },
        { id: 2, kind: 'file', flags: 0o102002, path: '/tmp/some file', offset: 12345 },
      ],
      pipes: [{ id: 0, capacity: 65536, data: Buffer.from('hello\0world'), packets: [5, 6] }],
    },
    dropped: [{ fd: 5, kind: 'socket', reason: 'socket:[77]: sockets are not supported' }],
  };
}

/** An image file whose envelope and payload are built by hand (checksum made to match). */
function handMade(payload: Record<string, unknown>, envelope: Record<string, unknown> = {}): Buffer {
  const bytes = packr.pack(payload);
  return packr.pack({
    magic: IMAGE_MAGIC,
    formatVersion: IMAGE_FORMAT_VERSION,
    checksum: { sha256: createHash('sha256').update(bytes).digest() },
    payload: bytes,
    ...envelope,
  });
}

function goodPayload(): Record<string, unknown> {
  const img = sample();
  return {
    toolVersion: img.toolVersion,
    kernel: img.kernel,
    process: img.process,
    table: img.table,
    dropped: img.dropped,
  };
}

/** readImage must throw a one-line CrError with exit code 2 whose message matches. */
function refuses(bytes: Buffer | string, pattern: RegExp): void {
  const path = join(dir, 'bad');
  writeFileSync(path, bytes);
  try {
    readImage(path);
  } catch (err) {
    assert.instance(err, CrError);
    assert.is((err as CrError).code, 2);
    assert.not.match((err as Error).message, /\n/);
    assert.match((err as Error).message, pattern);
    return;
  } finally {
    rmSync(path, { force: true });
  }
  assert.unreachable(`accepted a bad image (${pattern})`);
}

test('an image written and read back is the same image, mode 0600, nothing else left behind', () => {
  const sub = mkdtempSync(join(dir, 'rt-'));
  const path = join(sub, 'img');
  writeImage(path, sample(), { force: false });
  assert.equal(readImage(path), sample());
  assert.is(statSync(path).mode & 0o777, 0o600);
  assert.equal(readdirSync(sub), ['img']);
  const { tables, image } = loadInput(path);
  assert.equal(tables, sample().table);
  assert.equal(image, sample());
});

test('cr writes msgpack byte for byte as msgpackr does, large bins as parts of their own', () => {
  const msgpackr = new Packr({ useRecords: false, mapsAsObjects: true, structuredClone: false });
  const numbers = [0, -0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53, -1, -0x20, -0x21, -0x80, -0x81, -0x8000, -0x8001, -(2 ** 31), -(2 ** 31) - 1, 0.5, -1.25, NaN, Infinity, -Infinity];
  // Strings around every header size and msgpackr's switch from its own UTF-8 encoder to Buffer's at 64 chars,
  // in ASCII, 2-, 3- and 4-byte characters, and lone surrogates (which the two encoders write differently).
  const strings = [0, 1, 10, 11, 31, 32, 63, 64, 65, 85, 86, 255, 256, 21845, 21846, 65535, 65536].flatMap((n) =>
    ['a', 'é', '€', '\u{1f600}', '\ud800', 'x\udc00'].map((c) => c.repeat(Math.ceil(n / c.length)).slice(0, n)));
  const bins = [0, 1, 255, 256, 1023, 1024, 65535, 65536].map((n) => Buffer.alloc(n, n & 0xff));
  const values: unknown[] = [
    ...numbers, ...strings, ...bins, new Uint8Array([1, 2, 3]), true, false, null, [], {},
    Array.from({ length: 15 }, (_, i) => i), Array.from({ length: 16 }, (_, i) => i), Array.from({ length: 65536 }, () => 1),
    Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`key${i}`, i])), { 1: 'a', b: [{ c: null }], é: bins[5] },
    sample(), { ...sample(), table: { ...sample().table, pipes: [{ id: 0, capacity: 65536, data: bins[7] }] } },
  ];
  for (const v of values) {
    const parts = packParts(v);
    assert.ok(parts !== null, `written by cr: ${typeof v}`);
    assert.ok(Buffer.concat(parts).equals(msgpackr.pack(v)), `the same bytes as msgpackr: ${JSON.stringify(v)?.slice(0, 60)}`);
    assert.ok(packMsgpack(v).equals(msgpackr.pack(v)));
  }
  // A key first met where the encoder's buffer is full: its bytes (kept for every later use) are
  // those written, in the fresh buffer, not a range of the full one.
  for (let fill = 250; fill < 400; fill++) {
    const key = `first${fill}`;
    const v = { pad: Array.from({ length: 65 }, () => Buffer.alloc(1000, 7)), fill: Buffer.alloc(fill), [key]: [{ [key]: 1 }, { [key]: 2 }] };
    assert.ok(Buffer.concat(packParts(v)!).equals(msgpackr.pack(v)), `a key first met ${fill} bytes later`);
  }
  // A bin of 1 KiB or more is not copied: its own memory is a part.
  const big = Buffer.alloc(5000, 7);
  assert.ok(packParts({ data: big })!.some((p) => p.buffer === big.buffer && p.byteOffset === big.byteOffset));
  // What cr does not write itself, msgpackr writes, the same bytes as before.
  for (const v of [undefined, [1, undefined], new Map([['a', 1]]), Object.create(null) as object, { a: 1n }]) {
    assert.is(packParts(v), null);
    assert.ok(packMsgpack(v).equals(msgpackr.pack(v)));
  }
  // The envelope around a payload in parts: the same bytes as encodeImage's one buffer.
  const image = { ...sample(), table: { ...sample().table, pipes: [{ id: 0, capacity: 65536, data: bins[7] }] } };
  assert.ok(Buffer.concat(encodeImageParts(image)).equals(encodeImage(image)));
  assert.equal(decodeImage(encodeImage(image), 'x'), image);
});

test('pipe bytes are stored raw, not base64', () => {
  const bytes = encodeImage(sample());
  assert.ok(bytes.includes(Buffer.from('hello\0world')));
});

test('an existing IMAGE is kept without force; with force replaced; a directory is refused', () => {
  const path = join(dir, 'existing');
  writeFileSync(path, 'keep me');
  assert.throws(() => writeImage(path, sample(), { force: false }), (e: Error) => e instanceof CrError && e.code === 2 && /exists/.test(e.message));
  assert.is(readFileSync(path, 'utf8'), 'keep me');
  writeImage(path, sample(), { force: true });
  assert.equal(readImage(path), sample());
  const d = join(dir, 'adir');
  mkdirSync(d);
  for (const force of [false, true]) {
    assert.throws(() => writeImage(d, sample(), { force }), (e: Error) => e instanceof CrError && e.code === 2 && /is a directory/.test(e.message));
  }
});

test('a symlink at IMAGE is never followed: refused without force, replaced itself with force', () => {
  const target = join(dir, 'victim');
  writeFileSync(target, 'untouched');
  const link = join(dir, 'link');
  symlinkSync(target, link);
  assert.throws(() => writeImage(link, sample(), { force: false }), /exists/);
  const dangling = join(dir, 'dangling');
  symlinkSync(join(dir, 'nowhere'), dangling);
  assert.throws(() => writeImage(dangling, sample(), { force: false }), /exists/);
  assert.throws(() => lstatSync(join(dir, 'nowhere')));
  writeImage(link, sample(), { force: true });
  assert.ok(lstatSync(link).isFile());
  assert.is(readFileSync(target, 'utf8'), 'untouched');
});

test('bad images: each refused with exit code 2 and one line saying what is wrong', () => {
  const good = encodeImage(sample());
  refuses('just some text\n', /not a valid cr image: no cr image envelope/);
  refuses(Buffer.alloc(0), /no cr image envelope/);
  refuses(good.subarray(0, good.length - 10), /no cr image envelope/);
  refuses(packr.pack([1, 2, 3]), /no cr image envelope/);
  refuses(handMade(goodPayload(), { magic: 'not-cr' }), /wrong magic/);
  refuses(handMade(goodPayload(), { formatVersion: 4 }), /image format version 4 is not supported \(this cr reads version 3\)$/);
  // Version 1 held one process's table: an older cr's image, refused in one line that says so.
  const p1 = goodPayload();
  const one = (p1.table as { processes: Array<{ fds: unknown; rlimit: unknown }> }).processes[0]!;
  const v1 = handMade({ ...p1, table: { fds: one.fds, descs: (p1.table as { descs: unknown }).descs, pipes: (p1.table as { pipes: unknown }).pipes, rlimit: one.rlimit } }, { formatVersion: 1 });
  refuses(v1, /image format version 1 is not supported \(this cr reads version 3\): it is from an older cr, dump the process again$/);
  refuses(handMade(goodPayload(), { extra: 1 }), /envelope has an unknown field "extra"/);
  refuses(handMade(goodPayload(), { checksum: { md5: Buffer.alloc(16) } }), /checksum is not a sha256/);
  const flipped = Buffer.from(good);
  const at = flipped.indexOf(Buffer.from('python3'));
  flipped[at] ^= 0x20;
  refuses(flipped, /checksum mismatch \(the image is corrupt\)/);
  refuses(handMade({ ...goodPayload(), kernel: 5 }), /kernel is not a string/);
  const { toolVersion: _, ...noVersion } = goodPayload();
  refuses(handMade(noVersion), /payload has no toolVersion/);
  // msgpackr writes undefined as an extension, which no image holds.
  refuses(handMade({ ...goodPayload(), toolVersion: undefined }), /payload: a msgpack extension \(type 0x0\); images are plain msgpack/);
  refuses(handMade({ ...goodPayload(), process: { pid: '1', comm: 'x', cmdline: [], uid: 0 } }), /process.pid is not a pid/);
  refuses(handMade({ ...goodPayload(), process: { pid: 1, comm: 'x', cmdline: [1], uid: 0 } }), /process.cmdline is not a list of strings/);
  refuses(handMade({ ...goodPayload(), dropped: [{ fd: 1, kind: 'socket' }] }), /dropped\[0\] has no reason/);
  const p = goodPayload();
  const table = p.table as { pipes: Array<Record<string, unknown>>; processes: Array<{ fds: unknown[] } & Record<string, unknown>> };
  const proc = table.processes[0]!;
  refuses(handMade({ ...p, table: { ...table, pipes: [{ ...table.pipes[0], data: 'aGVsbG8=' }] } }), /table.pipes\[0\].data is not binary/);
  refuses(handMade({ ...p, table: { ...table, processes: [{ ...proc, fds: [...proc.fds, { fd: 5000, desc: 0, cloexec: false }] }] } }), /bad: processes\[0\].fds\[4\].fd: 5000 is not below rlimit.soft 1024/);
  refuses(handMade({ ...p, table: { ...table, pipes: [{ ...table.pipes[0], packets: [5, 5] }] } }), /packets: sum 10 is not the data length 11/);
});

test('not a file (a directory, a FIFO), or missing: refused with exit code 2', () => {
  const d = join(dir, 'notfile');
  mkdirSync(d);
  assert.throws(() => readImage(d), (e: Error) => e instanceof CrError && e.code === 2 && e.message === `${d} is a directory, not an image`);
  assert.throws(() => readImage(join(dir, 'missing')), (e: Error) => e instanceof CrError && e.code === 2 && /cannot read .*missing: ENOENT/.test(e.message));
  // A FIFO with no writer: opening it must not wait for one.
  const fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  assert.throws(() => readImage(fifo), (e: Error) => e instanceof CrError && e.code === 2 && e.message === `${fifo} is not a regular file`);
});

test('loadInput takes a JSON fd table too, and refuses bad JSON with exit code 2', () => {
  const path = join(dir, 'table.json');
  writeFileSync(path, '  \n' + tableJson(sample().table));
  const loaded = loadInput(path);
  assert.equal(loaded.tables, sample().table);
  assert.is(loaded.image, undefined);
  writeFileSync(path, '{"fds": [');
  assert.throws(() => loadInput(path), (e: Error) => e instanceof CrError && e.code === 2 && /not valid JSON/.test(e.message));
  writeFileSync(path, '{"fds": []}');
  assert.throws(() => loadInput(path), (e: Error) => e instanceof CrError && e.code === 2);
});

test('cr show: a readable table, --json in the plan schema, a bad image exits 2 with one line', async () => {
  const path = join(dir, 'show.img');
  writeImage(path, sample(), { force: true });
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (s: string) => void out.push(s);
  console.error = (s: string) => void err.push(s);
  let codes: number[];
  try {
    codes = [await main(['show', path]), await main(['show', path, '--json'])];
    writeFileSync(join(dir, 'corrupt.img'), 'garbage');
    codes.push(await main(['show', join(dir, 'corrupt.img')]));
  } finally {
    console.log = log;
    console.error = error;
  }
  assert.equal(codes, [0, 0, 2]);
  const text = out[0]!;
  assert.match(text, /process 1234 \(python3\), uid 1000: "python3" "-S" "x.py"/);
  assert.match(text, /\n 4 +pipe +write +O_WRONLY\|O_DIRECT +yes +7 +- +pipe 0: 11 B in 2 packets of 64 KiB/);
  assert.match(text, /\n 9 +file +O_RDWR\|O_APPEND\|O_LARGEFILE +no +- +\/tmp\/some file @ 12345/);
  assert.match(text, /pipe 0: 11 B in 2 packets of 64 KiB, packets 5,6: "hello\\x00world"/);
  assert.match(text, /dropped fd 5 \(socket\): socket:\[77\]/);
  assert.equal(JSON.parse(out[1]!), JSON.parse(tableJson(sample().table)));
  assert.equal(err, [`cr show: ${join(dir, 'corrupt.img')}: not a valid cr image: no cr image envelope`]);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
