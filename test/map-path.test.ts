// restore --map-path OLD=NEW: a log directory rotated away and a FIFO moved after the dump; the
// restored self-checking process (test/fixtures/fd-selfcheck.c, told the new paths) finds the
// same file at the same offset and the FIFO with its bytes, and says PASS. A map that matches
// nothing is refused; a file cut shorter than its recorded offset is warned about.
import { mkdirSync, mkdtempSync, realpathSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
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

const layout = (logs: string, fifo: string): Layout => ({
  name: 'moved',
  rlimit: { soft: 64, hard: 64 },
  pipes: [{ id: 0, fifo, data: Buffer.from('in the fifo\n') }],
  descs: [
    { id: 0, kind: 'file', path: join(logs, 'app.log'), access: 'w', flags: 0o2000, offset: 11 },
    { id: 1, kind: 'fifoend', pipe: 0, access: 'rw', flags: 0 },
  ],
  fds: [
    { fd: 3, desc: 0, cloexec: false },
    { fd: 5, desc: 1, cloexec: false },
  ],
});

function verdict(pid: number, dir: string): string {
  rmSync(join(dir, 'result'), { force: true });
  kill(pid, SIGUSR1);
  return waitFile(dir, 'result');
}

test('--map-path: a rotated log directory and a moved FIFO are opened at their new paths; the restored process PASSes', async () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-map-path-')));
  const pids: number[] = [];
  try {
    const logs = join(dir, 'logs');
    mkdirSync(logs);
    writeFileSync(join(logs, 'app.log'), 'eleven byte');
    const spec = join(dir, 'spec');
    writeFileSync(spec, layoutSpec(layout(logs, join(dir, 'fifo'))));
    const pid = spawn([PROG, 'build', spec, dir], { fds: [] });
    pids.push(pid);
    waitFile(dir, 'ready');
    assert.is(verdict(pid, dir), 'PASS\n', 'as built');
    const image = join(dir, 'image');
    const d = await cr(['dump', '--fds-only', '--pid', String(pid), '-o', image, '--kill']);
    assert.is(d.code, 0, d.stderr);
    ensureReaped(pid);
    // Moved after the dump: the directory (the file keeps its inode) and the FIFO.
    const rotated = join(dir, 'rotated');
    renameSync(logs, rotated);
    renameSync(join(dir, 'fifo'), join(dir, 'moved-fifo'));
    const there = join(dir, 'there');
    mkdirSync(there);
    const spec2 = join(dir, 'spec2');
    writeFileSync(spec2, layoutSpec(layout(rotated, join(dir, 'moved-fifo'))));

    const gone = await cr(['restore', image, '--detach', '--', PROG, 'check', spec2, there]);
    assert.is(gone.code, 1, 'without the map the old path is not there');
    const unused = await cr(['restore', image, '--map-path', `${logs}=${rotated}`, '--map-path', '/nowhere=/x', '--detach', '--', PROG, 'check', spec2, there]);
    assert.equal([unused.code, unused.stderr], [2, 'cr restore: --map-path: the image opens no path at or under /nowhere\n']);
    const relative = await cr(['restore', image, '--map-path', 'logs=/x', '--', 'true']);
    assert.equal([relative.code, relative.stderr], [2, 'cr restore: --map-path: OLD "logs" is not an absolute path\n']);

    const r = await cr(['restore', image, '--map-path', `${logs}/=${rotated}`, '--map-path', `${join(dir, 'fifo')}=${join(dir, 'moved-fifo')}`, '--detach', '--', PROG, 'check', spec2, there]);
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stderr, '');
    const restored = Number(r.stdout.trim());
    pids.push(restored);
    waitFile(there, 'ready');
    assert.is(verdict(restored, there), 'PASS\n', 'the file at its offset and the FIFO with its bytes, at their new paths');
    ensureReaped(restored);

    // Rotated and cut short: restored, with a warning naming the fd, the size and the offset.
    truncateSync(join(rotated, 'app.log'), 4);
    const short = await cr(['restore', image, '--map-path', `${logs}=${rotated}`, '--map-path', `${join(dir, 'fifo')}=${join(dir, 'moved-fifo')}`, '--detach', '--', 'sleep', '100']);
    assert.is(short.code, 0, short.stderr);
    pids.push(Number(short.stdout.trim()));
    assert.match(short.stderr, new RegExp(`^cr restore: warning: fd 3: ${rotated}/app\\.log is now 4 bytes, shorter than the offset 11 recorded; `));
  } finally {
    for (const p of pids) ensureReaped(p);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
