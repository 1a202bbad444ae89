// Guard regions (madvise MADV_GUARD_INSTALL) across a whole-process checkpoint. The program is
// test/fixtures/process-guards.c: 16 pages of patterns with guards on pages 0, 5, 9-11 and 15,
// and a guard in a never-touched read-only mapping; after the restart it checks that every other page
// kept its bytes and that every guard page still faults (SIGSEGV caught), and says PASS or FAIL.
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { reap, spawn } from '../bridge/spawn.js';
import { checkpointProcess } from '../src/checkpoint/checkpoint.js';
import { readMappings } from '../src/checkpoint/maps.js';
import { savePages } from '../src/checkpoint/pages.js';
import { CrError, EXIT_BAD_INPUT } from '../src/errors.js';
import { PAGE_SIZE, PROCESS_FORMAT_VERSION, ProcessImage, ProcessImageWriter } from '../src/image/process-format.js';
import { guardRegions, type ProcessHead } from '../src/image/process-head.js';
import { restartProcess } from '../src/restart/restart.js';
import { cr } from './helpers/cli.js';
import { ensureReaped, waitInSyscall, buildFixture } from './helpers/processes.js';

const PROGRAM = buildFixture('process-guards');
const SYS_read = 0;
const hex = (n: number): string => n.toString(16);
const text = (path: string): string => (existsSync(path) ? readFileSync(path, 'utf8') : '');

interface Guarded {
  dir: string;
  fifo: string;
  out: string;
  /** the fixture, blocked in read() on fifo */
  pid: number;
  /** its 16-page mapping and its untouched 4-page one */
  base: number;
  other: number;
  /** the guard regions it installed, adjacent ones joined */
  expected: Array<{ start: number; end: number }>;
  /** kill and reap this too at the end */
  adopt(pid: number): number;
  /** our end of the FIFO: a write lets the program check itself */
  release(): void;
}

/** The fixture started and blocked in read(); everything killed and removed at the end. */
async function withGuarded(fn: (g: Guarded) => void | Promise<void>): Promise<void> {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-guards-')));
  const pids: number[] = [];
  const fds: number[] = [];
  try {
    const fifo = join(dir, 'fifo');
    const out = join(dir, 'out');
    execFileSync('mkfifo', [fifo]);
    // Held open read-write by the test: opening it never blocks, and its pipe outlives the program.
    const ours = openSync(fifo, 'r+');
    fds.push(ours);
    const devnull = openSync('/dev/null', 'r+');
    fds.push(devnull);
    const pid = spawn([PROGRAM, fifo, out], { fds: [[devnull, 0], [devnull, 1], [devnull, 2]] });
    pids.push(pid);
    waitInSyscall(pid, SYS_read);
    const ready = /^READY ([0-9a-f]+) ([0-9a-f]+)\n$/.exec(text(out));
    assert.ok(ready, `the program's own check before the dump: ${text(out)}`);
    const base = parseInt(ready[1]!, 16);
    const other = parseInt(ready[2]!, 16);
    const page = (at: number, n: number, pages = 1): { start: number; end: number } => ({ start: at + n * PAGE_SIZE, end: at + (n + pages) * PAGE_SIZE });
    const expected = [page(base, 0), page(base, 5), page(base, 9, 3), page(base, 15), page(other, 1)].sort((x, y) => x.start - y.start);
    await fn({
      dir, fifo, out, pid, base, other, expected,
      adopt: (p) => {
        pids.push(p);
        return p;
      },
      release: () => {
        writeSync(ours, 'x');
      },
    });
  } finally {
    for (const p of pids) ensureReaped(p);
    for (const fd of fds) closeSync(fd);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The restarted program, told to check itself: its verdict and exit status. */
function verdict(g: Guarded, pid: number): void {
  waitInSyscall(pid, SYS_read);
  g.release();
  const end = reap(pid, 10_000);
  const lines = text(g.out).trim().split('\n');
  assert.is(lines[lines.length - 1], 'PASS');
  assert.equal([end.kind, end.code], ['exited', 0]);
}

/** Copy an image through the reader and writer, changing its head on the way. */
function rewrite(from: string, to: string, change: (head: ProcessHead) => ProcessHead): void {
  const reader = ProcessImage.read(from);
  const writer = ProcessImageWriter.create(to, { force: false });
  try {
    writer.tree(reader.tree);
    writer.fds(reader.fdImage);
    writer.head(change(reader.head));
    for (const run of reader.pages()) writer.pages(run.mapping, run.addr, run.data);
    writer.commit();
  } finally {
    writer.abort();
  }
}

test('guard pages are recorded, not read, and fault again after restart (new pid and --same-pid); the other pages keep their bytes', () =>
  withGuarded((g) => {
    // The read-only mapping has no page in memory: the page copy skips it, the scan does not.
    const { mappings, policies } = readMappings(g.pid);
    assert.is(policies[mappings.findIndex((m) => m.start === g.other && m.end === g.other + 4 * PAGE_SIZE)], 'none');
    const image = join(g.dir, 'image');
    checkpointProcess(g.pid, image, { leaveStopped: true });
    ensureReaped(g.pid);
    const reader = ProcessImage.read(image);
    assert.equal(guardRegions(reader.head.mappings), g.expected);
    // No run carries a guard page (the reader refuses one that would); the patterns are there.
    const saved = new Set<number>();
    for (const run of reader.pages()) for (let at = run.addr; at < run.addr + run.data.length; at += PAGE_SIZE) saved.add(at);
    for (let p = 0; p < 16; p++) {
      const guarded = g.expected.some((r) => r.start <= g.base + p * PAGE_SIZE && g.base + p * PAGE_SIZE < r.end);
      assert.is(saved.has(g.base + p * PAGE_SIZE), !guarded, `page ${p} ${guarded ? 'is a guard' : 'holds a pattern'}`);
    }
    const again = g.adopt(restartProcess(reader).pid);
    assert.is.not(again, g.pid);
    verdict(g, again);
    const same = g.adopt(restartProcess(ProcessImage.read(image), { samePid: true }).pid);
    assert.is(same, g.pid);
    verdict(g, same);
  }));

test('show lists the guard regions; diff tells an image from one without them; format 1 images are refused', () =>
  withGuarded(async (g) => {
    const image = join(g.dir, 'image');
    checkpointProcess(g.pid, image);
    const shown = await cr(['show', image]);
    assert.is(shown.code, 0);
    const listed = g.expected.map((r) => `${hex(r.start)}-${hex(r.end)}`).join(', ');
    assert.ok(shown.stdout.includes(`\nguard regions: 5 (7 pages, installed again at restart): ${listed}\n`), shown.stdout);

    const same = await cr(['diff', image, image]);
    assert.is(same.code, 0);
    assert.match(same.stdout, /, and the same 5 guard regions\n$/);
    const bare = join(g.dir, 'bare');
    rewrite(image, bare, (head) => ({ ...head, mappings: head.mappings.map((m) => ({ ...m, guards: m.guards.filter((r) => r.start !== g.base + 5 * PAGE_SIZE) })) }));
    const differ = await cr(['diff', image, bare]);
    assert.is(differ.code, 1);
    assert.is(differ.stdout, `guard region ${hex(g.base + 5 * PAGE_SIZE)}-${hex(g.base + 6 * PAGE_SIZE)} (1 page): only in A\n`);

    // An image of the format before guard regions could be recorded: refused, not misread.
    const old = readFileSync(image);
    old.writeUInt32LE(1, 8);
    const v1 = join(g.dir, 'v1');
    writeFileSync(v1, old);
    const refused = await cr(['show', v1]);
    assert.is(refused.code, 2);
    assert.is(refused.stderr, `cr show: ${v1}: process image format version 1 is not supported (this cr reads version ${PROCESS_FORMAT_VERSION}): it is from an older cr, dump the process again\n`);
  }));

test('a page that cannot be read is refused with one line naming its mapping (guard regions not reported, as on kernels before 6.15)', () =>
  withGuarded((g) => {
    // The mappings as smaps has them, without the PAGEMAP_SCAN: the page copy meets the guards.
    const { mappings, policies } = readMappings(g.pid);
    const writer = { pagesAhead: (): void => undefined, pages: (): void => undefined } as unknown as ProcessImageWriter;
    let error: unknown = null;
    try {
      savePages(g.pid, mappings, policies, writer, false);
    } catch (err) {
      error = err;
    }
    assert.instance(error, CrError);
    const { message, code } = error as CrError;
    assert.is(code, EXIT_BAD_INPUT);
    const m = /^mapping ([0-9a-f]+)-([0-9a-f]+) \(anonymous\): the page at ([0-9a-f]+) cannot be read \(EIO\): a guard region \(MADV_GUARD_INSTALL\) this kernel cannot report, or memory cr cannot carry$/.exec(message);
    assert.ok(m, message);
    const page = parseInt(m[3]!, 16);
    assert.ok(g.expected.some((r) => r.start === page), `${hex(page)} starts a guard region`);
    assert.ok(parseInt(m[1]!, 16) <= page && page < parseInt(m[2]!, 16));
    // Nothing was touched: the program still checks out.
    verdict(g, g.pid);
  }));

test.run();
