// test/fixtures/fdlayout.py from the outside: starting a scenario, waiting for the files it
// writes, having it read its pipes back, and what that read-back must give for a table.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { kill, SIGUSR1 } from '../../bridge/signal.js';
import { reap, spawn } from '../../bridge/spawn.js';
import type { FdTable } from '../../src/model/fdtable.js';
import { ROOT } from './cli.js';

const FIXTURE = join(ROOT, 'test', 'fixtures', 'fdlayout.py');
// The real interpreter: a pyenv shim would add a bash and half a second to every fixture.
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

const sleeper = new Int32Array(new SharedArrayBuffer(4));
export const sleep = (ms: number): void => void Atomics.wait(sleeper, 0, 0, ms);

/** Start fdlayout.py building `scenario` in dir, with no fds of ours; the caller reaps it. */
export const spawnFixture = (scenario: string, dir: string): number => spawn([PYTHON, '-S', FIXTURE, scenario, dir], { fds: [] });

/**
 * Wait for dir/name, written by a fixture or reader, and return it; fail early if it wrote dir/error.
 * A readiness wait: 30 s by default, for fixtures that start slowly at load 50 (one allocating 192 MB
 * missed 10 s in a helper's run).
 */
export function waitFile(dir: string, name: string, timeoutMs = 30_000): string {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(join(dir, name))) {
    if (existsSync(join(dir, 'error'))) assert.unreachable(`process in ${dir} failed:\n${readFileSync(join(dir, 'error'), 'utf8')}`);
    if (Date.now() > deadline) assert.unreachable(`nothing wrote ${dir}/${name} within ${timeoutMs} ms`);
    sleep(2);
  }
  return readFileSync(join(dir, name), 'utf8');
}

/** What reading each pipe gave: pK is the image's pipe K; one entry in `reads` per read(2). */
export interface ReadBack {
  [pipe: string]: { data: string; reads: number[] };
}

/** Have the fixture read its own pipes back and exit; returns what it read, after it exited cleanly. */
export function fixtureReadBack(pid: number, dir: string): ReadBack {
  kill(pid, SIGUSR1);
  const text = waitFile(dir, 'result.json');
  const end = reap(pid, 10_000);
  assert.is(end.kind, 'exited');
  assert.is(end.code, 0);
  return JSON.parse(text) as ReadBack;
}

/** What reading each named pipe must give: its bytes, one read per packet. */
export function expectedReadBack(table: FdTable, names: string[]): ReadBack {
  const out: ReadBack = {};
  for (const name of names) {
    const pipe = table.pipes[Number(name.slice(1))]!;
    const length = pipe.data.length;
    out[name] = { data: pipe.data.toString('base64'), reads: pipe.packets ?? (length > 0 ? [length] : []) };
  }
  return out;
}

/** After cr let go of it, the process runs on: untraced, neither stopped nor dead. */
export function assertRunning(pid: number): void {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  assert.is(/^TracerPid:\s*(\d+)/m.exec(status)?.[1], '0');
  assert.not.match(/^State:\s*(\S)/m.exec(status)![1]!, /[TtZ]/);
}
