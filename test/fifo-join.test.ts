// A FIFO that still holds exactly the image's bytes (its other holder, the dumped process, runs
// on) is joined by the restore, as the dumped process shares it: the bytes are not written a second
// time. Holding other bytes, it is refused with what was found. The processes are the
// self-checking test/fixtures/fd-selfcheck.c: each checks that the FIFO holds exactly its bytes.
import { closeSync, constants, mkdirSync, mkdtempSync, openSync, realpathSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { kill, SIGUSR1 } from '../bridge/signal.js';
import { spawn } from '../bridge/spawn.js';
import { cr } from './helpers/cli.js';
import { waitFile } from './helpers/fdlayout.js';
import { ensureReaped } from './helpers/processes.js';
import { layoutSpec, selfcheckProgram, type Layout } from './helpers/selfcheck.js';

const PROG = selfcheckProgram();

const layout = (fifo: string): Layout => ({
  name: 'fifo-join',
  rlimit: { soft: 64, hard: 64 },
  pipes: [{ id: 0, fifo, data: Buffer.from('in the fifo\n') }],
  descs: [{ id: 0, kind: 'fifoend', pipe: 0, access: 'rw', flags: 0 }],
  fds: [{ fd: 5, desc: 0, cloexec: false }],
});

function verdict(pid: number, dir: string): string {
  rmSync(join(dir, 'result'), { force: true });
  kill(pid, SIGUSR1);
  return waitFile(dir, 'result');
}

test('a FIFO holding exactly the image\'s bytes is joined, not written twice; holding more, refused saying so', async () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-fifo-join-')));
  const pids: number[] = [];
  try {
    const fifo = join(dir, 'fifo');
    const spec = join(dir, 'spec');
    writeFileSync(spec, layoutSpec(layout(fifo)));
    const original = spawn([PROG, 'build', spec, dir], { fds: [] });
    pids.push(original);
    waitFile(dir, 'ready');
    const image = join(dir, 'image');
    assert.is((await cr(['dump', '--fds-only', '--pid', String(original), '-o', image])).code, 0);
    const there = join(dir, 'there');
    mkdirSync(there);
    const r = await cr(['restore', image, '--detach', '--', PROG, 'check', spec, there]);
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stderr, '');
    const joined = Number(r.stdout.trim());
    pids.push(joined);
    waitFile(there, 'ready');
    assert.is(verdict(joined, there), 'PASS\n', 'the restored process sees the FIFO with its bytes, once');
    assert.is(verdict(original, dir), 'PASS\n', 'and so does the original');
    // One byte more from elsewhere: not the image's bytes any more.
    const w = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    writeSync(w, 'x');
    closeSync(w);
    const refused = await cr(['restore', image, '--detach', '--', PROG, 'check', spec, there]);
    assert.is(refused.code, 1);
    assert.match(refused.stderr, /the FIFO already holds 13 bytes, not the image's 12: the image's 12 and 1 more; another process has it open/);
  } finally {
    for (const p of pids) ensureReaped(p);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
