// Time a whole-tree `dump` and `restore` (docs/trees.md, "Measured"): a tree of 100 small C
// processes (a 10-ary heap of forks), and 10,000 fds across a tree (1,250 pipes holding a byte
// each, made by the root and inherited by its 3 children: every description and pipe shared by 4
// processes, so kcmp groups 10,000 fds across pids). Each: the median of RUNS in-process dumps,
// per phase, and per process; then the whole `node cr.mjs dump` command once; then the same for
// restore of that image (new pids, --detach; each restored tree checked whole, then killed).
// Run: npm run build && node build/bench/tree.bench.js [RUNS]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { kill, SIGKILL } from '../bridge/signal.js';
import { spawn } from '../bridge/spawn.js';
import { restore } from '../src/api.js';
import { checkpointProcess } from '../src/checkpoint/checkpoint.js';
import { listTree } from '../src/proc/tree.js';
import { buildC, ensureReaped } from '../test/helpers/processes.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const RUNS = Number(process.argv[2] ?? 5);

// argv: N PIPES READY. Process i forks children 10i+1..10i+10 (below N), then says it is ready
// (one byte appended to READY) and pauses. The root first makes PIPES pipes with a byte in each.
const TREE_C = `#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int n = atoi(argv[1]), pipes = atoi(argv[2]), i = 0;
  for (int k = 0; k < pipes; k++) {
    int p[2];
    if (pipe(p) != 0 || write(p[1], "x", 1) != 1) return 1;
  }
  for (int c = 10 * i + 1; c <= 10 * i + 10 && c < n; c++) {
    if (fork() == 0) { i = c; c = 10 * i; }
  }
  int fd = open(argv[3], O_WRONLY | O_APPEND);
  if (fd < 0 || write(fd, "r", 1) != 1) return 1;
  close(fd);
  for (;;) pause();
}
`;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const nap = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

async function bench(name: string, processes: number, pipes: number): Promise<void> {
  const exe = buildC(TREE_C);
  const dir = mkdtempSync(join(tmpdir(), 'cr-bench-tree-'));
  const ready = join(dir, 'ready');
  spawnSync('touch', [ready]);
  const root = spawn([exe, String(processes), String(pipes), ready], { fds: [], setsid: true });
  try {
    const deadline = Date.now() + 60_000;
    while (statSync(ready).size < processes) {
      if (Date.now() > deadline) throw new Error(`${name}: the tree did not start`);
      nap(5);
    }
    const image = join(dir, 'image');
    const phases = new Map<string, number[]>();
    let summary = '';
    for (let i = 0; i < RUNS; i++) {
      const r = checkpointProcess(root, image, { force: true });
      r.phases.push(['total', r.phases.reduce((n, [, ms]) => n + ms, 0)]);
      for (const [phase, ms] of r.phases) phases.set(phase, [...(phases.get(phase) ?? []), ms]);
      const t = r.fdImage.table;
      const fds = t.processes.reduce((n, p) => n + p.fds.length, 0);
      summary = `${r.tree.length} processes, ${fds} fds, ${t.descs.length} descriptions, ${t.pipes.length} pipes, image ${(r.bytes / 1048576).toFixed(1)} MiB`;
    }
    const t = performance.now();
    const cli = spawnSync(process.execPath, [join(ROOT, 'cr.mjs'), 'dump', '--pid', String(root), '-o', image, '--force']);
    if (cli.status !== 0) throw new Error(`cr dump failed: ${cli.stderr}`);
    const cliMs = performance.now() - t;
    const total = median(phases.get('total')!);
    const cells = [...phases].map(([phase, xs]) => `${phase} ${median(xs).toFixed(0)}`);
    console.log(`${name} (${summary}): ${cells.join(', ')} ms; ${(total / processes).toFixed(1)} ms per process; node cr.mjs dump ${cliMs.toFixed(0)} ms`);
    await benchRestore(name, image, processes);
  } finally {
    for (const m of listTree(root)) {
      try {
        kill(m.pid, SIGKILL);
      } catch {
        // gone
      }
    }
    ensureReaped(root);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Kill a restored tree: every member cr named, and what they forked since. */
function killRestored(pids: number[]): void {
  for (const pid of [...listTree(pids[0]!).map((m) => m.pid), ...pids]) {
    try {
      kill(pid, SIGKILL);
    } catch {
      // gone
    }
  }
}

/** The median of RUNS in-process restores of image (the restored root is this process's child), then `node cr.mjs restore --detach` once. */
async function benchRestore(name: string, image: string, processes: number): Promise<void> {
  const phases = new Map<string, number[]>();
  for (let i = 0; i < RUNS; i++) {
    const r = await restore(image, { detach: true, newPid: true });
    const pids = r.members!.map((m) => m.now);
    try {
      if (pids.length !== processes || listTree(r.pid).length !== processes) throw new Error(`${name}: restored ${listTree(r.pid).length} of ${processes} processes`);
    } finally {
      killRestored(pids);
      ensureReaped(r.pid);
    }
    r.phases.push(['total', r.phases.reduce((n, [, ms]) => n + ms, 0)]);
    for (const [phase, ms] of r.phases) phases.set(phase, [...(phases.get(phase) ?? []), ms]);
  }
  const t = performance.now();
  const cli = spawnSync(process.execPath, [join(ROOT, 'cr.mjs'), 'restore', image, '--detach', '--new-pid'], { encoding: 'utf8' });
  const cliMs = performance.now() - t;
  const now = (/the root of a tree of \d+ processes \(([^)]*)\)/.exec(cli.stderr)?.[1] ?? '').split(' ').map((w) => Number(w.split('->').pop())).filter((p) => p > 0);
  if (now.length > 0) killRestored(now);
  if (cli.status !== 0 || now.length !== processes) throw new Error(`cr restore failed: ${cli.stderr}`);
  const total = median(phases.get('total')!);
  const cells = [...phases].map(([phase, xs]) => `${phase} ${median(xs).toFixed(0)}`);
  console.log(`${name} restore: ${cells.join(', ')} ms; ${(total / processes).toFixed(1)} ms per process; node cr.mjs restore ${cliMs.toFixed(0)} ms`);
}

await bench('100 processes', 100, 0);
await bench('10,000 fds', 4, 1250);
