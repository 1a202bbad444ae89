// A dump interrupted by Ctrl-C (SIGINT) or SIGTERM: it is finished first (it holds the process
// frozen; cut short, it would leave it stopped), then undone: the image removed, the process
// running as before and not killed even with --kill, one line, exit 128 + the signal.
import { spawn as spawnAsync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from '../bridge/spawn.js';
import { CR } from './helpers/cli.js';
import { ensureReaped } from './helpers/processes.js';

const status = (pid: number): string => readFileSync(`/proc/${pid}/status`, 'latin1');
const tracer = (pid: number): number => Number(/^TracerPid:\s*(\d+)/m.exec(status(pid))?.[1]);
const state = (pid: number): string => /^State:\s*(\S)/m.exec(status(pid))?.[1] ?? '?';
const tick = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 1));

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`dump --kill interrupted by ${signal} while it holds the process: image removed, process runs on, one line`, async () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-interrupt-')));
    // 16 MiB of bytes that are not zero: a dump long enough to be caught in.
    const target = spawn(['/usr/bin/python3', '-S', '-c', 'import time\nx = b"\\x01" * (16 << 20)\nwhile True: time.sleep(1)'], { fds: [] });
    try {
      const image = join(dir, 'big.img');
      const cr = spawnAsync(process.execPath, [CR, 'dump', '--pid', String(target), '-o', image, '--kill'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      cr.stderr.on('data', (chunk) => (stderr += chunk));
      const ended = new Promise<number | null>((resolve) => cr.on('exit', (code) => resolve(code)));
      // Up to 10 s for the python to grow and cr to start; then wait until cr holds it.
      const deadline = Date.now() + 30_000;
      while (tracer(target) === 0) {
        assert.ok(Date.now() < deadline, 'cr never traced the target');
        await tick();
      }
      cr.kill(signal);
      const code = await ended;
      assert.is(code, signal === 'SIGINT' ? 130 : 143, stderr);
      assert.is(stderr, `cr dump: interrupted by ${signal}: ${image} was removed; pid ${target} runs on, not killed\n`);
      assert.not.ok(existsSync(image));
      assert.equal(readdirSync(dir), [], 'nothing left beside it');
      assert.is(tracer(target), 0);
      assert.ok(['S', 'R'].includes(state(target)), `state ${state(target)}`);
    } finally {
      ensureReaped(target);
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test.run();
