// A pty pair inside the image (src/kinds/pty.ts), end to end: a C program
// (test/fixtures/pty-selfcheck.c) holds a master, its dup and two slave descriptions, with raw
// termios, a window size and packet mode; it checks them itself (the slaves are the master's peer,
// termios, window, flags, close-on-exec, kcmp, both ends talk) before and after a whole-process
// dump, and in every restore mode: `-- CMD`, `--into` a target whose own fds collide (with and
// without --exact), and restart. A dump refuses a pty with bytes queued; plans pass the simulator.
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from '../bridge/spawn.js';
import { type FdTable } from '../src/model/fdtable.js';
import { planRestore } from '../src/plan/planner.js';
import { verify } from '../src/sim/verify.js';
import { cr, ROOT } from './helpers/cli.js';
import { waitFile } from './helpers/fdlayout.js';
import { buildC, ensureReaped } from './helpers/processes.js';
import { builtAndDumped, cell, MODES } from './helpers/selfcheck-modes.js';

const PROG = buildC(readFileSync(join(ROOT, 'test', 'fixtures', 'pty-selfcheck.c'), 'utf8'));
const IMAGE_FDS = [5, 6, 7, 8];

const tempDir = (what: string): string => realpathSync(mkdtempSync(join(tmpdir(), `cr-pty-${what}-`)));

test('a pty pair the process made: PASS before and after the dump and in every restore mode', async () => {
  const dir = tempDir('modes');
  try {
    const image = join(dir, 'image');
    const table = await builtAndDumped(PROG, dir, image);
    const kinds = IMAGE_FDS.map((fd) => table.descs.find((d) => d.id === table.fds.find((f) => f.fd === fd)!.desc)!);
    assert.equal(kinds.map((d) => d.kind), ['ptmx', 'pts', 'ptmx', 'pts']);
    const master = kinds[0]!;
    assert.ok(master.kind === 'ptmx' && master.packet && !master.locked, 'packet mode on, unlocked');
    assert.ok(kinds[1]!.kind === 'pts' && kinds[1]!.master === master.id);
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

test('a pty with bytes queued is refused at dump, naming them; the process runs on untouched', async () => {
  const dir = tempDir('queued');
  try {
    const pid = spawn(['python3', '-c', [
      'import os, pty, sys, time',
      'm, s = pty.openpty()',
      'os.write(s, b"unread output")',
      `open(${JSON.stringify(join(dir, 'ready'))}, "w").close()`,
      'time.sleep(120)',
    ].join('\n')], { fds: [] });
    try {
      waitFile(dir, 'ready');
      const d = await cr(['dump', '--pid', String(pid), '-o', join(dir, 'image')]);
      assert.is(d.code !== 0, true, d.stdout);
      assert.match(d.stderr, /bytes written on the slave side are not read from the master yet/);
      assert.is(d.stderr.trim().split('\n').length, 1, d.stderr);
    } finally {
      ensureReaped(pid);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('plans of a pty pair pass the simulator: fresh, and into a target whose fds collide', () => {
  const termios = '00'.repeat(44);
  const winsize = '2500650000000000';
  const table: FdTable = {
    fds: [
      { fd: 0, desc: 1, cloexec: false },
      { fd: 3, desc: 0, cloexec: true },
      { fd: 4, desc: 2, cloexec: false },
      { fd: 9, desc: 1, cloexec: false },
    ],
    descs: [
      { id: 0, kind: 'ptmx', flags: 0o100002, index: 3, termios, winsize, locked: true, packet: false },
      { id: 1, kind: 'pts', flags: 0o100002, master: 0, index: 3 },
      { id: 2, kind: 'pts', flags: 0o104002, master: 0, index: 3 },
    ],
    pipes: [],
    rlimit: { soft: 1024, hard: 1024 },
  };
  for (const mode of ['fresh', 'into', 'into-exact'] as const) {
    const target = { fds: [0, 1, 2, 3, 9], rlimit: { soft: 1024, hard: 1024 }, mode };
    const plan = planRestore(table, target);
    assert.equal(verify(table, target, plan), { ok: true }, mode);
    const ptyOps = plan.ops.filter((o) => o.op === 'pty');
    assert.is(ptyOps.length, 2, mode);
    assert.ok(plan.ops.indexOf(ptyOps[0]!) < plan.commit, `${mode}: the pty is made before the commit`);
  }
});

test.run();
