// The progress line: a dump or restart that moves over 100 MB of memory shows one on a terminal
// (cr run under script(1), whose pty is its stderr), and never with --quiet or on a pipe.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CR, crProcess } from './helpers/cli.js';
import { ensureReaped, withProcess } from './helpers/processes.js';
import { waitFile } from './helpers/fdlayout.js';

const SCRIPT = '/usr/bin/script';
const quote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** cr ARGS on a pseudo-terminal: everything it wrote there (stdout and stderr), and its exit status. */
function crOnTerminal(args: string[]): { code: number; out: string } {
  const r = spawnSync(SCRIPT, ['-qfec', [process.execPath, CR, ...args].map(quote).join(' '), '/dev/null'], { encoding: 'utf8' });
  return { code: r.status ?? -1, out: r.stdout };
}

const LINE = /(dumping|restoring): \d+ of \d+ MiB of memory \(\d+%\)/;

test('a dump and a restart of 120 MB show a progress line on a terminal, not on a pipe, not with --quiet', async () => {
  if (!existsSync(SCRIPT)) {
    console.log(`  skipped: ${SCRIPT} (util-linux) is not installed, and the test needs its pseudo-terminal`);
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'cr-progress-'));
  const restarted: number[] = [];
  try {
    const holder = join(dir, 'holder.py');
    execFileSync('sh', ['-c', `cat > ${quote(holder)}`], {
      input: "import sys, time\nb = bytearray(b'\\x5a') * (120 << 20)\nopen(sys.argv[1], 'w').write('ready')\nwhile True: time.sleep(1)\n",
    });
    await withProcess(['python3', holder, join(dir, 'ready')], { fds: [] }, async (pid) => {
      waitFile(dir, 'ready', 30_000);
      const piped = crProcess(['dump', '--pid', String(pid), '-o', join(dir, 'piped.img')]);
      assert.is(piped.code, 0, piped.stderr);
      assert.not.match(piped.stderr, LINE, 'no progress on a pipe');
      const shown = crOnTerminal(['dump', '--pid', String(pid), '-o', join(dir, 'shown.img')]);
      assert.is(shown.code, 0, shown.out);
      assert.match(shown.out, /dumping: \d+ of \d+ MiB/, 'a dump on a terminal shows its progress');
      assert.match(shown.out, /\r\x1b\[K\S*dumped pid/, 'the line is cleared before the summary');
    });
    for (const quietly of [true, false]) {
      const r = crOnTerminal(['restore', join(dir, 'shown.img'), '--detach', ...(quietly ? ['--quiet'] : [])]);
      const pid = /^(\d+)\s*$/m.exec(r.out)?.[1];
      if (pid) restarted.push(Number(pid));
      assert.is(r.code, 0, r.out);
      if (quietly) assert.not.match(r.out, LINE, 'no progress with --quiet');
      else assert.match(r.out, /restoring: \d+ of \d+ MiB/, 'a restart on a terminal shows its progress');
    }
  } finally {
    for (const pid of restarted) ensureReaped(pid);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
