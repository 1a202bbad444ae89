// The image file as cr reads it and the files cr writes (issue 9): a checksum-valid image cannot
// make decoding exhaust memory or time.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PROCESS_FORMAT_VERSION } from '../src/image/process-format.js';
import { CR, cr, ROOT, type Run } from './helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'cr-imageio-'));
const sha256 = (bytes: Uint8Array): Buffer => createHash('sha256').update(bytes).digest();
const plain = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

/** `node cr.mjs ...` as a process of its own, killed (and the test failed) if it has not ended within 60 s. */
function crGuarded(args: string[]): Run {
  const r = spawnSync(process.execPath, [CR, ...args], { encoding: 'utf8', cwd: ROOT, timeout: 60_000, killSignal: 'SIGKILL', maxBuffer: 1 << 20 });
  assert.is(r.signal, null, `cr ${args.join(' ')} did not end by itself (${r.signal})`);
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A whole-process image of the given head record body and an empty fd record, its checksum right. */
function processImage(head: Buffer): Buffer {
  const record = (type: number, body: Buffer): Buffer => {
    const h = Buffer.alloc(8);
    h.writeUInt32LE(type, 0);
    h.writeUInt32LE(body.length, 4);
    return Buffer.concat([h, body]);
  };
  const header = Buffer.alloc(16);
  Buffer.from('cr-proc\n', 'latin1').copy(header);
  header.writeUInt32LE(PROCESS_FORMAT_VERSION, 8);
  const sealed = Buffer.concat([header, record(1, head), record(2, plain.pack(null))]);
  return Buffer.concat([sealed, record(4, sha256(sealed))]);
}

/** An fd-table image whose payload is given as bytes, its checksum right. */
const fdImage = (payload: Buffer): Buffer => plain.pack({ magic: 'cr-fd-image', formatVersion: 1, checksum: { sha256: sha256(payload) }, payload });

test('decoding bombs with valid checksums are refused (exit 2, one line), not decoded', () => {
  // 600 mappings sharing one 1M-entry list through msgpackr's shared references: 1 MB that
  // would decode to 600M values.
  const big = new Array<number>(1 << 20).fill(0);
  const mappings = Array.from({ length: 600 }, (_, i) => ({ start: i * 4096, end: (i + 1) * 4096, prot: 1, kind: 'anon', name: '', file: null, vmflags: big }));
  const shared = join(dir, 'shared.img');
  writeFileSync(shared, processImage(new Packr({ useRecords: false, structuredClone: true }).pack({ formatVersion: 1, mappings })));
  // 24 MiB of empty lists as the fd table's fds: each byte a JS array.
  const n = 24 << 20;
  const lists = Buffer.alloc(5 + n, 0x90);
  lists[0] = 0xdd;
  lists.writeUInt32BE(n, 1);
  const before = plain.pack({ toolVersion: '0.1.0', kernel: 'x', process: { pid: 1, comm: 'x', cmdline: [], uid: 0 }, dropped: [] });
  // The payload map with one more entry, `table: {fds: <lists>, ...}`, spliced in by hand.
  const tail = plain.pack({ descs: [], pipes: [], rlimit: { soft: 64, hard: 64 } });
  const payload = Buffer.concat([
    Buffer.from([0x86]), before.subarray(1), plain.pack('table'),
    Buffer.from([0x84]), plain.pack('fds'), lists, tail.subarray(1),
  ]);
  const empty = join(dir, 'empty.img');
  writeFileSync(empty, fdImage(payload));
  for (const [image, why] of [
    [shared, 'not a valid cr process image: head: a msgpack extension (type 0x69); images are plain msgpack'],
    [empty, `not a valid cr image: payload: it would decode to over 224 MiB (32 MiB + 8 x its ${payload.length} bytes): too many values for its size`],
  ] as const) {
    for (const command of ['show', 'restore']) {
      const r = crGuarded([command, image]);
      assert.is(r.code, 2, `${command} ${image}: ${r.stderr}`);
      assert.is(r.stderr, `cr ${command}: ${image}: ${why}\n`);
    }
  }
  rmSync(empty);
});

test('nesting, key types and counts that lie are refused before decoding', async () => {
  const base = (table: Buffer): Buffer =>
    Buffer.concat([Buffer.from([0x85]), plain.pack({ toolVersion: '0.1.0', kernel: 'x', process: { pid: 1, comm: 'x', cmdline: [], uid: 0 }, dropped: [] }).subarray(1), plain.pack('table'), table]);
  const cases: Array<[Buffer, string]> = [
    [Buffer.concat([Buffer.alloc(40, 0x91), Buffer.from([0xc0])]), 'payload: nesting deeper than 16'],
    [Buffer.from([0x81, 0x01, 0xc0]), 'payload: a map key that is not a string'],
    [Buffer.from([0xdd, 0x7f, 0xff, 0xff, 0xff, 0xc0]), 'payload: a list of 2147483647 entries in 1 bytes'],
  ];
  for (const [table, why] of cases) {
    const image = join(dir, 'lie.img');
    writeFileSync(image, fdImage(base(table)));
    const r = await cr(['show', image]);
    assert.is(r.code, 2, r.stderr);
    assert.is(r.stderr, `cr show: ${image}: not a valid cr image: ${why}\n`);
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
