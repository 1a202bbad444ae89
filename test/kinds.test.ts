// The kinds added as modules (src/kinds/: eventfd, directory, O_PATH), end to end: a C program
// (test/fixtures/kinds-selfcheck.c) holds them, checks them itself (flags, close-on-exec, kcmp,
// counters by reading them, directory identity by fstat and position by getdents, what an O_PATH
// fd names) before and after a whole-process dump, and again in every restore mode: `-- CMD`,
// `--into` a target whose own fds collide (with and without --exact), and restart. Show and diff
// of such an image, and a plan of it checked by the simulator, are here too.
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { oneProcess } from '../src/model/fdtable.js';
import type { FdTable } from '../src/model/fdtable.js';
import { planRestore } from '../src/plan/planner.js';
import { verify } from '../src/sim/verify.js';
import { cr } from './helpers/cli.js';
import { buildFixture } from './helpers/processes.js';
import { builtAndDumped, passesInEveryMode } from './helpers/selfcheck-modes.js';

const PROG = buildFixture('kinds-selfcheck');
const IMAGE_FDS = [5, 6, 7, 8, 9, 10, 11, 12];

const tempDir = (what: string): string => realpathSync(mkdtempSync(join(tmpdir(), `cr-kinds-${what}-`)));

/** A directory of 40 files (so a getdents position is somewhere inside it) and a file. */
function world(dir: string): void {
  mkdirSync(join(dir, 'd'));
  for (let i = 0; i < 40; i++) writeFileSync(join(dir, 'd', `entry-${i}`), '');
  writeFileSync(join(dir, 'f'), 'a file an O_PATH fd names');
}

test('eventfd, directory and O_PATH fds: PASS before and after the dump and in every restore mode', async () => {
  const dir = tempDir('modes');
  try {
    world(dir);
    const image = join(dir, 'image');
    const table = await builtAndDumped(PROG, dir, image);
    const kinds = Object.fromEntries(table.fds.map((f) => [f.fd, table.descs.find((d) => d.id === f.desc)!]));
    assert.equal(IMAGE_FDS.map((fd) => kinds[fd]!.kind), ['eventfd', 'eventfd', 'dir', 'eventfd', 'opath', 'opath', 'eventfd', 'dir']);
    assert.equal(kinds[5], { id: kinds[5]!.id, kind: 'eventfd', flags: 0o4002, count: 7, semaphore: true });
    assert.equal(kinds[8], { id: kinds[8]!.id, kind: 'eventfd', flags: 0o2, count: 0x123456789, semaphore: false });
    assert.is(kinds[10]!.kind === 'opath' && kinds[10]!.type, 'directory');
    const expectPos = readFileSync(join(dir, 'expect'), 'utf8').split('\n')[0];
    assert.is(kinds[7]!.kind === 'dir' && kinds[7]!.offset, expectPos);
    await passesInEveryMode(PROG, IMAGE_FDS, image, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const fdOnly = (descs: FdTable['descs'], fds: Array<[number, number, boolean?]>): FdTable => ({
  fds: fds.map(([fd, desc, cloexec]) => ({ fd, desc, cloexec: cloexec ?? false })),
  descs,
  pipes: [],
  rlimit: { soft: 1024, hard: 1024 },
});

test('plans of the new kinds pass the simulator, fresh and into a target whose fds collide', () => {
  const table = fdOnly(
    [
      { id: 0, kind: 'eventfd', flags: 0o4002, count: 2 ** 40, semaphore: true },
      { id: 1, kind: 'dir', flags: 0o300000, path: '/srv/d', offset: '9007199254740993' },
      { id: 2, kind: 'opath', flags: 0o10000000, path: '/srv/d', type: 'directory' },
      { id: 3, kind: 'eventfd', flags: 0o2002, count: 0, semaphore: false },
    ],
    [[0, 0], [4, 0, true], [3, 1], [1, 2, true], [2, 3]],
  );
  for (const mode of ['fresh', 'into', 'into-exact'] as const) {
    const target = { fds: [0, 1, 2, 3, 9], rlimit: { soft: 1024, hard: 1024 }, mode };
    const plan = planRestore(table, target);
    assert.equal(verify(table, target, plan), { ok: true }, mode);
    assert.ok(plan.ops.some((o) => o.op === 'create' && /^eventfd2\(0, EFD_NONBLOCK\|EFD_SEMAPHORE/.test(o.call)), mode);
    assert.ok(plan.ops.some((o) => o.op === 'lseek' && o.offset === '9007199254740993'), mode);
  }
  // The simulator tells a plan that leaves a directory at the wrong position.
  const target = { fds: [], rlimit: { soft: 1024, hard: 1024 }, mode: 'fresh' as const };
  const plan = planRestore(table, target);
  const noSeek = { ...plan, lowerBound: 0, ops: plan.ops.filter((o) => o.op !== 'lseek') };
  assert.match(String((verify(table, target, noSeek) as { reason: string }).reason), /position 0, the image says 9007199254740993/);
});

test('show and diff print and compare the new kinds by their own fields', async () => {
  const dir = tempDir('show');
  try {
    const a = fdOnly([
      { id: 0, kind: 'eventfd', flags: 0o2, count: 5, semaphore: false },
      { id: 1, kind: 'dir', flags: 0o300000, path: '/etc', offset: '12' },
      { id: 2, kind: 'opath', flags: 0o10000000, path: '/etc/hostname', type: 'regular file' },
    ], [[3, 0], [4, 1], [5, 2]]);
    const b = structuredClone(a);
    (b.descs[0] as { count: number; semaphore: boolean }).count = 6;
    (b.descs[0] as { semaphore: boolean }).semaphore = true;
    (b.descs[1] as { offset: string }).offset = '13';
    writeFileSync(join(dir, 'a.json'), JSON.stringify(oneProcess(a, 1)));
    writeFileSync(join(dir, 'b.json'), JSON.stringify(oneProcess(b, 1)));
    const shown = await cr(['show', join(dir, 'a.json')]);
    assert.is(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, /eventfd .*count 5/);
    assert.match(shown.stdout, /dir .*\/etc @ 12/);
    assert.match(shown.stdout, /opath .*\/etc\/hostname \(regular file\)/);
    const diff = await cr(['diff', join(dir, 'a.json'), join(dir, 'b.json')]);
    assert.is(diff.code, 1);
    assert.equal(diff.stdout.trim().split('\n'), ['fd 3: count 5 in A, 6 in B', 'fd 3: semaphore off in A, on in B', 'fd 4: position 12 in A, 13 in B']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad descriptions of the new kinds are one line each', async () => {
  const dir = tempDir('bad');
  try {
    const cases: Array<[FdTable['descs'][number] | Record<string, unknown>, RegExp]> = [
      [{ id: 0, kind: 'eventfd', flags: 0o0, count: 1, semaphore: false }, /an eventfd is O_RDWR/],
      [{ id: 0, kind: 'eventfd', flags: 0o2, count: -1, semaphore: false }, /count: -1 is below 0/],
      [{ id: 0, kind: 'dir', flags: 0o300000, path: '/etc', offset: '1e3' }, /offset: expected a decimal position/],
      [{ id: 0, kind: 'dir', flags: 0o300001, path: '/etc', offset: '0' }, /a directory is O_RDONLY/],
      [{ id: 0, kind: 'opath', flags: 0o10200000, path: '/etc/hostname', type: 'regular file' }, /O_DIRECTORY names a directory/],
      [{ id: 0, kind: 'opath', flags: 0o10000000, path: '/etc/hostname', type: 'socket' }, /type: expected one of/],
      [{ id: 0, kind: 'file', flags: 0o10000000, path: '/etc/hostname', offset: 0 }, /O_PATH is never part of F_GETFL's answer here/],
    ];
    for (const [desc, why] of cases) {
      writeFileSync(join(dir, 't.json'), JSON.stringify(oneProcess(fdOnly([desc as FdTable['descs'][number]], [[3, 0]]), 1)));
      const r = await cr(['plan', join(dir, 't.json'), '--target-fds', '0-2']);
      assert.is(r.code, 2, `${JSON.stringify(desc)}: ${r.stderr}`);
      assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, why);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
