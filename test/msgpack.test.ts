// The images' msgpack decoder (src/image/msgpack.ts): what it builds is what msgpackr builds
// from the same bytes (msgpackr writes the images, and decoded them until this decoder), and its
// refusals are met in the order of the bytes. The limits themselves (nesting, counts, the decode
// budget) are imageio.test.ts's.
// msgpackr's plain-JS entry, as cr loaded it (its main entry installs a native string decoder).
import { Packr, Unpackr } from 'msgpackr/pack';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { unpackBounded } from '../src/image/msgpack.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });
const float32 = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true, useFloat32: 1 });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, structuredClone: false, moreTypes: false });

const decoded = (bytes: Buffer): unknown => {
  const r = unpackBounded(bytes);
  if ('problem' in r) throw new Error(`refused: ${r.problem}`);
  return r.value;
};
const problem = (bytes: Buffer): string | undefined => {
  const r = unpackBounded(bytes);
  return 'problem' in r ? r.problem : undefined;
};

test('every msgpack type an image may hold decodes as msgpackr decodes it', () => {
  const values: unknown[] = [
    0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53 - 1, -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1,
    2n ** 64n - 1n, -(2n ** 63n), 0.5, -1e300, Number.NaN, Number.POSITIVE_INFINITY,
    null, true, false,
    '', 'fd', 'x'.repeat(31), 'x'.repeat(32), 'é'.repeat(200), '✓'.repeat(30_000), 'a\u0000b', '𝄞 and 😀', `/tmp/${'d'.repeat(70)}/ü`,
    Buffer.alloc(0), Buffer.from([1, 2, 3]), Buffer.alloc(300, 7), Buffer.alloc(70_000, 9),
    [], [[[]]], Array.from({ length: 15 }, (_, i) => i), Array.from({ length: 16 }, (_, i) => `s${i}`), Array.from({ length: 70_000 }, (_, i) => i & 0xff),
    {}, { fd: 3, desc: 0, cloexec: false }, Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, i])),
    Object.fromEntries(Array.from({ length: 70_000 }, (_, i) => [`k${i}`, [i]])), { 0: 'a', 10: 'b', x: { y: [{ z: Buffer.from('hi') }] } },
  ];
  for (const v of values) {
    for (const bytes of [packr.pack(v), float32.pack(v)]) {
      const got = decoded(bytes);
      assert.equal(got, unpackr.unpack(bytes), `${bytes.subarray(0, 16).toString('hex')}`);
      if (typeof v !== 'number' || !Number.isNaN(v)) assert.equal(got, v);
    }
  }
  // A float32 (what msgpackr's useFloat32 writes for 0.25) is its exact value.
  const f = Buffer.from([0xca, 0x3e, 0x80, 0x00, 0x00]);
  assert.is(decoded(f), 0.25);
  assert.is(unpackr.unpack(f), 0.25);
});

test('bin values are views of the bytes given, Buffers, not copies', () => {
  const bytes = packr.pack({ data: Buffer.from('queued bytes'), more: [Buffer.alloc(300, 1)] });
  const v = decoded(bytes) as { data: Buffer; more: Buffer[] };
  assert.ok(Buffer.isBuffer(v.data) && Buffer.isBuffer(v.more[0]));
  assert.is(v.data.buffer, bytes.buffer);
  v.data[0] = 0x51;
  assert.is(bytes[bytes.indexOf(Buffer.from('ueued bytes')) - 1], 0x51);
  // From a plain Uint8Array too, the bin is a Buffer over the same memory.
  const plain = new Uint8Array(bytes);
  const w = unpackBounded(plain) as { value: { data: Buffer } };
  assert.ok(Buffer.isBuffer(w.value.data));
  assert.is(w.value.data.buffer, plain.buffer);
});

test('a key named __proto__ is a plain key __proto_, as msgpackr has it; no prototype is set', () => {
  const bytes = Buffer.concat([Buffer.from([0x82]), packr.pack('__proto__'), packr.pack({ polluted: true }), packr.pack('a'), packr.pack(1)]);
  const v = decoded(bytes) as Record<string, unknown>;
  assert.equal(v, unpackr.unpack(bytes));
  assert.equal(Object.keys(v), ['__proto_', 'a']);
  assert.is(Object.getPrototypeOf(v), Object.prototype);
  assert.is((v as { polluted?: boolean }).polluted, undefined);
});

test('a string starting with a byte-order mark keeps it, at any length', () => {
  // msgpackr decoded strings over 64 bytes with a TextDecoder, which drops a leading U+FEFF.
  for (const s of ['\ufeffab', `\ufeff${'b'.repeat(80)}`]) assert.is(decoded(packr.pack(s)), s);
});

test('the first problem in the bytes is the one told', () => {
  // a fixstr that runs past the end, after a list whose count is right
  assert.is(problem(Buffer.from([0x92, 0x01, 0xa5, 0x61])), 'truncated');
  // a str 16's length cut short
  assert.is(problem(Buffer.from([0x91, 0xda, 0x00])), 'truncated');
  // an int 64 cut short
  assert.is(problem(Buffer.from([0xd3, 0, 0, 0])), 'truncated');
  // an extension before a truncation, and a truncation before an extension
  assert.is(problem(Buffer.from([0x92, 0xd4, 0x05, 0x00, 0xa5])), 'a msgpack extension (type 0x5); images are plain msgpack');
  assert.is(problem(Buffer.from([0x92, 0xa5, 0x61, 0xd4, 0x05, 0x00])), 'truncated');
  assert.is(problem(Buffer.from([0x91, 0xc1])), 'the byte 0xc1, which msgpack never uses');
  // a map key that is not a string, met before the bad byte after it
  assert.is(problem(Buffer.from([0x82, 0xa1, 0x61, 0x01, 0x02, 0xc1])), 'a map key that is not a string');
  assert.is(problem(Buffer.from([0xde, 0x00, 0x03, 0xa1, 0x61, 0x01])), 'a map of 3 entries in 3 bytes');
});

test('bytes after the value are refused as msgpackr refused them', () => {
  for (const v of [[1, 'two', { three: 3n }], 'a'.repeat(200), { data: Buffer.from('x') }]) {
    const bytes = Buffer.concat([packr.pack(v), Buffer.from([0xc0])]);
    let message = '';
    try {
      unpackr.unpack(bytes);
    } catch (err) {
      message = (err as Error).message;
    }
    assert.match(message, /^Data read, but end of buffer not reached /);
    assert.is(problem(bytes), `undecodable msgpack (${message})`);
  }
});

test.run();
