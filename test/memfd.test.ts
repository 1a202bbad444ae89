// Memfds and deleted files the process also maps MAP_SHARED (test/fixtures/memfd-selfcheck.c):
// one file each, held as an fd and mapped, still shared after a restart (a write through a mapping
// is read through the fd and the other way round), the seals added after the mappings (a
// F_SEAL_FUTURE_WRITE memfd mapped writable before it was sealed, a F_SEAL_WRITE one mapped
// read-only), a memfd and a deleted file mapped with their fds closed (carried in the head); the
// fds alone in the other restore modes. As uid 65534 the closed ones cannot be read (map_files
// takes CAP_CHECKPOINT_RESTORE): refused in one line, the process running on.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, closeSync, copyFileSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { kill, SIGKILL, SIGUSR1 } from '../bridge/signal.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from '../bridge/spawn.js';
import { cr, crProcess, ROOT } from './helpers/cli.js';
import { waitFile } from './helpers/fdlayout.js';
import { ensureReaped, buildFixture } from './helpers/processes.js';
import { builtAndDumped, passesInEveryMode, verdict } from './helpers/selfcheck-modes.js';
import { asUser, NOBODY, unprivilegedTest } from './helpers/unprivileged.js';

const PROG = buildFixture('memfd-selfcheck');
const IMAGE_FDS = [10, 11, 12, 13];

test('memfds (sealed future-write and write, unsealable) and a deleted file mapped shared and held as fds: PASS before and after the dump and in every restore mode, the restart still sharing both ways', async () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-memfd-')));
  try {
    const image = join(dir, 'image');
    const table = await builtAndDumped(PROG, dir, image);
    assert.equal(IMAGE_FDS.map((fd) => table.descs.find((d) => d.id === table.fds.find((f) => f.fd === fd)!.desc)!.kind), ['memfd', 'memfd', 'deleted', 'memfd']);
    await passesInEveryMode(PROG, IMAGE_FDS, image, dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a memfd a parent and its child both hold and map shared: one memfd for both after a restart of the tree, a write by either seen by the other, sealed once', async () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-memfd-tree-')));
  const pids: number[] = [];
  try {
    const devnull = openSync('/dev/null', 'r+');
    const root = spawn(['python3', join(ROOT, 'test', 'fixtures', 'memfd-tree.py'), dir], { fds: [[devnull, 0], [devnull, 1], [devnull, 2]], setsid: true });
    closeSync(devnull);
    pids.push(root);
    pids.push(Number(waitFile(dir, 'pids').split(' ')[1]));
    const image = join(dir, 'image');
    const d = await cr(['dump', '--pid', String(root), '-o', image, '--kill']);
    assert.is(d.code, 0, d.stderr);
    const r = await cr(['restore', image, '--detach', '--new-pid']);
    assert.is(r.code, 0, r.stderr);
    const parent = Number(r.stdout.trim());
    pids.push(parent);
    const child = Number(readFileSync(`/proc/${parent}/task/${parent}/children`, 'utf8').trim());
    pids.push(child);
    assert.ok(parent > 0 && child > 0, `restored as ${r.stdout.trim()}, child ${child}`);
    kill(parent, SIGUSR1);
    kill(child, SIGUSR1);
    assert.is(waitFile(dir, 'parent'), 'PASS');
    assert.is(waitFile(dir, 'child'), 'PASS');
  } finally {
    for (const pid of pids.reverse()) {
      if (!(pid > 0)) continue;
      try {
        kill(pid, SIGKILL);
      } catch {
        // gone already
      }
      ensureReaped(pid);
    }
    rmSync(dir, { recursive: true, force: true });
  }
});

unprivilegedTest('as uid 65534, a memfd mapped with its fd closed is refused in one line naming map_files; the process runs on', async () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-memfd-nobody-')));
  let pid = -1;
  try {
    chmodSync(dir, 0o777);
    const prog = join(dir, 'prog');
    copyFileSync(PROG, prog);
    chmodSync(prog, 0o755);
    pid = spawn([...asUser(NOBODY), prog, 'build', dir], { fds: [] });
    waitFile(dir, 'ready');
    const d = crProcess(['dump', '--pid', String(pid), '-o', join(dir, 'image')], { uid: NOBODY });
    assert.is(d.code, 1, d.stderr);
    assert.match(d.stderr, /^cr dump: mapping [0-9a-f]+-[0-9a-f]+ .+ \(deleted\): mapped shared with no fd of it left, and cr cannot open it through \/proc\/\d+\/map_files\/\S+ \(EPERM: it takes CAP_CHECKPOINT_RESTORE\)\n$/);
    assert.is(verdict(pid, dir), 'PASS\n');
  } finally {
    if (pid > 0) ensureReaped(pid);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
