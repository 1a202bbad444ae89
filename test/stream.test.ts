// Streaming an image through a pipe: `dump -o -` writes it to stdout, `restore -`, `show -` and
// `diff A -` read it from stdin, with gzip in between as a transfer would have. The process is
// the self-checking test/fixtures/fd-selfcheck.c: restored, it checks its own fds (pipes and their
// bytes, a file's offset, sharing, flags, close-on-exec) and says PASS or FAIL.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { kill, SIGUSR1 } from '../bridge/signal.js';
import { spawn } from '../bridge/spawn.js';
import { CR, cr } from './helpers/cli.js';
import { waitFile } from './helpers/fdlayout.js';
import { ensureReaped } from './helpers/processes.js';
import { layoutSpec, O_NONBLOCK, selfcheckProgram, type Layout } from './helpers/selfcheck.js';

const PROG = selfcheckProgram();

/** Anonymous pipes only (the original runs on beside the restored fd table: a FIFO would be shared). */
const layout = (dir: string): Layout => ({
  name: 'stream',
  rlimit: { soft: 64, hard: 64 },
  pipes: [
    { id: 0, data: Buffer.from('queued before the dump\n') },
    { id: 1, capacity: 8192, data: Buffer.alloc(3000, 0x5a) },
  ],
  descs: [
    { id: 0, kind: 'end', pipe: 0, access: 'r', flags: 0 },
    { id: 1, kind: 'end', pipe: 0, access: 'w', flags: O_NONBLOCK },
    { id: 2, kind: 'end', pipe: 1, access: 'r', flags: 0 },
    { id: 3, kind: 'file', path: join(dir, 'data'), access: 'rw', flags: 0, offset: 11 },
    { id: 4, kind: 'chr', path: '/dev/null', access: 'r', flags: 0 },
  ],
  fds: [
    { fd: 0, desc: 4, cloexec: false },
    { fd: 9, desc: 0, cloexec: false },
    { fd: 4, desc: 1, cloexec: false },
    { fd: 12, desc: 0, cloexec: true },
    { fd: 5, desc: 2, cloexec: false },
    { fd: 7, desc: 3, cloexec: false },
  ],
});

function verdict(pid: number, dir: string): string {
  rmSync(join(dir, 'result'), { force: true });
  kill(pid, SIGUSR1);
  return waitFile(dir, 'result');
}

/** A shell pipeline run to its end, its output in files (node's stdio pipes are sockets, which a dumped process must not hold). */
function pipeline(script: string, dir: string): { code: number | null; stdout: string; stderr: string } {
  const out = openSync(join(dir, 'sh.out'), 'w');
  const err = openSync(join(dir, 'sh.err'), 'w');
  try {
    const r = spawnSync('sh', ['-c', script], { stdio: ['ignore', out, err], timeout: 60_000, env: { ...process.env, CR } });
    return { code: r.status, stdout: readFileSync(join(dir, 'sh.out'), 'utf8'), stderr: readFileSync(join(dir, 'sh.err'), 'utf8') };
  } finally {
    closeSync(out);
    closeSync(err);
  }
}

async function withBuilt(fn: (pid: number, dir: string, spec: string, adopt: (pid: number) => number) => Promise<void>): Promise<void> {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-stream-')));
  const pids: number[] = [];
  try {
    const spec = join(dir, 'spec');
    writeFileSync(spec, layoutSpec(layout(dir)));
    const pid = spawn([PROG, 'build', spec, dir], { fds: [] });
    pids.push(pid);
    waitFile(dir, 'ready');
    assert.is(verdict(pid, dir), 'PASS\n', 'as built');
    await fn(pid, dir, spec, (p) => (pids.push(p), p));
  } finally {
    for (const p of pids) ensureReaped(p);
    rmSync(dir, { recursive: true, force: true });
  }
}

test('dump --fds-only -o - | gzip -c | gunzip -c | restore - -- CMD: the new process PASSes its own check; the original too', () =>
  withBuilt(async (pid, dir, spec, adopt) => {
    const there = join(dir, 'restored');
    const r = pipeline(`mkdir ${there} && node "$CR" dump --fds-only --pid ${pid} -o - | gzip -c | gunzip -c | node "$CR" restore - --detach -- ${PROG} check ${spec} ${there}`, dir);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`^dumped pid ${pid} \\(prog-\\w+\\): 6 fds, 5 descriptions, 2 pipes holding 3023 bytes -> stdout \\(fd table only\\) \\(the process runs on\\)$`, 'm'));
    const restored = adopt(Number(r.stdout.trim()));
    waitFile(there, 'ready');
    assert.is(verdict(restored, there), 'PASS\n', 'restored from stdin');
    assert.is(verdict(pid, dir), 'PASS\n', 'the original, after a dump to stdout');
  }));

test('dump -o - --kill | gzip -c | gunzip -c | restore -: the whole process restarts and PASSes; show - and diff A - read stdin', () =>
  withBuilt(async (pid, dir, _spec, adopt) => {
    const file = join(dir, 'image');
    assert.is((await cr(['dump', '--pid', String(pid), '-o', file, '--leave-stopped'])).code, 0);
    // Left stopped by the first dump, it is dumped stopped: --resume restarts it running.
    const r = pipeline(`node "$CR" dump --pid ${pid} -o - --kill | gzip -c | gunzip -c | node "$CR" restore - --detach --resume`, dir);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`^dumped pid ${pid} \\(prog-\\w+\\), the whole process: .* -> stdout \\(.*\\) \\(process killed\\)$`, 'm'));
    assert.match(r.stderr, new RegExp(`^cr restore: prog-\\w+ restarted as pid ${r.stdout.trim()}, (a new pid|the pid it had when dumped)`, 'm'));
    const restored = adopt(Number(r.stdout.trim()));
    assert.is(verdict(restored, dir), 'PASS\n', 'restarted from stdin');
    // The file image and one from stdin read alike.
    const show = pipeline(`gzip -c < ${file} | gunzip -c | node "$CR" show -`, dir);
    assert.is(show.code, 0, show.stderr);
    assert.match(show.stdout, /^image stdin: format \d+/);
    assert.match(show.stdout, /^whole process: \d+ mappings/m);
    const diff = pipeline(`node "$CR" diff ${file} - < ${file}`, dir);
    assert.is(diff.code, 0, diff.stderr);
    assert.match(diff.stdout, new RegExp(`^same: ${file} and stdin describe the same fd table \\(6 fds`));
  }));

test('streams refused in one line: -o - to a terminal is checked by isatty; an empty stdin, a truncated image, diff - -', async () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-stream-')));
  try {
    let r = pipeline('node "$CR" show - < /dev/null', dir);
    assert.equal([r.code, r.stderr], [2, 'cr show: stdin was empty: no image came\n']);
    r = pipeline('node "$CR" diff - - < /dev/null', dir);
    assert.equal([r.code, r.stderr], [2, 'cr diff: A and B cannot both be - : stdin holds one image\n']);
    // A dump that fails sends nothing: its reader finds no image, not half of one.
    r = pipeline('node "$CR" dump --pid 999999999 -o - | node "$CR" restore -', dir);
    assert.match(r.stderr, /^cr dump: .*999999999.*\ncr restore: stdin was empty: no image came\n$/);
    // Cut short on the way: the checksum refuses it.
    const image = join(dir, 'image');
    const sleeper = spawn(['sleep', '100'], { fds: [] });
    try {
      assert.is((await cr(['dump', '--pid', String(sleeper), '-o', image])).code, 0);
    } finally {
      ensureReaped(sleeper);
    }
    r = pipeline(`head -c 20000 ${image} | node "$CR" restore - --detach`, dir);
    assert.is(r.code, 2);
    assert.match(r.stderr, /^cr restore: stdin: not a valid cr process image: .*\n$/);
    // A terminal, through script(1) (util-linux; where there is none, that part is not tried):
    // refused with exit 2 and one line before anything is done. script -e passes on the status.
    if (['/usr/bin/script', '/bin/script'].some((p) => existsSync(p))) {
      const tty = spawnSync('script', ['-qec', `node "${CR}" dump --pid 1 -o -`, '/dev/null'], { encoding: 'utf8', timeout: 30_000 });
      assert.is(tty.status, 2, `script: ${tty.error ?? tty.signal ?? ''} ${tty.stdout}`);
      assert.match(tty.stdout, /^cr dump: -o - writes the image to stdout, which is a terminal: [^\n]+\r?\n$/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
