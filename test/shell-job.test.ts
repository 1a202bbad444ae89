// restore --shell-job (src/restore/shell-job.ts): an interactive python3 REPL on a pty the test
// makes (test/fixtures/shell-job-driver.py) is given `x = 41 + 1` and dumped with --kill; a cr
// running on another new pty, as that pty's session leader, restores it with --shell-job: the REPL
// becomes the pty's foreground group (it reads the pty, which a background group could not) and
// answers `print(x)` with 42. Ctrl-Z on the new pty stops the job and cr with it, the terminal back
// in cr's group; SIGCONT to cr (what fg sends) goes on. The same REPL run by `sh -c` (a tree of
// two, sh the session leader) comes back as one job. Without a terminal, refused in one line.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { kill, SIGKILL } from '../bridge/signal.js';
import { spawn } from '../bridge/spawn.js';
import { loadInput } from '../src/image/input.js';
import { CR, cr, crProcess, ROOT } from './helpers/cli.js';
import { waitFile } from './helpers/fdlayout.js';
import { ensureReaped } from './helpers/processes.js';

/**
 * `print(x)` echoed, then 42 on a line of its own, in the output without cr's own lines (withoutCr).
 * How the echo looks depends on the moment the line arrives: before readline has the terminal the
 * kernel echoes it, after that readline does.
 */
const ANSWERED = /print\(x\)[^]*?\r\n42\r\n/;
/** cr's own lines (`cr restore: ...`) reach the same terminal at any moment, inside the echo or the answer too. */
const withoutCr = (output: string): string => output.replace(/cr restore: [^\r\n]*\r\n/g, '');
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const DRIVER = join(ROOT, 'test', 'fixtures', 'shell-job-driver.py');
const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-shell-job-')));
const image = join(dir, 'repl.img');
const treeImage = join(dir, 'repl-sh.img');

/** Kill pid if it is still a python3 (a REPL left behind by a failed step). */
function killPython(pid: number): void {
  try {
    if (readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('python3')) kill(pid, SIGKILL);
  } catch {
    // gone
  }
}

/** The REPL (alone, or run by sh -c) on its own pty, given x = 41 + 1, dumped with --kill into out. */
async function dumpRepl(mode: 'repl' | 'repl-sh', out: string): Promise<void> {
  rmSync(join(dir, 'repl.pid'), { force: true });
  const driver = spawn([PYTHON, DRIVER, mode, dir], { fds: [] });
  let root = 0;
  try {
    root = Number(waitFile(dir, 'repl.pid', 60_000));
    const r = await cr(['dump', '--pid', String(root), '-o', out, '--kill', '--quiet']);
    assert.is(r.code, 0, r.stderr);
  } finally {
    if (root > 0) {
      for (const child of childPids(root)) killPython(child);
      killPython(root);
    }
    ensureReaped(driver);
  }
}

const childPids = (pid: number): number[] => {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'latin1').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
};

let dumped: Promise<void> | null = null;
const dumpOnce = (): Promise<void> => (dumped ??= dumpRepl('repl', image));

interface Result {
  status: number | null;
  output: string;
  job: number | null;
  fgStopped?: number;
  error?: string;
}

/** cr restore IMAGE --shell-job run on a new pty by the driver (mode restore or restore-stop). */
function onNewPty(mode: 'restore' | 'restore-stop', img = image): Result {
  rmSync(join(dir, 'result.json'), { force: true });
  const r = spawnSync(PYTHON, [DRIVER, mode, dir, process.execPath, CR, 'restore', img, '--shell-job', '--quiet'], { encoding: 'utf8', timeout: 180_000, env: process.env });
  assert.is(r.status, 0, `driver: ${r.stderr}`);
  const result = JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as Result;
  if (result.job) killPython(result.job);
  return result;
}

test('the dump records the REPL\'s controlling terminal and its settings', async () => {
  await dumpOnce();
  const root = loadInput(image).process!.tree[0]!;
  assert.ok(root.ctty !== undefined && root.ctty.rdev !== 0, 'a controlling tty is recorded');
  assert.match(root.ctty!.termios ?? '', /^[0-9a-f]{88}$/);
});

test('a python REPL restored with --shell-job on a new pty is its foreground and keeps x', async () => {
  await dumpOnce();
  const r = onNewPty('restore');
  assert.is(r.error, undefined, `${r.error}\n${r.output}`);
  assert.ok(r.job !== null && r.job > 0, 'the job became the foreground group');
  assert.match(withoutCr(r.output), ANSWERED, JSON.stringify(r.output.slice(-400)));
  assert.is(r.status, 0, `cr's wait status, the REPL having exited: ${r.output}`);
});

test('Ctrl-Z stops the job and cr, the terminal back in cr\'s group; SIGCONT goes on', async () => {
  await dumpOnce();
  const r = onNewPty('restore-stop');
  assert.is(r.error, undefined, `${r.error}\n${r.output}`);
  assert.ok(r.fgStopped !== undefined && r.fgStopped !== r.job, `while stopped the foreground is cr's group (${r.fgStopped}), not the job's (${r.job})`);
  assert.match(withoutCr(r.output), ANSWERED, JSON.stringify(r.output.slice(-400)));
  assert.is(r.status, 0, r.output);
});

test('a tree (sh -c running the REPL) restored with --shell-job is one job: Ctrl-Z, then on', async () => {
  await dumpRepl('repl-sh', treeImage);
  const r = onNewPty('restore-stop', treeImage);
  assert.is(r.error, undefined, `${r.error}\n${r.output}`);
  assert.ok(r.fgStopped !== undefined && r.fgStopped !== r.job, `while stopped the foreground is cr's group (${r.fgStopped}), not the job's (${r.job})`);
  assert.match(withoutCr(r.output), ANSWERED, JSON.stringify(r.output.slice(-400)));
  // sh waits for the REPL it ran, and goes on once it exits: the tree came back whole.
  assert.match(r.output, /sh-goes-on/);
  assert.is(r.status, 0, r.output);
});

test('--shell-job without a terminal is refused in one line', async () => {
  await dumpOnce();
  const r = crProcess(['restore', image, '--shell-job'], { setsid: true });
  assert.is(r.code, 2, r.stderr);
  assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /--shell-job: cr has no terminal/);
  const detach = await cr(['restore', image, '--shell-job', '--detach']);
  assert.is(detach.code, 2);
  assert.match(detach.stderr, /--shell-job and --detach exclude each other/);
});

test.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

test.run();
