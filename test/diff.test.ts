// cr diff: tables compared up to renaming of descriptions and pipes, one line per difference,
// exit 0 / 1 / 2.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compareTables } from '../src/diff/compare.js';
import { O_LARGEFILE, O_NONBLOCK, O_WRONLY, type FdTable, oneProcess } from '../src/model/fdtable.js';
import { cr } from './helpers/cli.js';
import { tableJson } from '../src/model/json.js';

const bin = (text: string): Buffer => Buffer.from(text);

/** The seed layout: read end 9 (dup 12), write end 4 (dup 7), 5 bytes queued; and a file at 3. */
function seed(): FdTable {
  return {
    fds: [
      { fd: 3, desc: 2, cloexec: true },
      { fd: 4, desc: 0, cloexec: false },
      { fd: 7, desc: 0, cloexec: false },
      { fd: 9, desc: 1, cloexec: false },
      { fd: 12, desc: 1, cloexec: false },
    ],
    descs: [
      { id: 0, kind: 'pipe', flags: O_WRONLY, pipe: 0 },
      { id: 1, kind: 'pipe', flags: 0, pipe: 0 },
      { id: 2, kind: 'file', flags: O_LARGEFILE, path: '/etc/hostname', offset: 2 },
    ],
    pipes: [{ id: 0, capacity: 65536, data: bin('hello') }],
    rlimit: { soft: 1024, hard: 4096 },
  };
}

/** The same table with every id renamed and every list in another order. */
function renamed(): FdTable {
  return {
    fds: [
      { fd: 12, desc: 70, cloexec: false },
      { fd: 9, desc: 70, cloexec: false },
      { fd: 7, desc: 50, cloexec: false },
      { fd: 4, desc: 50, cloexec: false },
      { fd: 3, desc: 60, cloexec: true },
    ],
    descs: [
      { id: 70, kind: 'pipe', flags: 0, pipe: 8 },
      { id: 60, kind: 'file', flags: O_LARGEFILE, path: '/etc/hostname', offset: 2 },
      { id: 50, kind: 'pipe', flags: O_WRONLY, pipe: 8 },
    ],
    pipes: [{ id: 8, capacity: 65536, data: bin('hello') }],
    rlimit: { soft: 1024, hard: 4096 },
  };
}

test('the same table up to renaming of descriptions and pipes: no differences', () => {
  assert.equal(compareTables(seed(), renamed()), []);
  assert.equal(compareTables(renamed(), seed()), []);
});

test('fds only on one side, close-on-exec, flags, path, offset, rlimit', () => {
  const b = renamed();
  b.fds = b.fds.filter((f) => f.fd !== 12);
  b.fds.push({ fd: 20, desc: 60, cloexec: false });
  b.fds.find((f) => f.fd === 3)!.cloexec = false;
  b.descs.find((d) => d.id === 50)!.flags = O_WRONLY | O_NONBLOCK;
  (b.descs.find((d) => d.id === 60) as { offset?: number }).offset = 0;
  (b.descs.find((d) => d.id === 60) as { path?: string }).path = '/etc/hosts';
  b.rlimit = { soft: 1024, hard: 20000 };
  assert.equal(compareTables(seed(), b), [
    'fd 12: only in A (pipe read end)',
    'fd 20: only in B (file /etc/hosts)',
    'fd 3: close-on-exec on in A, off in B',
    'fd 3: path "/etc/hostname" in A, "/etc/hosts" in B',
    'fd 3: offset 2 in A, 0 in B',
    'fds 4, 7: flags O_WRONLY in A, O_WRONLY|O_NONBLOCK in B',
    'RLIMIT_NOFILE 1024:4096 in A, 1024:20000 in B',
  ]);
});

test('a device path on another device number; an image without device numbers differs in none', () => {
  const dev = (rdev?: number): FdTable => ({
    fds: [{ fd: 0, desc: 0, cloexec: false }],
    descs: [{ id: 0, kind: 'chr', flags: O_WRONLY | O_LARGEFILE, path: '/dev/null', ...(rdev === undefined ? {} : { rdev }) }],
    pipes: [],
    rlimit: { soft: 1024, hard: 4096 },
  });
  assert.equal(compareTables(dev(0x103), dev(0x105)), ['fd 0: device 1:3 in A, 1:5 in B']);
  assert.equal(compareTables(dev(0x103), dev()), []);
  assert.equal(compareTables(dev(0x103), dev(0x103)), []);
});

test('sharing: one description split in two, and two merged into one', () => {
  const b = renamed();
  // fd 7 gets a description of its own (same flags, same pipe): a reopen, not a dup.
  b.descs.push({ id: 51, kind: 'pipe', flags: O_WRONLY, pipe: 8 });
  b.fds.find((f) => f.fd === 7)!.desc = 51;
  assert.equal(compareTables(seed(), b), ['fds 4, 7 are on one description in A, but on 2 in B: 4 | 7']);
  assert.equal(compareTables(b, seed()), ['fds 4, 7 are on one description in B, but on 2 in A: 4 | 7']);
});

test('pipes: pairing, capacity, bytes, packets', () => {
  const b = renamed();
  // The write ends now belong to a pipe of their own.
  b.pipes.push({ id: 9, capacity: 4096, data: bin('hellO') });
  (b.descs.find((d) => d.id === 50) as { pipe?: number }).pipe = 9;
  assert.equal(compareTables(seed(), b), [
    'fds 4, 7, 9, 12 are on one pipe in A, but on 2 in B: 4 7 | 9 12',
    'the pipe at fds 4, 7: capacity 65536 in A, 4096 in B',
    'the pipe at fds 4, 7: the 5 queued bytes differ from byte 4 on',
  ]);
  const c = renamed();
  c.pipes[0] = { id: 8, capacity: 65536, data: bin('hello!'), packets: [1, 5] };
  assert.equal(compareTables(seed(), c), [
    'the pipe at fds 4, 7, 9, 12: 5 bytes queued in A, 6 in B',
    'the pipe at fds 4, 7, 9, 12: a byte stream in A, packets 1,5 in B',
  ]);
});

test('kinds: a pipe end in A, a file in B', () => {
  const b = renamed();
  b.descs.push({ id: 61, kind: 'file', flags: 0, path: '/etc/hostname', offset: 0 });
  b.fds.find((f) => f.fd === 12)!.desc = 61;
  assert.equal(compareTables(seed(), b), [
    'fds 9, 12 are on one description in A, but on 2 in B: 9 | 12',
    // Kinds differ: one line says what each is; the kinds' own fields are not compared.
    'fd 12: pipe read end in A, file /etc/hostname in B',
  ]);
});

test('cr diff: exit 0 when equal, 1 with one difference a line, 2 on error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cr-diff-'));
  try {
    const a = join(dir, 'a.json');
    const b = join(dir, 'b.json');
    const c = join(dir, 'c.json');
    writeFileSync(a, tableJson(oneProcess(seed(), 1)));
    writeFileSync(b, tableJson(oneProcess(renamed(), 1)));
    writeFileSync(c, tableJson(oneProcess({ ...seed(), rlimit: { soft: 64, hard: 64 } }, 1)));
    let r = await cr(['diff', a, b]);
    assert.is(r.code, 0);
    assert.is(r.stdout, `same: ${a} and ${b} describe the same fd table (5 fds, 3 descriptions, 1 pipe)\n`);
    r = await cr(['diff', a, c]);
    assert.is(r.code, 1);
    assert.is(r.stdout, 'RLIMIT_NOFILE 1024:4096 in A, 64:64 in B\n');
    r = await cr(['diff', a, join(dir, 'missing')]);
    assert.is(r.code, 2);
    assert.match(r.stderr, /^cr diff: cannot read .*missing: ENOENT/);
    r = await cr(['diff', a]);
    assert.is(r.code, 2);
    assert.is(r.stderr, 'cr diff: B is required; see node cr.mjs diff --help\n');
    writeFileSync(c, '{"fds": 3}');
    r = await cr(['diff', a, c]);
    assert.is(r.code, 2);
    assert.is(r.stderr.split('\n').length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
