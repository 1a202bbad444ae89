// Memfds and deleted files the process also maps MAP_SHARED (test/fixtures/memfd-selfcheck.c):
// one file each, held as an fd and mapped, still shared after a restart (a write through a mapping
// is read through the fd and the other way round), the seals added after the mappings (a
// F_SEAL_FUTURE_WRITE memfd mapped writable before it was sealed, a F_SEAL_WRITE one mapped
// read-only); the fds alone in the other restore modes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './helpers/cli.js';
import { buildC } from './helpers/processes.js';
import { builtAndDumped, cell, MODES } from './helpers/selfcheck-modes.js';

const PROG = buildC(readFileSync(join(ROOT, 'test', 'fixtures', 'memfd-selfcheck.c'), 'utf8'));
const IMAGE_FDS = [10, 11, 12, 13];

test('memfds (sealed future-write and write, unsealable) and a deleted file mapped shared and held as fds: PASS before and after the dump and in every restore mode, the restart still sharing both ways', async () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-memfd-')));
  try {
    const image = join(dir, 'image');
    const table = await builtAndDumped(PROG, dir, image);
    assert.equal(IMAGE_FDS.map((fd) => table.descs.find((d) => d.id === table.fds.find((f) => f.fd === fd)!.desc)!.kind), ['memfd', 'memfd', 'deleted', 'memfd']);
    const failed: string[] = [];
    for (const mode of MODES) {
      const v = await cell(PROG, IMAGE_FDS, image, dir, mode);
      if (v !== 'PASS\n') failed.push(`${mode}: ${v.trim().replace(/\n/g, '; ')}`);
    }
    assert.equal(failed, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
