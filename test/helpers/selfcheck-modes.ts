// The restore modes a self-checking kind program is run in (test/fixtures/*-selfcheck.c: `build
// DIR` makes its fds and waits; `check DIR [KEEP]` is the program a restore gives them to; either
// checks its own fds on SIGUSR1 and writes PASS or what failed to DIR/result), one cell each:
// `-- CMD`, `--into`, `--into --exact` and a whole restart. Every process a cell starts is killed.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { closeFd, openFile } from '../../bridge/file.js';
import { kill, SIGUSR1 } from '../../bridge/signal.js';
import { spawn } from '../../bridge/spawn.js';
import { O_RDWR, onlyProcess, type FdTable, type FdTables } from '../../src/model/fdtable.js';
import * as assert from 'uvu/assert';
import { cr } from './cli.js';
import { waitFile } from './fdlayout.js';
import { ensureReaped, waitInSyscall } from './processes.js';

/** rt_sigtimedwait (x86_64), where a checking program waits for SIGUSR1. */
const SYS_rt_sigtimedwait = 128;

export type Mode = 'fresh' | 'into' | 'into --exact' | 'restart';
export const MODES: Mode[] = ['fresh', 'into', 'into --exact', 'restart'];

/** Ask the program in dir to check its fds: what it wrote (PASS, or what failed). */
export function verdict(pid: number, dir: string): string {
  rmSync(join(dir, 'result'), { force: true });
  kill(pid, SIGUSR1);
  return waitFile(dir, 'result');
}

/**
 * Start `prog build dir`, check it as built, dump it whole to image, check the original again (the
 * dump took nothing from it), and return the image's fd table as `show --json` gives it. The
 * program is killed at the end.
 */
export async function builtAndDumped(prog: string, dir: string, image: string): Promise<FdTable> {
  const pid = spawn([prog, 'build', dir], { fds: [] });
  try {
    waitFile(dir, 'ready');
    assert.is(verdict(pid, dir), 'PASS\n', 'as built');
    const d = await cr(['dump', '--pid', String(pid), '-o', image]);
    assert.is(d.code, 0, d.stderr);
    assert.is(verdict(pid, dir), 'PASS\n', 'the original, after the dump: nothing was taken from it');
    return onlyProcess(JSON.parse((await cr(['show', image, '--json'])).stdout) as FdTables);
  } finally {
    ensureReaped(pid);
  }
}

/** Restore image in `mode` (`prog` being the checking program, `imageFds` the image's fd numbers) and ask for the verdict. */
export async function cell(prog: string, imageFds: number[], image: string, dir: string, mode: Mode): Promise<string> {
  const pids: number[] = [];
  try {
    // A new process says it is ready once SIGUSR1 is blocked: a signal before would kill it.
    rmSync(join(dir, 'ready'), { force: true });
    if (mode === 'fresh' || mode === 'restart') {
      const r = await cr(['restore', image, '--detach', ...(mode === 'fresh' ? ['--', prog, 'check', dir] : [])]);
      if (r.code !== 0) return `cr exit ${r.code}: ${r.stderr}`;
      const pid = Number(r.stdout.trim());
      pids.push(pid);
      if (mode === 'fresh') waitFile(dir, 'ready');
      return verdict(pid, dir);
    }
    // The target holds /dev/null at 0, 1, 2, 4 and at every number of the image.
    const exact = mode === 'into --exact';
    const devNull = openFile('/dev/null', O_RDWR);
    let pid: number;
    try {
      pid = spawn([prog, 'check', dir, exact ? '-' : '0,1,2,4'], { fds: [0, 1, 2, 4, ...imageFds].map((fd): [number, number] => [devNull, fd]) });
    } finally {
      closeFd(devNull);
    }
    pids.push(pid);
    waitFile(dir, 'ready');
    waitInSyscall(pid, SYS_rt_sigtimedwait);
    const r = await cr(['restore', image, '--into', String(pid), ...(exact ? ['--exact'] : [])]);
    if (r.code !== 0) return `cr exit ${r.code}: ${r.stderr}`;
    return verdict(pid, dir);
  } finally {
    for (const pid of pids) ensureReaped(pid);
  }
}

/** Restore image in every mode, each asked for its verdict: all must say PASS (the others are named). */
export async function passesInEveryMode(prog: string, imageFds: number[], image: string, dir: string): Promise<void> {
  const failed: string[] = [];
  for (const mode of MODES) {
    const v = await cell(prog, imageFds, image, dir, mode);
    if (v !== 'PASS\n') failed.push(`${mode}: ${v.trim().replace(/\n/g, '; ')}`);
  }
  assert.equal(failed, []);
}
