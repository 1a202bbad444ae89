// Batched remote execution against one-call-at-a-time injection and against the same syscalls
// run natively: a round trip of an empty-ish batch (one getppid), and N dup2+close pairs (the
// bulk of a restore plan) per call, per batch and in a C program doing the same loop.
// Run: npm run build && node build/bench/batch.bench.js
import { execFileSync } from 'node:child_process';
import { Bench } from 'tinybench';
import { detach, seizeAndStop } from '../bridge/ptrace.js';
import { spawn } from '../bridge/spawn.js';
import { BatchRunner } from '../src/inject/batch.js';
import { Injector } from '../src/inject/injector.js';
import { SYS } from '../src/inject/syscalls.js';
import { buildC, ensureReaped } from '../test/helpers/processes.js';

const PAIRS = 1500;
const NATIVE = buildC(`
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int pairs = atoi(argv[1]), rounds = 200;
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (int r = 0; r < rounds; r++)
    for (int i = 0; i < pairs; i++) { if (dup2(0, 100) != 100 || close(100) != 0) return 1; }
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%f\\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / rounds / 1e6);
  return 0;
}`);

const p50 = (bench: Bench, name: string): number => {
  const result = bench.tasks.find((t) => t.name === name)!.result as unknown as { latency?: { p50?: number } };
  return result.latency?.p50 ?? NaN;
};

const native = Number(execFileSync(NATIVE, [String(PAIRS)], { encoding: 'utf8', stdio: ['inherit', 'pipe', 'inherit'] }));
const pid = spawn(['sleep', '600'], { fds: [[0, 0]] });
try {
  seizeAndStop(pid);
  const inj = Injector.attach(pid);
  const runner = BatchRunner.prepare(inj);
  const bench = new Bench({ time: 2000, warmup: true });
  bench.add('batch round trip', () => {
    const b = runner.batch();
    b.call(SYS.getppid, [], BigInt(process.pid));
    if (runner.run(b).matched !== 1) throw new Error('getppid: wrong result');
  });
  bench.add('pairs, batched', () => {
    const b = runner.batch();
    for (let i = 0; i < PAIRS; i++) {
      b.call(SYS.dup2, [0n, 100n], 100n);
      b.call(SYS.close, [100n], 0n);
    }
    if (runner.run(b).matched !== 2 * PAIRS) throw new Error('batch: wrong result');
  });
  bench.add('pairs, one call at a time', () => {
    for (let i = 0; i < PAIRS; i++) {
      inj.call('dup2', SYS.dup2, 0n, 100n);
      inj.call('close', SYS.close, 100n);
    }
  });
  await bench.run();
  inj.finish();
  detach(pid);
  const ms = (name: string): string => p50(bench, name).toFixed(3);
  console.table([
    { what: 'one batch round trip (1 getppid)', 'median ms': ms('batch round trip') },
    { what: `${2 * PAIRS} syscalls (dup2+close), one batch`, 'median ms': ms('pairs, batched') },
    { what: `${2 * PAIRS} syscalls, one injected call each`, 'median ms': ms('pairs, one call at a time') },
    { what: `${2 * PAIRS} syscalls natively (C loop)`, 'median ms': native.toFixed(3) },
  ]);
  console.log(`batched / native: ${(p50(bench, 'pairs, batched') / native).toFixed(2)}x; per-call / batched: ${(p50(bench, 'pairs, one call at a time') / p50(bench, 'pairs, batched')).toFixed(1)}x`);
} finally {
  ensureReaped(pid);
}
