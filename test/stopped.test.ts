// A process job-control stopped when dumped (kill -STOP, Ctrl-Z) stays stopped through the dump,
// and its restart comes back stopped, before one instruction of its own, unless --resume.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { kill, SIGCONT, SIGSTOP } from '../bridge/signal.js';
import { crProcess } from './helpers/cli.js';
import { sleep } from './helpers/fdlayout.js';
import { ensureReaped, withProcess } from './helpers/processes.js';

/** The state letter of /proc/PID/status (R, S, T, ...), once it is `want` or 5 s passed. */
function stateOf(pid: number, want: string): string {
  let state = '';
  for (let i = 0; i < 500; i++) {
    state = /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))?.[1] ?? '?';
    if (state === want) break;
    sleep(10);
  }
  return state;
}

test('a stopped process stays stopped through its dump, and restarts stopped unless --resume', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cr-stopped-'));
  const restarted: number[] = [];
  try {
    await withProcess(['sleep', '1000'], { fds: [] }, async (pid) => {
      kill(pid, SIGSTOP);
      assert.is(stateOf(pid, 'T'), 'T');
      const image = join(dir, 'sleep.img');
      const d = crProcess(['dump', '--pid', String(pid), '-o', image]);
      assert.is(d.code, 0, d.stderr);
      assert.is(stateOf(pid, 'T'), 'T', 'the original is still stopped after its dump');
      for (const resume of [false, true]) {
        const r = crProcess(['restore', image, '--detach', ...(resume ? ['--resume'] : [])]);
        assert.is(r.code, 0, r.stderr);
        const copy = Number(r.stdout.trim());
        restarted.push(copy);
        if (resume) {
          assert.is(stateOf(copy, 'S'), 'S', 'with --resume the copy runs (sleeps)');
          assert.not.match(r.stderr, /is stopped again/);
        } else {
          assert.is(stateOf(copy, 'T'), 'T', 'the copy comes back stopped');
          assert.match(r.stderr, new RegExp(`kill -CONT ${copy} lets it run`));
          kill(copy, SIGCONT);
          assert.is(stateOf(copy, 'S'), 'S', 'SIGCONT lets the copy run on (back in its sleep)');
        }
      }
    });
  } finally {
    for (const pid of restarted) ensureReaped(pid);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
