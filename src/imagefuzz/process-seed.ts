// A real whole-process image to start from, made now: a tiny C program (built with cc) that only
// sleeps, dumped whole. Made at run time because restarting an image needs its executable, with
// the same identity, where the dump found it. The program's argv carries a mark, so anything a
// restart starts can be found afterwards.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { killAndReap, spawn } from '../../bridge/spawn.js';
import { checkpointProcess } from '../checkpoint/checkpoint.js';
import type { Seed } from './mutant.js';

const SLEEPER_C = `#include <unistd.h>
int main(void) { for (;;) pause(); }
`;
const PAUSE = '34'; // x86_64 syscall number, as /proc/PID/syscall shows it

/** The image, and the mark in the dumped (and any restarted) process's command line. */
export function makeProcessSeed(dir: string): { seed: Seed; mark: string } {
  const source = join(dir, 'sleeper.c');
  const exe = join(dir, 'sleeper');
  writeFileSync(source, SLEEPER_C);
  execFileSync('cc', ['-O1', '-o', exe, source], { stdio: ['ignore', 'ignore', 'inherit'] });
  const mark = `cr-imagefuzz-${randomBytes(6).toString('hex')}`;
  const pid = spawn([exe, mark], { fds: [] });
  try {
    const deadline = Date.now() + 5000;
    const nap = new Int32Array(new SharedArrayBuffer(4));
    while (readFileSync(`/proc/${pid}/syscall`, 'latin1').split(' ')[0] !== PAUSE) {
      if (Date.now() > deadline) throw new Error('the sleeper did not reach pause() within 5 s');
      Atomics.wait(nap, 0, 0, 2);
    }
    const image = join(dir, 'sleeper.proc');
    checkpointProcess(pid, image, { force: true });
    return { seed: { name: 'sleeper.proc', bytes: readFileSync(image) }, mark };
  } finally {
    killAndReap(pid);
  }
}
