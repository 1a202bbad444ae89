// The replay of a dense fd table against the same system calls run natively. The table is
// pipeTable(1031) (bench/tables.ts: 1,031 fds on 393 pipes at shuffled numbers, bytes in a third
// of them); its plan for a fresh process is restored into `sleep` by restoreFresh, the code
// behind `restore IMAGE -- CMD`, whose `fds` phase is what `restore --timings` prints. The native
// side is a C program generated from the same plan (one syscall() per call the replay makes, each
// result checked as the replay checks it), built with cc here and timed inside itself, started
// with no fds as restore starts CMD. Wall time is what a user waits; on a machine shared with
// other work it is mostly time spent waiting for a CPU, so CPU time is measured as well: for the
// replay, cr's own (process.cpuUsage) plus the target's (/proc/PID/schedstat) over replay(), for
// the program its CLOCK_PROCESS_CPUTIME_ID. Also: one batch round trip (one getppid), the floor
// of any batch. Not part of npm test.
// Run: npm run build && node build/bench/replay.bench.js [RUNS]
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { detach, seizeAndStop } from '../bridge/ptrace.js';
import { F_DUPFD, F_DUPFD_CLOEXEC, F_SETFD, F_SETFL, FD_CLOEXEC } from '../bridge/fcntl.js';
import { F_SETPIPE_SZ } from '../bridge/pipe.js';
import { RLIMIT_NOFILE } from '../bridge/rlimit.js';
import { killAndReap, reap, spawn } from '../bridge/spawn.js';
import { BatchRunner } from '../src/inject/batch.js';
import { Injector } from '../src/inject/injector.js';
import { SYS } from '../src/inject/syscalls.js';
import { O_CLOEXEC, type FdTable } from '../src/model/fdtable.js';
import type { Op, Plan } from '../src/plan/ops.js';
import { readNofile } from '../src/proc/limits.js';
import { checkedPlan } from '../src/replay/check.js';
import { replay } from '../src/replay/replay.js';
import { restoreFresh } from '../src/restore/fresh.js';
import { buildC } from '../test/helpers/processes.js';
import { pipeTable } from './tables.js';

const RUNS = Number(process.argv[2] ?? 11);
const ROUND_TRIPS = 2000;

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** A C string literal of any bytes. */
const cString = (b: Buffer): string => `"${[...b].map((c) => `\\x${c.toString(16).padStart(2, '0')}`).join('')}"`;

/** The C statements of one op: the calls the replay makes for it, each checked the same way. */
function cOf(op: Op, i: number, table: FdTable): string {
  const must = (call: string, want: number | string): string => `if ((r = ${call}) != ${want}) return fail(out, ${i}, r);`;
  switch (op.op) {
    case 'pipe2':
      return `${must(`syscall(SYS_pipe2, p, ${op.flags})`, 0)} if (p[0] != ${op.fds[0]} || p[1] != ${op.fds[1]}) return fail(out, ${i}, p[0]);`;
    case 'open':
      // The dense table's opens all go through /proc/self/fd/N (no path of the image's to judge).
      if (op.via < 0) throw new Error('the dense table opens no path of its own');
      return must(`syscall(SYS_openat, AT_FDCWD, ${cString(Buffer.from(op.path))}, ${op.flags}, 0)`, op.fd);
    case 'dup2':
      return op.cloexec ? must(`syscall(SYS_dup3, ${op.from}, ${op.to}, ${O_CLOEXEC})`, op.to) : must(`syscall(SYS_dup2, ${op.from}, ${op.to})`, op.to);
    case 'dupfd':
      return must(`syscall(SYS_fcntl, ${op.from}, ${op.cloexec ? F_DUPFD_CLOEXEC : F_DUPFD}, ${op.min})`, op.fd);
    case 'close':
      return must(`syscall(SYS_close, ${op.fd})`, 0);
    case 'setfl':
      return must(`syscall(SYS_fcntl, ${op.fd}, ${F_SETFL}, ${op.flags})`, 0);
    case 'setfd':
      return must(`syscall(SYS_fcntl, ${op.fd}, ${F_SETFD}, ${op.cloexec ? FD_CLOEXEC : 0})`, 0);
    case 'setpipesz':
      return must(`syscall(SYS_fcntl, ${op.fd}, ${F_SETPIPE_SZ}, ${op.size})`, op.size);
    case 'lseek':
      return must(`syscall(SYS_lseek, ${op.fd}, ${op.offset}L, SEEK_SET)`, op.offset);
    case 'write': {
      const pipe = table.pipes.find((p) => p.id === op.pipe)!;
      const bytes = pipe.data;
      return must(`syscall(SYS_write, ${op.fd}, ${cString(bytes)}, ${bytes.length})`, bytes.length);
    }
    case 'prlimit':
      return `rl.rlim_cur = ${op.soft}; rl.rlim_max = ${op.hard}; ${must(`syscall(SYS_prlimit64, 0, ${RLIMIT_NOFILE}, &rl, 0)`, 0)}`;
    case 'create':
    case 'link':
    case 'pty':
    case 'socketpair':
      throw new Error(`the dense table has only pipes, not ${op.call}`);
    case 'fork':
      throw new Error('the dense table is one process');
    case 'commit':
      return '';
    default: {
      const never: never = op;
      throw new Error(`unknown op ${JSON.stringify(never)}`);
    }
  }
}

/** A program running the plan's calls, timing them, writing the ms (or the failing op) to argv[1]. */
function nativeProgram(plan: Plan, table: FdTable): string {
  return `#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static int fail(const char *out, int op, long r) {
  FILE *f = fopen(out, "w");
  if (f) { fprintf(f, "FAIL op %d: %ld\\n", op, r); fclose(f); }
  return 1;
}
int main(int argc, char **argv) {
  const char *out = argv[1];
  struct timespec a, b, ca, cb;
  struct rlimit rl;
  int p[2];
  long r;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ca);
  clock_gettime(CLOCK_MONOTONIC, &a);
${plan.ops.map((op, i) => `  ${cOf(op, i, table)}`).join('\n')}
  clock_gettime(CLOCK_MONOTONIC, &b);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cb);
  FILE *f = fopen(out, "w");
  fprintf(f, "%f %f\\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 1e6, ((cb.tv_sec - ca.tv_sec) * 1e9 + (cb.tv_nsec - ca.tv_nsec)) / 1e6);
  fclose(f);
  return 0;
}
`;
}

interface Times {
  wall: number;
  cpu: number;
}

/** One run of the native program, started with no fds; its own wall and CPU time in ms. */
function native(program: string, dir: string): Times {
  const out = join(dir, 'native.out');
  const pid = spawn([program, out], { fds: [] });
  const end = reap(pid, 60_000);
  const said = readFileSync(out, 'utf8').trim();
  if (end.kind !== 'exited' || end.code !== 0) throw new Error(`the native program: ${said}`);
  const [wall, cpu] = said.split(' ').map(Number) as [number, number];
  return { wall, cpu };
}

/** ns a process has run on a CPU. */
const ranNs = (pid: number): number => Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);

/**
 * The replay alone, as restoreFresh runs it (sleep started stopped at its exec, attached, the
 * plan replayed): wall time, and the CPU time of cr and of the target during it, in ms.
 */
function replayed(table: FdTable, plan: Plan): Times {
  const pid = spawn(['sleep', '600'], { fds: [], stopAtExec: true });
  try {
    const inj = Injector.attach(pid);
    const cpu0 = process.cpuUsage();
    const ran0 = ranNs(pid);
    const t = performance.now();
    replay(inj, table, plan);
    const wall = performance.now() - t;
    const own = process.cpuUsage(cpu0);
    const cpu = (own.user + own.system) / 1000 + (ranNs(pid) - ran0) / 1e6;
    return { wall, cpu };
  } finally {
    killAndReap(pid);
  }
}

/** One restore -- sleep of the table: the fds phase, and how many syscalls in how many batches. */
function restored(table: FdTable): { fds: number; syscalls: number; batches: number } {
  const report = restoreFresh(table, ['sleep', '600'], null);
  killAndReap(report.pid);
  const fds = report.phases.find(([name]) => name === 'fds')![1];
  return { fds, syscalls: report.stats.syscalls, batches: report.stats.batches };
}

/** Median of ROUND_TRIPS batches of one getppid each, in ms. */
function roundTrip(): number {
  const pid = spawn(['sleep', '600'], { fds: [] });
  try {
    seizeAndStop(pid);
    const inj = Injector.attach(pid);
    const runner = BatchRunner.prepare(inj, { capacity: 64 * 1024 });
    const times: number[] = [];
    for (let i = 0; i < ROUND_TRIPS; i++) {
      const b = runner.batch();
      b.call(SYS.getppid, [], BigInt(process.pid));
      const t = performance.now();
      const { matched } = runner.run(b);
      times.push(performance.now() - t);
      if (matched !== 1) throw new Error('getppid: not our pid');
    }
    inj.finish();
    detach(pid);
    return median(times);
  } finally {
    killAndReap(pid);
  }
}

const table = pipeTable(1031);
// The plan restore makes for a process started with no fds and cr's own RLIMIT_NOFILE.
const plan = checkedPlan(table, { fds: [], rlimit: readNofile(process.pid), mode: 'fresh' });
const dir = mkdtempSync(join(tmpdir(), 'cr-bench-replay-'));
try {
  const program = buildC(nativeProgram(plan, table));
  const fds: number[] = [];
  const rep: Times[] = [];
  const nat: Times[] = [];
  let counts = { syscalls: 0, batches: 0 };
  restored(table); // warm: the wasm planner compiled, the code paths jitted
  for (let i = 0; i < RUNS; i++) {
    const r = restored(table);
    fds.push(r.fds);
    counts = r;
    rep.push(replayed(table, plan));
    nat.push(native(program, dir));
  }
  const trip = roundTrip();
  const m = (xs: Times[], k: keyof Times): number => median(xs.map((x) => x[k]));
  console.table([
    { what: `restore -- sleep: fds phase (${plan.ops.length} ops, ${counts.syscalls} syscalls in ${counts.batches} batches)`, 'wall ms': median(fds).toFixed(3), 'cpu ms': '' },
    { what: 'the replay alone (cr and target CPU)', 'wall ms': m(rep, 'wall').toFixed(3), 'cpu ms': m(rep, 'cpu').toFixed(3) },
    { what: `the same syscalls natively (C)`, 'wall ms': m(nat, 'wall').toFixed(3), 'cpu ms': m(nat, 'cpu').toFixed(3) },
    { what: `one batch round trip (1 getppid, median of ${ROUND_TRIPS})`, 'wall ms': trip.toFixed(4), 'cpu ms': '' },
  ]);
  console.log(`medians of ${RUNS} runs; load average ${loadavg()[0]!.toFixed(1)} on ${availableParallelism()} cpus`);
  console.log(`fds phase / native, wall: ${(median(fds) / m(nat, 'wall')).toFixed(2)}x; replay / native, cpu: ${(m(rep, 'cpu') / m(nat, 'cpu')).toFixed(2)}x (goal: within 5x)`);
  console.log(`one batch round trip: ${(trip * 1000).toFixed(1)} us (goal: under 50 us)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
