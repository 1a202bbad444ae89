// cgroups (src/restart/cgroups.ts, docs/state.md): a process in a cgroup other than cr's comes back
// in it, with new pids and with its own, run as root and as uid 65534 in a cgroup that user may
// enter; an unprivileged author's image restored by root does not enter a cgroup only root may
// enter (one warning names it; it runs in cr's). The process checks its own /proc/self/cgroup.
// Each test makes its own cgroup in a hierarchy this machine lets root write (skipped, saying so,
// where none does) and removes it; every process started is killed.
import { chownSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { kill, SIGUSR1 } from '../bridge/signal.js';
import { spawn } from '../bridge/spawn.js';
import { cr, crProcess } from './helpers/cli.js';
import { waitFile } from './helpers/fdlayout.js';
import { ensureReaped } from './helpers/processes.js';
import { asUser, NOBODY, unprivilegedTest } from './helpers/unprivileged.js';

/**
 * A hierarchy root may make a cgroup in, one a new cgroup can take a process in at once (not a v1
 * cpuset, which starts with no CPUs): its mount point, or why there is none. `v1`: only a cgroup v1
 * hierarchy, where write access to cgroup.procs lets a process move itself (v2 also wants it at
 * the common ancestor's, root's here, so an unprivileged process cannot enter a cgroup of root's
 * making).
 */
function writableHierarchy(v1: boolean): string | { none: string } {
  const candidates: string[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'latin1').split('\n')) {
    const f = line.split(' ');
    const dash = f.indexOf('-');
    if (dash < 0) continue;
    if (f[dash + 1] === 'cgroup2' && !v1) candidates.push(f[4]!);
    else if (f[dash + 1] === 'cgroup' && !(f[dash + 3] ?? '').split(',').includes('cpuset')) candidates.unshift(f[4]!);
  }
  for (const at of candidates) {
    const probe = join(at, `cr-probe-${randomBytes(4).toString('hex')}`);
    try {
      mkdirSync(probe);
      rmdirSync(probe);
      return at;
    } catch {
      // read-only, or not ours
    }
  }
  return { none: candidates.length === 0 ? 'no cgroup hierarchy is mounted' : `no cgroup hierarchy lets this process make a cgroup (${candidates.join(', ')})` };
}

const cgroupTest = (name: string, fn: (at: string) => Promise<void>, unprivileged = false): void => {
  const hierarchy = process.geteuid!() === 0 ? writableHierarchy(unprivileged) : { none: 'not root' };
  if (typeof hierarchy === 'string') return (unprivileged ? unprivilegedTest : test)(name, () => fn(hierarchy));
  console.log(`  skipping a cgroup test: ${hierarchy.none}${unprivileged ? ' (cgroup v1)' : ''}`);
  test.skip(name, () => undefined);
};

/** `DIR CGROUP MOUNT`: moves itself into CGROUP (as whoever runs it), notes /proc/self/cgroup; on SIGUSR1 compares. */
const PROG = `
import os, signal, sys
d, cg = sys.argv[1], sys.argv[2]
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
with open(os.path.join(cg, 'cgroup.procs'), 'w') as f: f.write('0')
mine = open('/proc/self/cgroup').read()
assert ':' + cg[len(sys.argv[3]):] + '\\n' in mine, mine
open(os.path.join(d, 'ready'), 'w').write(mine)
while True:
    signal.sigwait([signal.SIGUSR1])
    now = open('/proc/self/cgroup').read()
    open(os.path.join(d, 'result.tmp'), 'w').write('PASS\\n' if now == mine else 'FAIL: now in\\n' + now)
    os.rename(os.path.join(d, 'result.tmp'), os.path.join(d, 'result'))
`;

/** A fresh cgroup under `at` and a scratch directory; both removed after fn, with every pid it adds. */
async function withCgroup(at: string, fn: (cg: string, dir: string, pids: number[]) => Promise<void>): Promise<void> {
  // Writable by 65534 (the unprivileged test's program writes there), and its images trusted as its own.
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-cgroup-')));
  chownSync(dir, NOBODY, NOBODY);
  chmodSync(dir, 0o755);
  const cg = join(at, `cr-test-${randomBytes(6).toString('hex')}`);
  mkdirSync(cg);
  const pids: number[] = [];
  try {
    await fn(cg, dir, pids);
  } finally {
    for (const p of pids) ensureReaped(p);
    // The cgroup empties once its processes are reaped; a moment later it can be removed.
    for (let i = 0; ; i++) {
      try {
        rmdirSync(cg);
        break;
      } catch (err) {
        if (i === 200) throw err;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

const answer = (dir: string, pid: number): string => {
  rmSync(join(dir, 'result'), { force: true });
  kill(pid, SIGUSR1);
  return waitFile(dir, 'result');
};

cgroupTest('a process in a cgroup of its own comes back in it, with new pids and with its own', (at) => withCgroup(at, async (cg, dir, pids) => {
  const pid = spawn(['python3', '-S', '-c', PROG, dir, cg, at], { fds: [] });
  pids.push(pid);
  waitFile(dir, 'ready');
  const image = join(dir, 'image');
  const d = await cr(['dump', '--pid', String(pid), '-o', image, '--kill']);
  assert.is(d.code, 0, d.stderr);
  ensureReaped(pid);
  for (const mode of ['--new-pid', '--same-pid']) {
    const r = await cr(['restore', image, '--detach', mode]);
    assert.is(r.code, 0, `${mode}: ${r.stderr}`);
    const restored = Number(r.stdout.trim());
    pids.push(restored);
    assert.not.match(r.stderr, /cgroup/, `${mode}: ${r.stderr}`);
    assert.is(answer(dir, restored), 'PASS\n', mode);
    ensureReaped(restored);
  }
}));

cgroupTest('as uid 65534: its own process comes back in a cgroup it may enter; root restoring its image into a cgroup only root may enter leaves it in cr\'s, saying so', (at) => withCgroup(at, async (cg, dir, pids) => {
  chownSync(join(cg, 'cgroup.procs'), NOBODY, NOBODY);
  const pid = spawn([...asUser(NOBODY), 'python3', '-S', '-c', PROG, dir, cg, at], { fds: [], cwd: dir });
  pids.push(pid);
  waitFile(dir, 'ready');
  const image = join(dir, 'image');
  const d = crProcess(['dump', '--pid', String(pid), '-o', image, '--kill'], { uid: NOBODY });
  assert.is(d.code, 0, d.stderr);
  ensureReaped(pid);
  const r = crProcess(['restore', image, '--detach'], { uid: NOBODY });
  assert.is(r.code, 0, r.stderr);
  const restored = Number(r.stdout.trim());
  pids.push(restored);
  assert.not.match(r.stderr, /cgroup/);
  assert.is(answer(dir, restored), 'PASS\n', 'its own restore');
  ensureReaped(restored);
  // The cgroup is root's again: the author could not enter it, so neither does its image.
  chownSync(join(cg, 'cgroup.procs'), 0, 0);
  writeFileSync(join(cg, 'cgroup.procs'), '');
  const byRoot = await cr(['restore', image, '--detach']);
  assert.is(byRoot.code, 0, byRoot.stderr);
  const again = Number(byRoot.stdout.trim());
  pids.push(again);
  assert.match(byRoot.stderr, new RegExp(`the process was in cgroup \\d+:[^:]*:${cg.slice(at.length).replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(open: errno 13\\); it runs in cr's there`), byRoot.stderr);
  assert.not.ok(readFileSync(`/proc/${again}/cgroup`, 'latin1').includes(cg.slice(at.length)), 'not in root\'s cgroup');
}), true);

test.run();
