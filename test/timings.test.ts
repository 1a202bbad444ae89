// dump --timings: every phase in order, and how long the process was frozen (its downtime): a
// dump lets the process go before the image's fsync and rename (with --kill the CLI holds it
// stopped until the image is whole, then kills it).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { crProcess } from './helpers/cli.js';
import { withProcess, waitInSyscall } from './helpers/processes.js';

const SYS_clock_nanosleep = 230;
const TIMINGS = /^timings: ((?:\w+ [\d.]+, )*\w+ [\d.]+), total ([\d.]+) ms; frozen ([\d.]+) ms$/m;

test('dump --timings: the phases, the frozen time; thawed before the image is written', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cr-timings-'));
  try {
    await withProcess(['sleep', '100'], { fds: [] }, async (pid) => {
      waitInSyscall(pid, SYS_clock_nanosleep);
      for (const kill of [false, true]) {
        const r = crProcess(['dump', '--pid', String(pid), '-o', join(dir, `${kill}.img`), '--timings', ...(kill ? ['--kill'] : [])]);
        assert.is(r.code, 0, r.stderr);
        const m = TIMINGS.exec(r.stderr);
        assert.ok(m, r.stderr);
        const phases = m![1]!.split(', ').map((p) => p.split(' ')[0]);
        assert.equal(phases.slice(0, 3), ['freeze', 'state', 'pages']);
        assert.equal(phases.slice(3), ['thaw', 'write'], r.stderr);
        const frozen = Number(m![3]);
        assert.ok(frozen > 0 && frozen <= Number(m![2]) + 1, `frozen ${frozen} ms of ${m![2]} ms in all`);
      }
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
