// Which pages a dump saves (src/checkpoint/pages.ts): found with the PAGEMAP_SCAN ioctl where the
// kernel has it, else from each page's pagemap entry; both must give the same pages.
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readMappings } from '../src/checkpoint/maps.js';
import { MappedPages } from '../src/checkpoint/pages.js';
import { withProcess, waitInSyscall } from './helpers/processes.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const SYS_read = 0;

test('PAGEMAP_SCAN and the pagemap entries read one by one find the same pages of every mapping', async () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-pages-')));
  const devnull = openSync('/dev/null', 'r+');
  let ours = -1;
  try {
    const cmd = join(dir, 'cmd');
    execFileSync('mkfifo', [cmd]);
    // Held open by the test: the program's open of it never waits, and it blocks in its read.
    ours = openSync(cmd, 'r+');
    const ready = join(dir, 'ready');
    // 4 MiB of anonymous memory, every page read and every fourth written, beside python's own
    // heap and the pages of its libraries copied on write.
    const argv = [PYTHON, join(ROOT, 'test', 'fixtures', 'process-zeropages.py'), '4', ready, cmd, join(dir, 'out')];
    await withProcess(argv, { fds: [[devnull, 0], [devnull, 1], [devnull, 2]] }, (pid) => {
      waitInSyscall(pid, SYS_read, 30_000);
      assert.is(readFileSync(ready, 'utf8'), 'ready');
      const { mappings, policies } = readMappings(pid);
      const pagemap = openSync(`/proc/${pid}/pagemap`, 'r');
      try {
        const span = { start: mappings[0]!.start, end: mappings[mappings.length - 1]!.end };
        const scanning = new MappedPages(pagemap, pid, span);
        const reading = new MappedPages(pagemap, pid, span, false);
        let compared = 0;
        mappings.forEach((m, i) => {
          if (policies[i] !== 'changed' && policies[i] !== 'resident') return;
          const scanned = scanning.of(m);
          const read = reading.of(m);
          assert.equal(scanned, read, `mapping ${m.start.toString(16)}-${m.end.toString(16)} ${m.name}`);
          compared += read.reduce((n, r) => n + (r.end - r.start), 0);
        });
        assert.ok(compared >= 4 << 20, `${compared} bytes of pages compared`);
      } finally {
        closeSync(pagemap);
      }
    });
  } finally {
    if (ours >= 0) closeSync(ours);
    closeSync(devnull);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
