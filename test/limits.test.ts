// Limits (a bounded run of bench/limits.bench.ts): a process with 19,000 fds open (the hard
// RLIMIT_NOFILE here is 20,000), one with 200 pipes of 1 MiB capacity holding bytes, one with an
// fd at 19,999. Each is dumped whole, its image shown and planned, the process reads back exactly
// the bytes it queued, and the image is restored into a new process whose dump equals it.
import { onlyProcess } from '../src/model/fdtable.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { main } from '../src/cli.js';
import { compareTables } from '../src/diff/compare.js';
import { dumpFdTable } from '../src/dump/fd-dump.js';
import { readImage } from '../src/image/format.js';
import { fdSnapshot, runState } from '../src/imagefuzz/live-target.js';
import { ensureReaped, waitInSyscall } from './helpers/processes.js';
import { readBack, startHolder, type HolderSpec } from './fixtures/hardening-holder.js';

const MiB = 1 << 20;
const CLOCK_NANOSLEEP = 230; // x86_64
const dir = mkdtempSync(join(tmpdir(), 'cr-limits-'));

/** The CLI in this process; returns the exit code and what went to stdout (unless quiet) and stderr. */
async function cr(args: string[], quiet = true): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => void (quiet || out.push(a.join(' ')));
  console.error = (...a: unknown[]) => void err.push(a.join(' '));
  try {
    return { code: await main(args), stdout: out.join('\n'), stderr: err.join('\n') };
  } finally {
    console.log = log;
    console.error = error;
  }
}

async function dumpAtLimit(spec: HolderSpec, check: (image: string) => void): Promise<void> {
  const h = startHolder(spec, dir);
  try {
    const before = fdSnapshot(h.pid);
    const image = join(dir, `limit-${h.pid}.img`);
    const r = await cr(['dump', '--fds-only', '--pid', String(h.pid), '-o', image]);
    assert.is(r.code, 0, r.stderr);
    assert.is(runState(h.pid), '');
    assert.is(fdSnapshot(h.pid), before);
    check(image);
    // The JSON forms read the whole image (`show` without --json folds the dups into ranges).
    for (const command of [['show', image, '--json'], ['plan', image, '--json']]) {
      const s = await cr(command);
      assert.is(s.code, 0, `${command[0]}: ${s.stderr}`);
    }
    await restoredEquals(image);
    assert.is(readBack(h), '');
  } finally {
    ensureReaped(h.pid);
  }
}

/** Restore the image into a new process (sleep, detached) and check that its dump is the image. */
async function restoredEquals(image: string): Promise<void> {
  const r = await cr(['restore', image, '--detach', '--', '/bin/sleep', '1000'], false);
  assert.is(r.code, 0, r.stderr);
  const pid = Number(r.stdout.trim());
  try {
    // sleep opens locale files of its own on the way to its sleep: dump it once it sleeps.
    waitInSyscall(pid, CLOCK_NANOSLEEP);
    const { image: again } = dumpFdTable(pid, { skipUnsupported: false, leaveStopped: false });
    assert.equal(compareTables(onlyProcess(readImage(image).table), onlyProcess(again.table)), []);
  } finally {
    ensureReaped(pid);
  }
}

test('19,000 fds open: dumped whole, every fd in the image', async () => {
  await dumpAtLimit({ pipes: 1, capacity: 65536, bytes: 100, dups: 18_997, high: 0 }, (image) => {
    const t = onlyProcess(readImage(image).table);
    assert.is(t.fds.length, 19_000);
    assert.equal(t.fds.map((f) => f.fd), Array.from({ length: 19_000 }, (_, i) => i));
    assert.is(t.descs.length, 3); // stdout, the pipe's two ends (dups share the read end)
    assert.equal(t.rlimit, { soft: 20_000, hard: 20_000 });
  });
});

test('200 pipes of 1 MiB capacity, 128 KiB queued in each: every byte in the image', async () => {
  const bytes = 128 * 1024;
  await dumpAtLimit({ pipes: 200, capacity: MiB, bytes, dups: 0, high: 0 }, (image) => {
    const t = onlyProcess(readImage(image).table);
    assert.is(t.pipes.length, 200);
    for (const p of t.pipes) {
      assert.is(p.capacity, MiB);
      assert.is(p.data.length, bytes);
    }
  });
});

test('an fd at 19,999, one below the hard limit', async () => {
  await dumpAtLimit({ pipes: 1, capacity: 65536, bytes: 100, dups: 0, high: 19_999 }, (image) => {
    const t = onlyProcess(readImage(image).table);
    assert.is(t.fds[t.fds.length - 1]!.fd, 19_999);
    assert.is(t.rlimit.soft, 20_000);
  });
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
