// The simulated kernel (src/sim/kernel.ts) against the real one: random syscall scripts run
// both in a C process and in SimProcess must give the same results and the same final fd
// table. Then verify() on hand-written plans, good and bad.
import { mkdtempSync, readFileSync, rmSync, writeFileSync, closeSync, openSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { reap } from '../bridge/spawn.js';
import type { FdTable } from '../src/model/fdtable.js';
import {
  O_APPEND, O_ASYNC, O_CLOEXEC, O_DIRECT, O_DSYNC, O_LARGEFILE, O_NOATIME, O_NOCTTY, O_NOFOLLOW, O_NONBLOCK,
  O_RDONLY, O_RDWR, O_SYNC, O_WRONLY,
} from '../src/model/fdtable.js';
import type { Op, PlanRecords } from '../src/plan/ops.js';
import type { PlanTarget } from '../src/model/restore-target.js';
import { Rng } from '../src/fuzz/random.js';
import { SimError, SimProcess, SimWorld, type SimPipe } from '../src/sim/kernel.js';
import { verify } from '../src/sim/verify.js';
import { buildC, withProcess } from './helpers/processes.js';

// ---------------------------------------------------------------------------------------
// The oracle: runs each script (separated by "end" lines) in a forked child with no fds,
// writing what each call returned and the final fd table into a shared mapping.
const ORACLE = String.raw`
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#define SLOT 65536
#define MAXSCAN 128
static char *out; static size_t len;
static void emit(const char *fmt, ...) {
  va_list ap; va_start(ap, fmt);
  int n = vsnprintf(out + len, SLOT - 1 - len, fmt, ap);
  va_end(ap);
  if (n > 0) len += n;
  if (len > SLOT - 2) len = SLOT - 2;
}
static void onalarm(int s) { (void)s; }
static void arm(int on) {
  struct itimerval it = {{0, 0}, {0, on ? 10000 : 0}};
  setitimer(ITIMER_REAL, &it, 0);
}
static unsigned char buf[4 << 20];
static unsigned char pattern(long j, long k) { return (unsigned char)(j * 131 + k * 7 + (k >> 8)); }
static void result(long r) {
  if (r < 0) emit("E %s\n", strerrorname_np(errno)); else emit("R %ld\n", r);
}
static int run(char *script) {
  struct sigaction sa; memset(&sa, 0, sizeof sa); sa.sa_handler = onalarm; sigaction(SIGALRM, &sa, 0);
  signal(SIGPIPE, SIG_IGN);
  char *save, *line;
  for (line = strtok_r(script, "\n", &save); line; line = strtok_r(0, "\n", &save)) {
    char op[16], path[256]; long a = 0, b = 0, c = 0;
    sscanf(line, "%15s", op);
    if (!strcmp(op, "rlimit")) { sscanf(line, "%*s %ld %ld", &a, &b); struct rlimit rl = {a, b}; if (setrlimit(RLIMIT_NOFILE, &rl)) emit("setrlimit failed\n"); continue; }
    if (!strcmp(op, "pipe2")) { int p[2]; sscanf(line, "%*s %ld", &a); if (pipe2(p, a) < 0) result(-1); else emit("R %d %d\n", p[0], p[1]); }
    else if (!strcmp(op, "open")) {
      sscanf(line, "%*s %255s %ld", path, &a);
      arm(1); long r = open(path, a); int e = errno; arm(0); errno = e;
      if (r < 0 && e == EINTR) { emit("B\n"); return 0; }
      result(r);
    }
    else if (!strcmp(op, "dup2")) { sscanf(line, "%*s %ld %ld", &a, &b); result(dup2(a, b)); }
    else if (!strcmp(op, "dup3")) { sscanf(line, "%*s %ld %ld %ld", &a, &b, &c); result(dup3(a, b, c)); }
    else if (!strcmp(op, "dupfd")) { sscanf(line, "%*s %ld %ld %ld", &a, &b, &c); result(fcntl(a, c ? F_DUPFD_CLOEXEC : F_DUPFD, b)); }
    else if (!strcmp(op, "close")) { sscanf(line, "%*s %ld", &a); result(close(a)); }
    else if (!strcmp(op, "setfl")) { sscanf(line, "%*s %ld %ld", &a, &b); result(fcntl(a, F_SETFL, b)); }
    else if (!strcmp(op, "setfd")) { sscanf(line, "%*s %ld %ld", &a, &b); result(fcntl(a, F_SETFD, b)); }
    else if (!strcmp(op, "setpipesz")) { sscanf(line, "%*s %ld %ld", &a, &b); result(fcntl(a, F_SETPIPE_SZ, b)); }
    else if (!strcmp(op, "lseek")) { sscanf(line, "%*s %ld %ld", &a, &b); result(lseek(a, b, SEEK_SET)); }
    else if (!strcmp(op, "prlimit")) { sscanf(line, "%*s %ld %ld", &a, &b); struct rlimit rl = {a, b}; result(prlimit(0, RLIMIT_NOFILE, &rl, 0)); }
    else if (!strcmp(op, "write")) {
      sscanf(line, "%*s %ld %ld %ld", &a, &b, &c);
      for (long k = 0; k < b; k++) buf[k] = pattern(c, k);
      arm(1); long r = write(a, buf, b); int e = errno; arm(0); errno = e;
      if ((r < 0 && (e == EINTR || e == EAGAIN)) || (r >= 0 && r < b)) { emit("B\n"); return 0; }
      result(r);
    }
    else { emit("bad op %s\n", op); return 1; }
  }
  struct rlimit rl; getrlimit(RLIMIT_NOFILE, &rl);
  emit("L %ld %ld\n", (long)rl.rlim_cur, (long)rl.rlim_max);
  int open_[MAXSCAN], pipeof[MAXSCAN], flags[MAXSCAN]; struct stat st[MAXSCAN];
  for (int i = 0; i < MAXSCAN; i++) {
    open_[i] = fcntl(i, F_GETFD) >= 0; pipeof[i] = -1;
    if (!open_[i]) continue;
    int fdfl = fcntl(i, F_GETFD); flags[i] = fcntl(i, F_GETFL); fstat(i, &st[i]);
    char link[64], target[256]; snprintf(link, sizeof link, "/proc/self/fd/%d", i);
    long n = readlink(link, target, sizeof target - 1); target[n > 0 ? n : 0] = 0;
    char kind = !strncmp(target, "pipe:", 5) ? 'a' : S_ISFIFO(st[i].st_mode) ? 'q' : S_ISREG(st[i].st_mode) ? 'f' : S_ISCHR(st[i].st_mode) ? 'c' : '?';
    int desc = i;
    for (int j = 0; j < i; j++) if (open_[j] && syscall(SYS_kcmp, getpid(), getpid(), 0, j, i) == 0) { desc = j; break; }
    long cap = -1, queued = -1, offset = -1;
    if (kind == 'a' || kind == 'q') {
      pipeof[i] = i;
      for (int j = 0; j < i; j++) if (pipeof[j] >= 0 && st[j].st_dev == st[i].st_dev && st[j].st_ino == st[i].st_ino) { pipeof[i] = pipeof[j]; break; }
      cap = fcntl(i, F_GETPIPE_SZ); int q = 0; ioctl(i, FIONREAD, &q); queued = q;
    } else offset = lseek(i, 0, SEEK_CUR);
    emit("F %d %d %o %c %d %d %ld %ld %ld\n", i, fdfl, flags[i], kind, desc, pipeof[i], cap, queued, offset);
  }
  for (int i = 0; i < MAXSCAN; i++) {
    if (pipeof[i] != i) continue;
    int reader = -1;
    for (int j = i; j < MAXSCAN; j++) if (pipeof[j] == i && (flags[j] & O_ACCMODE) != O_WRONLY) { reader = j; break; }
    if (reader < 0) { emit("D %d -\n", i); continue; }
    fcntl(reader, F_SETFL, flags[reader] | O_NONBLOCK);
    unsigned h = 2166136261u; emit("D %d", i);
    for (;;) {
      long n = read(reader, buf, sizeof buf);
      if (n <= 0) break;
      for (long k = 0; k < n; k++) h = (h ^ buf[k]) * 16777619u;
      emit(" %ld", n);
    }
    emit(" #%u\n", h);
  }
  return 0;
}
int main(int argc, char **argv) {
  if (argc != 4) return 2;
  int n = atoi(argv[3]);
  int fd = open(argv[1], O_RDONLY); if (fd < 0) return 3;
  static char script[8 << 20]; long got = read(fd, script, sizeof script - 1); close(fd);
  if (got < 0) return 4; script[got] = 0;
  fd = open(argv[2], O_RDWR); if (fd < 0) return 5;
  if (ftruncate(fd, (long)n * SLOT)) return 6;
  char *map = mmap(0, (long)n * SLOT, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0); close(fd);
  if (map == MAP_FAILED) return 7;
  char *p = script;
  for (int i = 0; i < n; i++) {
    char *end = strstr(p, "end\n"); if (!end) return 8; *end = 0;
    pid_t pid = fork();
    if (pid == 0) { out = map + (long)i * SLOT; len = 0; _exit(run(p)); }
    int status; waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status)) return 9;
    p = end + 4;
  }
  return 0;
}
`;

type ScriptOp =
  | ['pipe2', number]
  | ['open', string, number]
  | ['dup2', number, number]
  | ['dup3', number, number, number]
  | ['dupfd', number, number, number]
  | ['close', number]
  | ['setfl', number, number]
  | ['setfd', number, number]
  | ['setpipesz', number, number]
  | ['lseek', number, number]
  | ['write', number, number, number]
  | ['prlimit', number, number];

function pattern(j: number, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let k = 0; k < n; k++) out[k] = (j * 131 + k * 7 + (k >> 8)) & 255;
  return out;
}

/** Run one script op on the simulated process, in the oracle's output format. */
function simStep(proc: SimProcess, op: ScriptOp): string {
  const fmt = (r: number | [number, number]): string => `R ${Array.isArray(r) ? r.join(' ') : r}`;
  switch (op[0]) {
    case 'pipe2': return fmt(proc.pipe2(op[1]));
    case 'open': return fmt(proc.open(op[1], op[2]));
    case 'dup2': return fmt(proc.dup2(op[1], op[2]));
    case 'dup3': return fmt(op[3] === O_CLOEXEC ? proc.dup3(op[1], op[2], true) : op[3] === 0 ? proc.dup3(op[1], op[2], false) : fail('EINVAL'));
    case 'dupfd': return fmt(proc.dupfd(op[1], op[2], op[3] === 1));
    case 'close': proc.close(op[1]); return fmt(0);
    case 'setfl': proc.setfl(op[1], op[2]); return fmt(0);
    case 'setfd': proc.setfd(op[1], op[2] === 1); return fmt(0);
    case 'setpipesz': return fmt(proc.setPipeSize(op[1], op[2]));
    case 'lseek': return fmt(Number(proc.lseek(op[1], op[2])));
    case 'write': return fmt(proc.write(op[1], pattern(op[3], op[2])));
    case 'prlimit': proc.prlimit(op[1], op[2]); return fmt(0);
  }
}

function fail(errno: 'EINVAL'): never {
  throw new SimError('dup3', errno);
}

const KIND_LETTER = { pipe: 'a', fifo: 'q', file: 'f', chr: 'c', dir: 'd', opath: 'o', eventfd: 'e',
  epoll: 'p',
  timerfd: 't',
  signalfd: 's', ptmx: 'm', pts: 'y', unix: 'u', inet: 'i', memfd: 'b', deleted: 'x', inotify: 'n', pidfd: 'k', foreign: '?' } as const;

/** The oracle's final-state lines, computed from the simulated process. */
function simState(proc: SimProcess): string[] {
  const lines = [`L ${proc.rlimit.soft} ${proc.rlimit.hard}`];
  const firstDesc = new Map<unknown, number>();
  const firstPipe = new Map<SimPipe, number>();
  for (const fd of proc.fds()) {
    const { desc, cloexec } = proc.get(fd)!;
    if (!firstDesc.has(desc)) firstDesc.set(desc, fd);
    let pipeLabel = -1;
    if (desc.pipe) {
      if (!firstPipe.has(desc.pipe)) firstPipe.set(desc.pipe, fd);
      pipeLabel = firstPipe.get(desc.pipe)!;
    }
    const p = desc.pipe;
    lines.push(`F ${fd} ${cloexec ? 1 : 0} ${desc.flags.toString(8)} ${KIND_LETTER[desc.kind]} ${firstDesc.get(desc)} ${pipeLabel} ${p ? p.capacity : -1} ${p ? p.queued : -1} ${p ? -1 : desc.offset}`);
  }
  for (const [pipe, label] of firstPipe) {
    const reader = proc.fds().find((fd) => proc.get(fd)!.desc.pipe === pipe && proc.get(fd)!.desc.readable);
    if (reader === undefined) {
      lines.push(`D ${label} -`);
      continue;
    }
    // pipe_read with a large buffer: whole buffers until one that is a packet.
    const reads: number[] = [];
    let h = 2166136261;
    const bufs = [...pipe.buffers];
    while (bufs.length > 0) {
      let n = 0;
      while (bufs.length > 0) {
        const b = bufs.shift()!;
        n += b.len;
        for (const c of b.chunks) for (const byte of c) h = Math.imul(h ^ byte, 16777619) >>> 0;
        if (b.packet) break;
      }
      reads.push(n);
    }
    lines.push(`D ${label}${reads.map((n) => ` ${n}`).join('')} #${h >>> 0}`);
  }
  return lines;
}

interface Script {
  rlimit: [number, number];
  ops: ScriptOp[];
  expected: string[];
}

/** A random script, run on the simulator as it is made; ends at the first call that would block. */
function makeScript(rng: Rng, dir: string): Script {
  const soft = rng.int(3, 24);
  const hard = soft + rng.int(0, 16);
  const world = new SimWorld();
  for (const f of ['f0', 'f1']) world.add(join(dir, f), 'file');
  for (const f of ['q0', 'q1']) world.add(join(dir, f), 'fifo');
  world.add('/dev/null', 'chr');
  const proc = new SimProcess(world, { soft, hard });
  const ops: ScriptOp[] = [];
  const expected: string[] = [];
  const anyFd = (): number => {
    const open = proc.fds();
    return rng.weighted<() => number>([
      [14, () => (open.length ? rng.pick(open) : rng.int(0, soft))],
      [5, () => rng.int(0, proc.rlimit.soft + 2)],
      [1, () => rng.pick([-1, 1000, 2 ** 31 - 1])],
    ])();
  };
  const someFlags = (bits: number[], p: number): number => bits.reduce((f, b) => (rng.chance(p) ? f | b : f), 0);
  const openFlags = (): number =>
    rng.weighted([[10, O_RDONLY], [10, O_WRONLY], [10, O_RDWR], [1, 3]]) |
    someFlags([O_NONBLOCK, O_APPEND, O_CLOEXEC, O_ASYNC, O_NOATIME, O_DSYNC, O_NOCTTY], 0.2) |
    someFlags([O_DIRECT, O_SYNC, O_NOFOLLOW, O_LARGEFILE], 0.05);
  let writes = 0;
  const count = rng.int(5, 45);
  for (let i = 0; i < count; i++) {
    const fd = anyFd();
    const op: ScriptOp = rng.weighted<() => ScriptOp>([
      [6, () => ['pipe2', someFlags([O_CLOEXEC, O_NONBLOCK, O_DIRECT], 0.3) | (rng.chance(0.03) ? O_APPEND : 0)]],
      [6, () => ['open', rng.pick([join(dir, 'f0'), join(dir, 'f1'), join(dir, 'q0'), join(dir, 'q1'), '/dev/null', `/proc/self/fd/${fd}`, `/proc/self/fd/${fd}`, `/proc/self/fd/${fd}`, join(dir, 'nothere')]), openFlags()]],
      [5, () => ['dup2', fd, rng.chance(0.2) ? fd : anyFd()]],
      [2, () => ['dup3', fd, rng.chance(0.1) ? fd : anyFd(), rng.weighted([[5, 0], [5, O_CLOEXEC], [1, O_NONBLOCK]])]],
      [3, () => ['dupfd', fd, rng.pick([0, 1, 3, soft - 1, soft, hard, -1, rng.int(0, soft)]), rng.int(0, 1)]],
      [5, () => ['close', fd]],
      [4, () => ['setfl', fd, someFlags([1, 2, O_NONBLOCK, O_APPEND, O_ASYNC, O_NOATIME, O_DSYNC, O_LARGEFILE, O_DIRECT, O_SYNC], 0.3)]],
      [2, () => ['setfd', fd, rng.int(0, 1)]],
      [3, () => ['setpipesz', fd, rng.pick([0, 1, 4096, 4097, 8192, 16384, 65536, 1 << 20, (1 << 20) + 1, 3 << 20, 2 ** 31, 2 ** 31 + 1, 2 ** 32 + 8192, -1])]],
      [1, () => ['lseek', fd, rng.pick([0, 7, 100000, -1])]],
      [5, () => ['write', fd, rng.pick([0, 1, 100, 4095, 4096, 4097, 5000, 10000, 65536, 70000]), writes++]],
      [1, () => ['prlimit', rng.int(0, hard + 2), rng.pick([hard, proc.rlimit.hard, rng.int(0, hard + 2)])]],
    ])();
    // Seeking a character device is up to its driver; /dev/null keeps no position.
    if (op[0] === 'lseek' && proc.get(op[1])?.desc.kind === 'chr') continue;
    let line: string;
    try {
      line = simStep(proc, op);
    } catch (err) {
      if (!(err instanceof SimError)) throw err;
      if (err.errno === 'REFUSED') continue; // nothing a restore does: files are only read
      line = err.errno === 'WOULDBLOCK' ? 'B' : `E ${err.errno}`;
    }
    ops.push(op);
    expected.push(line);
    if (line === 'B') return { rlimit: [soft, hard], ops, expected };
  }
  expected.push(...simState(proc));
  return { rlimit: [soft, hard], ops, expected };
}

test('the simulated kernel agrees with this kernel on random syscall scripts', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cr-sim-'));
  try {
    for (const f of ['f0', 'f1']) writeFileSync(join(dir, f), 'some file content\n');
    for (const f of ['q0', 'q1']) execFileSync('mkfifo', [join(dir, f)]);
    const rng = new Rng(20261126);
    const scripts = Array.from({ length: 400 }, () => makeScript(rng, dir));
    const text = scripts
      .map((s) => [`rlimit ${s.rlimit[0]} ${s.rlimit[1]}`, ...s.ops.map((op) => op.join(' ')), 'end'].join('\n') + '\n')
      .join('');
    writeFileSync(join(dir, 'scripts'), text);
    closeSync(openSync(join(dir, 'results'), 'w'));
    const oracle = buildC(ORACLE);
    await withProcess([oracle, join(dir, 'scripts'), join(dir, 'results'), String(scripts.length)], { fds: [] }, (pid) => {
      const status = reap(pid, 60_000);
      assert.is(status.kind === 'exited' ? status.code : -status.signal, 0, 'oracle exit status');
    });
    const results = readFileSync(join(dir, 'results'));
    let blocked = 0;
    let errors = 0;
    scripts.forEach((s, i) => {
      const slot = results.subarray(i * 65536, (i + 1) * 65536);
      const got = slot.subarray(0, slot.indexOf(0)).toString().trimEnd().split('\n');
      if (got.join('\n') !== s.expected.join('\n')) {
        const at = got.findIndex((line, k) => line !== s.expected[k]);
        assert.fixture(
          got.join('\n'),
          s.expected.join('\n'),
          `script ${i}: first difference at line ${at} (op: ${at < s.ops.length ? s.ops[at].join(' ') : 'final state'}); script: ${s.ops.map((op) => op.join(' ')).join('; ')}`,
        );
      }
      if (s.expected.includes('B')) blocked++;
      errors += s.expected.filter((l) => l.startsWith('E ')).length;
    });
    // The scripts must reach the interesting corners, not only the happy path.
    assert.ok(blocked > 10, `only ${blocked} scripts blocked`);
    assert.ok(errors > 200, `only ${errors} calls failed`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------
// Named kernel rules (each one also checked on this machine: docs/simulator.md).

function proc(soft = 16, hard = 32, world = new SimWorld()): SimProcess {
  return new SimProcess(world, { soft, hard });
}

function throwsErrno(fn: () => unknown, errno: string): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, SimError);
    assert.is((err as SimError).errno, errno, (err as Error).message);
    return;
  }
  assert.unreachable(`expected ${errno}`);
}

test('fd allocation: lowest free below the soft limit, EMFILE at it; pipe2 needs two', () => {
  const p = proc(5);
  p.adoptForeign(0);
  p.adoptForeign(2);
  assert.equal(p.pipe2(0), [1, 3]);
  throwsErrno(() => p.pipe2(0), 'EMFILE');
  assert.is(p.open('/proc/self/fd/1', O_RDONLY), 4);
  throwsErrno(() => p.dupfd(1, 0, false), 'EMFILE');
  throwsErrno(() => p.dupfd(1, 5, false), 'EINVAL');
  throwsErrno(() => p.dupfd(9, 0, false), 'EBADF');
  p.close(3);
  assert.is(p.dupfd(1, 2, true), 3);
  assert.is(p.get(3)!.cloexec, true);
});

test('dup2 to itself changes nothing; dup3 to itself is EINVAL; dup2 replaces silently', () => {
  const p = proc();
  const [r, w] = p.pipe2(O_CLOEXEC);
  assert.is(p.dup2(r, r), r);
  assert.is(p.get(r)!.cloexec, true);
  throwsErrno(() => p.dup2(9, 9), 'EBADF');
  throwsErrno(() => p.dup3(r, r, true), 'EINVAL');
  throwsErrno(() => p.dup2(r, 16), 'EBADF');
  p.dup2(w, r); // the read end's only fd goes: the pipe now has no reader
  throwsErrno(() => p.write(w, new Uint8Array(1)), 'EPIPE');
  assert.is(p.get(r)!.desc, p.get(w)!.desc);
  assert.is(p.get(r)!.cloexec, false);
});

test('pipe2: read end first, O_DIRECT only on the write end, no O_LARGEFILE; reopen adds it', () => {
  const p = proc();
  const [r, w] = p.pipe2(O_NONBLOCK | O_DIRECT);
  assert.is(p.get(r)!.desc.flags, O_RDONLY | O_NONBLOCK);
  assert.is(p.get(w)!.desc.flags, O_WRONLY | O_NONBLOCK | O_DIRECT);
  throwsErrno(() => p.pipe2(O_APPEND), 'EINVAL');
  const again = p.open(`/proc/self/fd/${r}`, O_RDWR);
  assert.is(p.get(again)!.desc.flags, O_RDWR | O_LARGEFILE);
  assert.is(p.get(again)!.desc.pipe, p.get(r)!.desc.pipe);
  assert.is.not(p.get(again)!.desc, p.get(r)!.desc);
  throwsErrno(() => p.open(`/proc/self/fd/${r}`, O_RDONLY | O_DIRECT), 'EINVAL');
  p.setfl(again, O_DIRECT | O_RDONLY); // F_SETFL keeps the access mode and O_LARGEFILE
  assert.is(p.get(again)!.desc.flags, O_RDWR | O_LARGEFILE | O_DIRECT);
});

test('FIFO opens: who blocks, ENXIO, and a FIFO whose last description closes loses its bytes', () => {
  const world = new SimWorld();
  world.add('/f', 'fifo');
  const p = proc(16, 32, world);
  throwsErrno(() => p.open('/f', O_RDONLY), 'WOULDBLOCK');
  throwsErrno(() => p.open('/f', O_WRONLY), 'WOULDBLOCK');
  throwsErrno(() => p.open('/f', O_WRONLY | O_NONBLOCK), 'ENXIO');
  const r = p.open('/f', O_RDONLY | O_NONBLOCK);
  const w = p.open('/f', O_WRONLY);
  p.write(w, new Uint8Array(10));
  p.close(r);
  assert.is(p.get(w)!.desc.pipe!.queued, 10); // bytes stay while a writer is open
  p.close(w);
  const rw = p.open('/f', O_RDWR);
  assert.is(p.get(rw)!.desc.pipe!.queued, 0);
  assert.is(p.get(rw)!.desc.kind, 'fifo');
});

test('pipe sizes: rounding, EBUSY below the queued buffers, EPERM above pipe-max-size', () => {
  const p = proc();
  const [r, w] = p.pipe2(O_DIRECT);
  assert.is(p.setPipeSize(r, 5000), 8192);
  assert.is(p.setPipeSize(r, 0), 4096);
  throwsErrno(() => p.setPipeSize(r, (1 << 20) + 1), 'EPERM');
  assert.is(p.setPipeSize(w, 16384), 16384);
  for (let i = 0; i < 3; i++) p.write(w, new Uint8Array(1)); // three packets, three buffers
  throwsErrno(() => p.setPipeSize(r, 8192), 'EBUSY');
  p.write(w, new Uint8Array(1));
  throwsErrno(() => p.write(w, new Uint8Array(1)), 'WOULDBLOCK');
  p.setfl(w, 0);
  throwsErrno(() => p.write(w, new Uint8Array(1)), 'WOULDBLOCK'); // packets are never merged into
});

test('prlimit: soft <= hard, the hard limit only goes down, soft may drop below open fds', () => {
  const p = proc(16, 32);
  p.adoptForeign(10);
  throwsErrno(() => p.prlimit(20, 10), 'EINVAL');
  throwsErrno(() => p.prlimit(16, 33), 'EPERM');
  p.prlimit(4, 30);
  assert.equal(p.rlimit, { soft: 4, hard: 30 });
  assert.is(p.dup2(10, 10), 10);
  throwsErrno(() => p.dup2(10, 5), 'EBADF');
  throwsErrno(() => p.prlimit(4, 31), 'EPERM');
});

// ---------------------------------------------------------------------------------------
// verify() on hand-written plans.

const DATA = Buffer.from('hello, pipe');

/** fds 3 and 4: a pipe with bytes queued; fd 5: a dup of the write end, close-on-exec. */
const TABLE: FdTable = {
  fds: [
    { fd: 3, desc: 10, cloexec: false },
    { fd: 4, desc: 11, cloexec: false },
    { fd: 5, desc: 11, cloexec: true },
  ],
  descs: [
    { id: 10, kind: 'pipe', flags: O_RDONLY, pipe: 1 },
    { id: 11, kind: 'pipe', flags: O_WRONLY | O_NONBLOCK, pipe: 1 },
  ],
  pipes: [{ id: 1, capacity: 8192, data: DATA }],
  rlimit: { soft: 1024, hard: 4096 },
};
const FRESH: PlanTarget = { fds: [0, 1, 2], rlimit: { soft: 1024, hard: 4096 }, mode: 'fresh' };

function plan(ops: Op[], lowerBound = 1): PlanRecords {
  return { ops, lowerBound, commit: ops.findIndex((o) => o.op === 'commit'), warnings: [] };
}

const GOOD: Op[] = [
  { op: 'pipe2', flags: 0, fds: [3, 4], pipe: 1 },
  { op: 'setpipesz', fd: 3, size: 8192 },
  { op: 'write', fd: 4, pipe: 1, bytes: 11 },
  { op: 'setfl', fd: 4, flags: O_NONBLOCK },
  { op: 'dupfd', from: 4, min: 5, cloexec: true, fd: 5 },
  { op: 'commit' },
  { op: 'close', fd: 0 },
  { op: 'close', fd: 1 },
  { op: 'close', fd: 2 },
];

function replaced(ops: Op[], at: number, op: Op | null): Op[] {
  const out = [...ops];
  if (op) out[at] = op;
  else out.splice(at, 1);
  return out;
}

test('verify accepts an exact plan', () => {
  assert.equal(verify(TABLE, FRESH, plan(GOOD)), { ok: true });
});

test('verify names the op whose fd numbers the kernel would not give', () => {
  const r = verify(TABLE, FRESH, plan(replaced(GOOD, 4, { op: 'dupfd', from: 4, min: 3, cloexec: true, fd: 6 })));
  assert.is(r.ok, false);
  assert.is(!r.ok && r.op, 4);
  assert.match(!r.ok ? r.reason : '', 'the kernel gives 5');
});

test('verify refuses touching target fds before the commit, allows it after', () => {
  const early = [...GOOD.slice(0, 5), { op: 'close', fd: 0 } as Op, { op: 'commit' } as Op, ...GOOD.slice(7)];
  const r = verify(TABLE, FRESH, plan(early));
  assert.is(!r.ok && r.op, 5);
  assert.match(!r.ok ? r.reason : '', "touches the target's fd 0");
  const lowered = verify(TABLE, FRESH, plan([{ op: 'prlimit', soft: 1024, hard: 2048 }, ...GOOD]));
  assert.match(lowered.ok ? '' : lowered.reason, 'hard limit before the commit');
});

test('verify checks bytes, packets, flags, close-on-exec, sharing, leftovers and the limit', () => {
  const reason = (ops: Op[], table = TABLE, target = FRESH): string => {
    const r = verify(table, target, plan(ops));
    return r.ok ? 'ok' : r.reason;
  };
  assert.match(reason(replaced(GOOD, 2, null)), 'holds 0 bytes');
  assert.match(reason([...GOOD.slice(0, 3), { op: 'write', fd: 4, pipe: 1, bytes: 11 }, ...GOOD.slice(3)]), 'second time');
  assert.match(reason(replaced(GOOD, 3, null)), 'has flags O_WRONLY');
  assert.match(reason(replaced(GOOD, 4, { op: 'dupfd', from: 4, min: 5, cloexec: false, fd: 5 })), 'close-on-exec');
  assert.match(reason(replaced(GOOD, 4, { op: 'open', desc: 11, path: '/proc/self/fd/4', via: 4, flags: O_WRONLY | O_CLOEXEC, fd: 5 })), 'share description 11');
  assert.match(reason(GOOD.slice(0, -1)), 'fd 2 is open at the end');
  assert.match(reason(replaced(GOOD, 1, null)), 'capacity 65536');
  const limited = { ...FRESH, rlimit: { soft: 100, hard: 2000 } };
  assert.match(reason(GOOD, TABLE, limited), 'RLIMIT_NOFILE is 100/2000 at the end, not 1024/2000');
  assert.is(reason([{ op: 'prlimit', soft: 1024, hard: 2000 }, ...GOOD], TABLE, limited), 'ok');
  const packets: FdTable = { ...TABLE, pipes: [{ id: 1, capacity: 8192, data: DATA, packets: [5, 6] }] };
  assert.match(reason(GOOD, packets), 'packets');
  assert.is(reason(replaced(GOOD, 0, { op: 'pipe2', flags: O_DIRECT, fds: [3, 4], pipe: 1 }), packets), 'ok');
});

test('verify makes the same checks when ids and pipe ids are far apart (looked up in a Map, not an array)', () => {
  const D0 = 2_000_000_000, D1 = 7, P = 1_500_000_000;
  const far: FdTable = {
    fds: TABLE.fds.map((f) => ({ ...f, desc: f.desc === 10 ? D0 : D1 })),
    descs: [
      { id: D0, kind: 'pipe', flags: O_RDONLY, pipe: P },
      { id: D1, kind: 'pipe', flags: O_WRONLY | O_NONBLOCK, pipe: P },
    ],
    pipes: [{ id: P, capacity: 8192, data: DATA }],
    rlimit: TABLE.rlimit,
  };
  const ops = GOOD.map((op) => (op.op === 'pipe2' || op.op === 'write' ? { ...op, pipe: P } : op));
  const reason = (list: Op[]): string => {
    const r = verify(far, FRESH, plan(list));
    return r.ok ? 'ok' : r.reason;
  };
  assert.is(reason(ops), 'ok');
  assert.match(reason([...ops.slice(0, 3), { op: 'write', fd: 4, pipe: P, bytes: 11 }, ...ops.slice(3)]), 'second time');
  assert.match(reason(replaced(ops, 4, { op: 'open', desc: D1, path: '/proc/self/fd/4', via: 4, flags: O_WRONLY | O_CLOEXEC, fd: 5 })), `share description ${D1}`);
  assert.match(reason(replaced(ops, 2, null)), 'holds 0 bytes');
  assert.match(reason(replaced(ops, 2, { op: 'write', fd: 4, pipe: 1, bytes: 11 })), 'the image has no pipe 1');
});

test("verify in 'into' mode: the target's other fds stay, untouched", () => {
  const into: PlanTarget = { fds: [0, 1, 2, 4], rlimit: { soft: 1024, hard: 4096 }, mode: 'into' };
  // fd 4 is the target's: the pipe is made at 3 and 5, moved to 4 after the commit.
  const ops: Op[] = [
    { op: 'pipe2', flags: 0, fds: [3, 5], pipe: 1 },
    { op: 'setpipesz', fd: 3, size: 8192 },
    { op: 'write', fd: 5, pipe: 1, bytes: 11 },
    { op: 'setfl', fd: 5, flags: O_NONBLOCK },
    { op: 'setfd', fd: 5, cloexec: true },
    { op: 'commit' },
    { op: 'dup2', from: 5, to: 4, cloexec: false },
  ];
  assert.equal(verify(TABLE, into, plan(ops)), { ok: true });
  const closed = verify(TABLE, into, plan([...ops, { op: 'close', fd: 1 }]));
  assert.match(closed.ok ? '' : closed.reason, "the target's fd 1 was closed");
  const moved = verify(TABLE, into, plan([...ops, { op: 'dup2', from: 2, to: 1, cloexec: false }]));
  assert.match(moved.ok ? '' : moved.reason, "the target's fd 1 no longer refers to its own file");
  const exact = verify(TABLE, { ...into, mode: 'into-exact' }, plan(ops));
  assert.match(exact.ok ? '' : exact.reason, 'fd 0 is open at the end');
});

test.run();
