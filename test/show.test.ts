// show on images whose strings would drive a terminal, and on descriptions with thousands of dups.
import { oneProcess } from '../src/model/fdtable.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeImage, IMAGE_FORMAT_VERSION, IMAGE_MAGIC } from '../src/image/format.js';
import type { FdTable } from '../src/model/fdtable.js';
import { cr } from './helpers/cli.js';
import { tableJson } from '../src/model/json.js';

const dir = mkdtempSync(join(tmpdir(), 'cr-show-'));

function imageFile(name: string, table: FdTable, process: { comm: string; cmdline: string[] }, kernel = 'test'): string {
  const file = join(dir, name);
  writeFileSync(file, encodeImage({ magic: IMAGE_MAGIC, formatVersion: IMAGE_FORMAT_VERSION, toolVersion: '0.1.0', kernel, process: { pid: 1, uid: 0, ...process }, table: oneProcess(table, 1), dropped: [] }));
  return file;
}

const devNull = (fds: number[], soft = 8192): FdTable => ({
  fds: fds.map((fd) => ({ fd, desc: 0, cloexec: false })),
  descs: [{ id: 0, kind: 'chr', flags: 0o100001, path: '/dev/null' }],
  pipes: [],
  rlimit: { soft, hard: soft },
});

/** What a terminal would act on: C0 controls but newline, DEL, C1 controls, bidi overrides, separators. */
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

test('show escapes the control characters of paths, comm, cmdline, kernel and pipe bytes; --json stays valid and exact', async () => {
  const path = '/tmp/a\u001b]0;owned\u0007\nb\u009b2J\u202etxt.exe\\';
  const table: FdTable = {
    fds: [{ fd: 3, desc: 0, cloexec: false }, { fd: 4, desc: 1, cloexec: false }, { fd: 5, desc: 2, cloexec: false }],
    descs: [{ id: 0, kind: 'file', flags: 0o100000, path, offset: 7 }, { id: 1, kind: 'pipe', flags: 0, pipe: 0 }, { id: 2, kind: 'pipe', flags: 1, pipe: 0 }],
    pipes: [{ id: 0, capacity: 65536, data: Buffer.from('\u001b[31mred\u007f\t') }],
    rlimit: { soft: 64, hard: 64 },
  };
  const file = imageFile('escape.img', table, { comm: 'evil\u001b[2J', cmdline: ['sh', '-c', 'echo "\u001b[1A"\r'] }, '6.0\u2028fake line');
  const r = await cr(['show', file]);
  assert.is(r.code, 0, r.stderr);
  assert.not.match(r.stdout, RAW_CONTROL);
  assert.ok(r.stdout.includes('/tmp/a\\x1b]0;owned\\x07\\nb\\x9b2J\\u202etxt.exe\\\\ @ 7'), r.stdout);
  assert.ok(r.stdout.includes('process 1 (evil\\x1b[2J), uid 0: "sh" "-c" "echo \\"\\x1b[1A\\"\\x0d"'), r.stdout);
  assert.ok(r.stdout.includes('on Linux 6.0\\u2028fake line'), r.stdout);
  assert.ok(r.stdout.includes('"\\x1b[31mred\\x7f\\x09"'), r.stdout);
  const json = await cr(['show', file, '--json']);
  assert.is(json.code, 0, json.stderr);
  assert.not.match(json.stdout, RAW_CONTROL);
  assert.equal(JSON.parse(json.stdout), JSON.parse(tableJson(oneProcess(table, 1))));
});

test('show names a few of a description\'s other fds and counts the rest; alike consecutive dups are one row', async () => {
  // 3000 dups at 0..2999 and 201 more at every other fd from 4000: one range row, and rows that
  // each name four others, however many there are.
  const fds = [...Array.from({ length: 3000 }, (_, i) => i), ...Array.from({ length: 201 }, (_, i) => 4000 + 2 * i)];
  const r = await cr(['show', imageFile('dups.img', devNull(fds), { comm: 'x', cmdline: [] })]);
  assert.is(r.code, 0, r.stderr);
  const lines = r.stdout.split('\n');
  assert.match(r.stdout, /^0-2999 +chr +O_WRONLY\|O_LARGEFILE +no +4000,4002,4004,4006 \+197 more +\/dev\/null$/m);
  assert.match(r.stdout, /^ +4000 +chr +O_WRONLY\|O_LARGEFILE +no +0,1,2,3 \+3196 more +\/dev\/null$/m);
  assert.match(r.stdout, /^ +4400 +chr .* 0,1,2,3 \+3196 more /m);
  assert.ok(lines.length < 220, `${lines.length} lines`);
  assert.ok(Math.max(...lines.map((l) => l.length)) < 120);
  // A few dups stay rows of their own, each naming the others.
  const small = await cr(['show', imageFile('small.img', devNull([1, 2, 5], 64), { comm: 'x', cmdline: [] })]);
  assert.match(small.stdout, /^ 1 +chr .* 2,5 +\/dev\/null$/m);
  assert.match(small.stdout, /^ 2 +chr .* 1,5 +\/dev\/null$/m);
  assert.match(small.stdout, /^ 5 +chr .* 1,2 +\/dev\/null$/m);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
