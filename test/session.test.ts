// restore --setsid: the new process (a -- CMD, or a restarted one) leads a session of its own, so
// a signal to cr's process group (a Ctrl-C where cr was started) does not reach it; without it
// the process is in cr's session.
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from '../bridge/spawn.js';
import { cr } from './helpers/cli.js';
import { ensureReaped } from './helpers/processes.js';

/** The session and process group of pid (/proc/PID/stat fields 5 and 6). */
function sessionOf(pid: number): { pgrp: number; sid: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { pgrp: Number(fields[2]), sid: Number(fields[3]) };
}

test('restore --detach --setsid: -- CMD and a restarted process lead sessions of their own; without it, cr\'s', async () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-session-')));
  const pids: number[] = [];
  try {
    const ours = sessionOf(process.pid);
    const sleeper = spawn(['sleep', '100'], { fds: [] });
    pids.push(sleeper);
    const fds = join(dir, 'fds.img');
    assert.is((await cr(['dump', '--fds-only', '--pid', String(sleeper), '-o', fds])).code, 0);
    const plain = await cr(['restore', fds, '--detach', '--', 'sleep', '100']);
    assert.is(plain.code, 0, plain.stderr);
    const a = pids[pids.push(Number(plain.stdout.trim())) - 1]!;
    assert.equal(sessionOf(a), ours, 'in cr\'s session and group');
    const own = await cr(['restore', fds, '--detach', '--setsid', '--', 'sleep', '100']);
    assert.is(own.code, 0, own.stderr);
    const b = pids[pids.push(Number(own.stdout.trim())) - 1]!;
    assert.equal(sessionOf(b), { pgrp: b, sid: b }, '-- CMD leads its own session');
    const whole = join(dir, 'whole.img');
    assert.is((await cr(['dump', '--pid', String(sleeper), '-o', whole, '--kill'])).code, 0);
    const restarted = await cr(['restore', whole, '--detach', '--setsid']);
    assert.is(restarted.code, 0, restarted.stderr);
    const c = pids[pids.push(Number(restarted.stdout.trim())) - 1]!;
    assert.equal(sessionOf(c), { pgrp: c, sid: c }, 'the restarted process leads its own session');
    const into = await cr(['restore', fds, '--into', String(c), '--setsid']);
    assert.equal([into.code, into.stderr], [2, 'cr restore: --setsid is for a new process, not --into\n']);
  } finally {
    for (const p of pids) ensureReaped(p);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
