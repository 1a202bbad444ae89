// restore -- CMD as users write it: CMD a shell script that execs the real program (the image's
// close-on-exec fds would be lost at that exec: warned), and a CMD that fails (said on cr's
// stderr, naming where its own stderr went, as that is the image's fd 2, not cr's).
import { chmodSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cr } from './helpers/cli.js';

const O_WRONLY = 0o1;
const O_RDONLY = 0;
const O_LARGEFILE = 0o100000;

test('restore -- SCRIPT that execs: close-on-exec fds warned about; a failing CMD said on cr\'s stderr with where its stderr went', async () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-restore-cmd-')));
  try {
    const log = join(dir, 'err.log');
    writeFileSync(log, '');
    const table = join(dir, 'table.json');
    writeFileSync(table, JSON.stringify({
      processes: [{
        pid: 1,
        fds: [{ fd: 2, desc: 0, cloexec: false }, { fd: 5, desc: 1, cloexec: true }, { fd: 7, desc: 1, cloexec: true }],
        rlimit: { soft: 1024, hard: 1024 },
      }],
      descs: [
        { id: 0, kind: 'file', path: log, flags: O_WRONLY | O_LARGEFILE, offset: 0 },
        { id: 1, kind: 'chr', path: '/dev/null', flags: O_RDONLY | O_LARGEFILE },
      ],
      pipes: [],
    }));
    // The script runs with fds 5 and 7; the program it execs (ls of its own fds) has only 2.
    const script = join(dir, 'run.sh');
    writeFileSync(script, '#!/bin/sh\nexec ls /proc/self/fd/5\n');
    chmodSync(script, 0o755);
    const r = await cr(['restore', table, '--', script]);
    assert.match(r.stderr, new RegExp(`^cr restore: warning: ${script} is a script: the image's close-on-exec fds 5, 7 will be closed in any program it execs\\n`));
    assert.is(r.code, 2, 'ls of the closed fd 5 fails, as warned');
    assert.match(r.stderr, new RegExp(`\\ncr restore: ${script} \\(pid \\d+\\) exited with status 2; its stderr \\(fd 2\\) is ${log}\\n$`));
    assert.match(readFileSync(log, 'utf8'), /\/proc\/self\/fd\/5.*No such file/);
    // A program that is not a wrapper: no warning, and success says nothing.
    const ok = await cr(['restore', table, '--', 'true']);
    assert.equal([ok.code, ok.stderr], [0, '']);
    const env = await cr(['restore', table, '--', 'env', 'true']);
    assert.equal(env.code, 0);
    assert.match(env.stderr, /^cr restore: warning: env is a program that runs another by exec: the image's close-on-exec fds 5, 7 will be closed/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
