// Bad images (a bounded run of `cr fuzz-image`): thousands of mutants of real images (truncated,
// bit-flipped, spliced, wrong envelope, lies behind a valid checksum, wrong types, deep and huge
// values) must each be refused with exit code 2 and one line, by cr's reader and planner in this
// process and, for a sample, by the real CLI: show, plan, restore -- CMD, restore --into PID, and
// for whole-process images restore IMAGE alone (a restart).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { run as fuzzImage } from '../src/commands/fuzz-image.js';
import { badInputProblem } from '../src/imagefuzz/judge.js';
import type { Seed } from '../src/imagefuzz/mutant.js';
import { fuzzImages, summarize } from '../src/imagefuzz/run.js';
import { makeProcessSeed } from '../src/imagefuzz/process-seed.js';
import { LiveTarget } from '../src/imagefuzz/live-target.js';
import { encodeImage, IMAGE_FORMAT_VERSION, IMAGE_MAGIC } from '../src/image/format.js';
import { loadInput } from '../src/image/input.js';
import type { FdTable } from '../src/model/fdtable.js';
import { parseTables } from '../src/image/validate.js';
import { oneProcess, onlyProcess } from '../src/model/fdtable.js';
import { planRestore } from '../src/plan/planner.js';
import { captured, cr } from './helpers/cli.js';

const FIXTURES = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));
const SEEDS = ['seed', 'halfclosed', 'packets', 'fifo', 'files', 'full', 'limit64'];
const dir = mkdtempSync(join(tmpdir(), 'cr-badimage-'));


/** A real image of a live process, dumped now: the seeds must match what dump writes today. */
async function freshSeed(): Promise<Seed> {
  const target = LiveTarget.start();
  try {
    const image = join(dir, 'fresh.img');
    const r = await cr(['dump', '--fds-only', '--pid', String(target.pid), '-o', image]);
    assert.is(r.code, 0, r.stderr);
    assert.is(target.check(), '');
    return { name: 'fresh dump', bytes: readFileSync(image) };
  } finally {
    assert.is(target.stop(), '');
  }
}

test('bounded bad-image run: every mutant refused with exit code 2 and one line, in process and through the CLI', async () => {
  // A whole-process image too, made now: restarting it needs its executable in place.
  const whole = makeProcessSeed(mkdtempSync(join(dir, 'proc-')));
  const seeds: Seed[] = [await freshSeed(), ...SEEDS.map((s) => ({ name: `hardening-${s}.img`, bytes: readFileSync(join(FIXTURES, `hardening-${s}.img`)) })), whole.seed];
  const report = await fuzzImages({
    seeds,
    marks: [whole.mark],
    seed: 7,
    flips: 120,
    splices: 50,
    refits: 30,
    truncations: 10,
    huge: false,
    knownGaps: false,
    cliSample: 8,
    columns: ['show', 'plan', 'restore', 'into', 'restart'],
    timeoutMs: 30_000,
    concurrency: 3,
  });
  const text = summarize(report).join('\n');
  assert.equal(report.failures, [], text);
  assert.equal(report.cli.failures, [], text);
  assert.is(report.rejected, report.mustReject, text);
  // The run must be as large and as varied as it claims.
  assert.ok(report.mustReject > 3500, text);
  for (const family of ['proc-truncated', 'proc-bit-flip', 'proc-record', 'proc-head', 'envelope', 'truncated', 'lie-fd', 'lie-pipe', 'lie-desc', 'lie-path', 'lie-header', 'wrong-type', 'missing-field', 'unknown-field', 'deep', 'huge', 'bit-flip', 'splice', 'refit']) {
    assert.ok((report.families[family]?.rejected ?? 0) > 0, `no ${family} mutant was refused\n${text}`);
  }
  // Refits may leave valid images, and some must: otherwise the checksum hid every change.
  assert.ok(report.acceptedValid > 0, text);
  // Through the CLI: show, plan, restore -- CMD (nothing left running) and restore --into a live
  // process (its fd table, run state and pipe bytes checked after each).
  assert.is(report.cli.mutants, 8);
  for (const column of ['show', 'plan', 'restore', 'into'] as const) assert.is(report.cli.refused[column], 8, text);
  // restore IMAGE alone (a restart) for the whole-process mutants among them: none may start anything.
  assert.ok(report.cli.runs.restart > 0, text);
  assert.is(report.cli.refused.restart, report.cli.runs.restart, text);
});

test('fuzz-image command: counts printed, exit 0 on a clean run, bad arguments refused', async () => {
  const r = await captured(() => fuzzImage(['--flips', '5', '--splices', '0', '--refits', '0', '--truncations', '0', '--cli', '0', '--columns', 'show', join(FIXTURES, 'hardening-seed.img')]));
  assert.is(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^\d+ mutants: (\d+) must be refused, \1 were;/m);
  // One truncation per byte of the seed image.
  const size = readFileSync(join(FIXTURES, 'hardening-seed.img')).length;
  assert.match(r.stdout, new RegExp(`^ {2}truncated +tried +${size} +refused +${size} `, 'm'));
  const bad = await fuzzImageArgs(['--columns', 'show,nope']);
  assert.is(bad, 'bad input');
  assert.is(await fuzzImageArgs([join(dir, 'no-such-seed.img')]), 'bad input');
});

/** How the command ends for these arguments: 'bad input', or the exit code. */
async function fuzzImageArgs(args: string[]): Promise<string | number> {
  try {
    return await fuzzImage(args);
  } catch (err) {
    return badInputProblem(err) === undefined ? 'bad input' : String(err);
  }
}

test('an image path that is no image file: one line, exit code 2, no wait', async () => {
  const sub = join(dir, 'adir');
  mkdirSync(sub);
  symlinkSync(sub, join(dir, 'link-to-dir'));
  symlinkSync(join(dir, 'nowhere'), join(dir, 'dangling'));
  writeFileSync(join(dir, 'empty'), '');
  // A FIFO nobody writes: opening it for reading must not wait for a writer.
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  const paths = [sub, join(dir, 'link-to-dir'), join(dir, 'dangling'), join(dir, 'missing'), join(dir, 'empty'), join(dir, 'fifo'), '/dev/null', '/dev/zero', '/proc/self/mem', ''];
  for (const path of paths) {
    for (const command of ['show', 'plan']) {
      const r = await cr([command, path]);
      assert.is(r.code, 2, `${command} ${path}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^cr ${command}: [^\\n]+\\n$`), `${command} ${path}`);
      assert.is(r.stdout, '');
    }
  }
});

test('each kind of refusal names what is wrong', () => {
  const cases: Array<[string, Buffer | string, RegExp]> = [
    ['truncated', readFileSync(join(FIXTURES, 'hardening-seed.img')).subarray(0, 100), /not a valid cr image: no cr image envelope/],
    ['flipped', (() => {
      const b = Buffer.from(readFileSync(join(FIXTURES, 'hardening-seed.img')));
      b[b.length - 3]! ^= 4;
      return b;
    })(), /checksum mismatch \(the image is corrupt\)/],
    ['json lie', JSON.stringify({ descs: [], pipes: [], processes: [{ pid: 1, fds: [{ fd: 5, desc: 0, cloexec: false }], rlimit: { soft: 64, hard: 64 } }] }), /processes\[0\]\.fds\[0\]\.desc: no description with id 0/],
    ['old json shape', JSON.stringify({ fds: [], descs: [], pipes: [], rlimit: { soft: 64, hard: 64 } }), /table: fds and rlimit at the top is the old one-process shape/],
  ];
  for (const [name, bytes, pattern] of cases) {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    try {
      loadInput(path);
      assert.unreachable(`${name} was accepted`);
    } catch (err) {
      assert.is(badInputProblem(err), undefined, name);
      assert.match((err as Error).message, pattern, name);
    }
  }
});

/** An image of /dev/null at fd 0 and, dup'd, at `fd`, below a soft limit of `soft`, by `comm`, at `path`. */
function tinyImage(fd: number, soft: number, comm = 'x', path = '/dev/null'): Buffer {
  const table: FdTable = {
    fds: [{ fd: 0, desc: 0, cloexec: false }, { fd, desc: 0, cloexec: false }],
    descs: [{ id: 0, kind: path === '/dev/null' ? 'chr' : 'file', flags: 0o100000, path, ...(path === '/dev/null' ? {} : { offset: 0 }) } as FdTable['descs'][number]],
    pipes: [],
    rlimit: { soft, hard: soft },
  };
  return encodeImage({ magic: IMAGE_MAGIC, formatVersion: IMAGE_FORMAT_VERSION, toolVersion: '0.1.0', kernel: 'test', process: { pid: 1, comm, cmdline: [], uid: 0 }, table: oneProcess(table, 1), dropped: [] });
}

test('an fd far above any limit: plan refuses it at once, and the planner still works afterwards', async () => {
  for (const fd of [2 ** 30 - 1, 2e8]) {
    const file = join(dir, `fd-${fd}.img`);
    writeFileSync(file, tinyImage(fd, fd + 1));
    const r = await cr(['plan', file]);
    assert.is(r.code, 2, r.stderr);
    assert.match(r.stderr, /^cr plan: [^\n]+\n$/);
  }
  const plan = planRestore(onlyProcess(parseTables({ processes: [{ pid: 1, fds: [{ fd: 5, desc: 0, cloexec: false }], rlimit: { soft: 64, hard: 64 } }], descs: [{ id: 0, kind: 'chr', flags: 0o100001, path: '/dev/null' }], pipes: [] })), { fds: [0, 1, 2], rlimit: { soft: 64, hard: 64 }, mode: 'fresh' });
  assert.ok(plan.ops.length > 0);
});

test('show prints no control character an image carries (names, paths, kernel)', async () => {
  const file = join(dir, 'escape.img');
  writeFileSync(file, tinyImage(3, 64, 'evil\u001b[2J', '/tmp/a\u001b]0;owned\u0007\nb'));
  const r = await cr(['show', file]);
  assert.is(r.code, 0, r.stderr);
  assert.not.match(r.stdout, /[\u0000-\u0008\u000b-\u001f\u007f]/);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
