// show --json --all prints the whole image (the process head in words and hex, and the fd table,
// schema in docs/image-format.md), and diff compares the heads of two whole-process images: a
// sleep, the same sleep with SIGUSR1 ignored and another argv, and the sleep restarted.
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from '../bridge/spawn.js';
import { cr } from './helpers/cli.js';
import { ensureReaped, waitInSyscall } from './helpers/processes.js';

const SYS_clock_nanosleep = 230;

test('show --json --all: the process head and the table; diff names argv, signal actions; a restart keeps what it restores', async () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-show-all-')));
  const pids: number[] = [];
  try {
    const a = spawn(['sleep', '100'], { fds: [], cwd: dir });
    // Ignored dispositions survive exec: this sleep ignores SIGUSR1.
    const b = spawn(['sh', '-c', 'trap "" USR1; exec sleep 200'], { fds: [], cwd: dir });
    pids.push(a, b);
    const imgA = join(dir, 'a.img');
    const imgB = join(dir, 'b.img');
    for (const [pid, img] of [[a, imgA], [b, imgB]] as const) {
      // Dumped asleep: during its start-up sleep has files open for a moment (the locale's, as
      // fd 0, the lowest free), and sh needs a moment to exec sleep.
      waitInSyscall(pid, SYS_clock_nanosleep);
      for (let i = 0; i < 200; i++) {
        const d = await cr(['dump', '--pid', String(pid), '-o', img, '--force']);
        if (d.code === 0 && d.stdout.includes('(sleep)')) break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
    const shown = await cr(['show', imgA, '--json', '--all']);
    assert.is(shown.code, 0, shown.stderr);
    const whole = JSON.parse(shown.stdout);
    assert.is(whole.kind, 'process');
    assert.equal(whole.process.argv, ['sleep', '100']);
    assert.is(whole.process.pid, a);
    assert.is(whole.process.cwd, dir);
    assert.match(whole.process.exe, /sleep$/);
    assert.ok(whole.process.mappings.some((m: { name: string; prot: string }) => m.name === '[stack]' && m.prot === 'rw-'));
    assert.equal(Object.keys(whole.process.rlimits).slice(0, 8), ['CPU', 'FSIZE', 'DATA', 'STACK', 'CORE', 'RSS', 'NPROC', 'NOFILE']);
    assert.match(whole.process.registers.rip, /^0x[0-9a-f]+$/);
    assert.equal(whole.table.processes.map((p: { fds: unknown[] }) => p.fds), [[]], JSON.stringify(whole.table));
    assert.is((await cr(['show', imgA, '--all'])).code, 2, '--all without --json is refused');

    const same = await cr(['diff', imgA, imgA]);
    assert.is(same.code, 0);
    assert.match(same.stdout, /, the same process \(argv, exe, cwd, credentials, limits, \d+ mappings, \d+ signal actions? set, signals blocked and pending\), and the same 0 guard regions\n$/);
    const differ = await cr(['diff', imgA, imgB]);
    assert.is(differ.code, 1);
    assert.match(differ.stdout, /^argv: \["sleep","100"\] in A, \["sleep","200"\] in B$/m);
    assert.match(differ.stdout, /^signal 10 action: default in A, ignore flags 0x[0-9a-f]+ mask 0x[0-9a-f]+ in B$/m);

    // Restarted, the sleep has the same argv, exe, cwd, ids, limits and signal state (its pid and
    // perhaps how the kernel merged its mappings differ).
    const killed = await cr(['dump', '--pid', String(a), '-o', imgA, '--force', '--kill']);
    assert.is(killed.code, 0, killed.stderr);
    const back = await cr(['restore', imgA, '--detach']);
    assert.is(back.code, 0, back.stderr);
    const restarted = Number(back.stdout.trim());
    pids.push(restarted);
    const imgR = join(dir, 'r.img');
    assert.is((await cr(['dump', '--pid', String(restarted), '-o', imgR])).code, 0);
    const after = await cr(['diff', imgA, imgR]);
    const kept = after.stdout.split('\n').filter((l) => /^(argv|comm|exe|cwd|umask|uids|gids|groups|rlimit|no_new_privs|signal|blocked|pending|alternate|file locks)/.test(l));
    assert.equal(kept, [], after.stdout);
  } finally {
    for (const p of pids) ensureReaped(p);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
