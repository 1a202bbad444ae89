// The edges of issue 9 ("Other edges found"), each reproduced on real processes: another user's
// pipe held only by its write end, code running from MAP_SHARED file mappings while cr injects,
// --into a process under seccomp, heads that must be refused before any process exists,
// terminal escapes in a comm, and a thread id given as a pid.
import { oneProcess } from '../src/model/fdtable.js';
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeFd, openFile, readFd, writeFd } from '../bridge/file.js';
import { pipe2 } from '../bridge/pipe.js';
import { encodeImage, IMAGE_FORMAT_VERSION, IMAGE_MAGIC, readImage, type Image } from '../src/image/format.js';
import { O_CLOEXEC, O_NONBLOCK, O_RDWR, type FdTable } from '../src/model/fdtable.js';
import { processMutants, withHead } from '../src/imagefuzz/process.js';
import { cr, crProcess } from './helpers/cli.js';
import { asUser, NOBODY, unprivilegedTest } from './helpers/unprivileged.js';
import { buildC, ensureReaped, withProcess, waitInSyscall } from './helpers/processes.js';

const dir = mkdtempSync(join(tmpdir(), 'cr-edges-'));
chmodSync(dir, 0o777); // nobody writes its images here too
test.after(() => rmSync(dir, { recursive: true, force: true }));

const NANOSLEEP = 35;
const RESTART_SYSCALL = 219;
const PAUSE = 34;

const status = (pid: number, field: string): string => new RegExp(`^${field}:\\s*(.*)$`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '';
const alive = (pid: number): boolean => !/^[ZX]/.test(status(pid, 'State'));
const oneLine = (text: string): boolean => /^[^\n]+\n$/.test(text);

/** An fd-table image: /dev/null at fd 0, made as `comm`. */
function nullImage(name: string, comm = 'x'): string {
  const table: FdTable = { fds: [{ fd: 0, desc: 0, cloexec: false }], descs: [{ id: 0, kind: 'chr', flags: 0o100000, path: '/dev/null' }], pipes: [], rlimit: { soft: 1024, hard: 1024 } };
  const image: Image = { magic: IMAGE_MAGIC, formatVersion: IMAGE_FORMAT_VERSION, toolVersion: '0.1.0', kernel: 'test', process: { pid: 1, comm, cmdline: [], uid: 0 }, table: oneProcess(table, 1), dropped: [] };
  const file = join(dir, name);
  writeFileSync(file, encodeImage(image), { mode: 0o600 });
  return file;
}

/** Poll until pid runs `comm` as `uid` (setpriv has exec'd the program). */
function waitExecd(pid: number, comm: string, uid: number): void {
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 2500; i++) {
    if (status(pid, 'Name') === comm && status(pid, 'Uid').split(/\s+/)[0] === String(uid)) return;
    Atomics.wait(sleeper, 0, 0, 2);
  }
  throw new Error(`pid ${pid} is not ${comm} as uid ${uid}`);
}

// (1) `sudo -u nobody prog | cat`: the pipe's inode is root's, 0600; nobody's cr may not open a
// read end through /proc, and tee() needs one. An empty pipe is dumped; one with bytes refused.
unprivilegedTest('nobody dumps its own process whose pipe root made: empty dumps, bytes refused in one line and kept', async () => {
  const devNull = openFile('/dev/null', O_RDWR | O_CLOEXEC);
  const [r, w] = pipe2(O_CLOEXEC | O_NONBLOCK);
  try {
    await withProcess([...asUser(NOBODY), 'sleep', '1000'], { fds: [[devNull, 0], [w, 1], [devNull, 2]] }, async (pid) => {
      waitExecd(pid, 'sleep', NOBODY);
      for (const args of [['--fds-only'], []]) {
        const run = crProcess(['dump', ...args, '--pid', String(pid), '-o', join(dir, `nobody${args.length}.img`)], { uid: NOBODY });
        assert.is(run.code, 0, `${args}: ${run.stderr}`);
        assert.match(run.stdout, /1 pipes? holding 0 bytes/);
      }
      writeFd(w, Buffer.from('hello'));
      const run = crProcess(['dump', '--fds-only', '--pid', String(pid), '-o', join(dir, 'nobody-bytes.img')], { uid: NOBODY });
      assert.is(run.code, 1, run.stderr);
      assert.ok(oneLine(run.stderr), run.stderr);
      assert.match(run.stderr, /holds 5 bytes cr may not read/);
      assert.ok(alive(pid));
      const buf = Buffer.alloc(16);
      assert.is(buf.subarray(0, readFd(r, buf)).toString(), 'hello');
    });
  } finally {
    closeFd(r);
    closeFd(w);
    closeFd(devNull);
  }
});

// (2) The process runs from a MAP_SHARED file mapping, mapped below its ELF so that it is the
// first executable mapping (where injection used to patch its syscall instruction): the code
// loops in nanosleep. Read-only, a patch failed with EIO; writable, it went into the file.
const SHARED_CODE = `
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int rw = strcmp(argv[2], "rw") == 0;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGUSR1);
  sigaddset(&set, SIGWINCH);
  sigprocmask(SIG_BLOCK, &set, 0);
  int fd = open(argv[1], rw ? O_RDWR : O_RDONLY);
  void *code = mmap((void *)0x10000000, 4096, PROT_READ | PROT_EXEC | (rw ? PROT_WRITE : 0), MAP_SHARED | MAP_FIXED_NOREPLACE, fd, 0);
  if (fd < 0 || code == MAP_FAILED) return 1;
  close(fd);
  ((void (*)(void))code)();
  return 0;
}
`;

/** lea rdi,[rip+0x11]; xor esi,esi; mov eax,35; syscall; jmp back: nanosleep(&{1 s}, 0) forever. */
function sleeperCode(): Buffer {
  const code = Buffer.alloc(4096, 0);
  Buffer.from('488d3d1100000031f6b8230000000f05ebee', 'hex').copy(code, 0);
  code.writeBigInt64LE(1n, 0x18);
  return code;
}

for (const mode of ['ro', 'rw']) {
  test(`code running from a ${mode === 'ro' ? 'read-only' : 'writable'} MAP_SHARED file mapping: dump and --into leave the file and the mask alone`, async () => {
    const file = join(dir, `code-${mode}.bin`);
    writeFileSync(file, sleeperCode());
    const mtime = statSync(file).mtimeMs;
    await withProcess([buildC(SHARED_CODE), file, mode], { fds: [] }, async (pid) => {
      waitInSyscall(pid, [NANOSLEEP, RESTART_SYSCALL]);
      const mask = status(pid, 'SigBlk');
      assert.is(mask, '0000000008000200');
      const fdsImage = join(dir, `shared-${mode}.img`);
      const runs = [
        await cr(['dump', '--pid', String(pid), '-o', join(dir, `shared-${mode}-whole.img`), '--force']),
        await cr(['dump', '--fds-only', '--pid', String(pid), '-o', fdsImage, '--force']),
        await cr(['restore', fdsImage, '--into', String(pid)]),
      ];
      for (const run of runs) {
        assert.is(run.code, 0, run.stderr);
        assert.is(readFileSync(file).compare(sleeperCode()), 0, 'the file holds its own bytes');
        assert.is(statSync(file).mtimeMs, mtime);
      }
      waitInSyscall(pid, [NANOSLEEP, RESTART_SYSCALL]);
      assert.is(status(pid, 'SigBlk'), mask);
      assert.is(readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').filter((l) => / rwxp 00000000 00:00 0 /.test(l)).length, 0, 'the area is gone');
    });
  });
}

// A process that may not gain executable memory refuses the injector's area: its calls run
// from the syscall instruction found in its vdso, which is only read.
const MDWE_CODE = `
#include <sys/prctl.h>
#include <unistd.h>
int main(void) {
  if (prctl(65 /* PR_SET_MDWE */, 1 /* PR_MDWE_REFUSE_EXEC_GAIN */, 0, 0, 0)) return 1;
  for (;;) pause();
}
`;

test('--into a process under PR_SET_MDWE: restored without an executable area, mask and maps as before', async () => {
  await withProcess([buildC(MDWE_CODE)], { fds: [] }, async (pid) => {
    waitInSyscall(pid, PAUSE);
    const maps = readFileSync(`/proc/${pid}/maps`, 'utf8');
    const run = await cr(['restore', nullImage('mdwe.img'), '--into', String(pid)]);
    assert.is(run.code, 0, run.stderr);
    assert.is(readlinkSync(`/proc/${pid}/fd/0`), '/dev/null');
    assert.is(readFileSync(`/proc/${pid}/maps`, 'utf8'), maps);
    assert.is(status(pid, 'SigBlk'), '0000000000000000');
    assert.is(status(pid, 'TracerPid'), '0');
  });
});

// (3) A filter that kills the process for dup2: the replay would make it die of SIGSYS.
const SECCOMP_CODE = `
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
  struct sock_filter f[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_dup2, 0, 1),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = { sizeof f / sizeof f[0], f };
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) return 1;
  for (;;) pause();
}
`;

test('--into a process under seccomp is refused up front; the process lives on untouched', async () => {
  const image = nullImage('seccomp.img');
  await withProcess([buildC(SECCOMP_CODE)], { fds: [] }, async (pid) => {
    waitInSyscall(pid, PAUSE);
    assert.is(status(pid, 'Seccomp'), '2');
    const run = await cr(['restore', image, '--into', String(pid)]);
    assert.is(run.code, 2, run.stderr);
    assert.ok(oneLine(run.stderr), run.stderr);
    assert.match(run.stderr, /seccomp/);
    waitInSyscall(pid, PAUSE);
    assert.ok(alive(pid));
  });
});

// (4) Heads that no process can have are refused before a restart starts anything: every
// well-typed lie of fuzz-image's proc-lie family, through `restore IMAGE` (a restart), `show`
// and `plan`. Before the check, 42 of these 45 were accepted; a pending SIGKILL was exit 70.
const PAUSER_CODE = `
#include <unistd.h>
int main(void) { for (;;) pause(); }
`;

test('restart, show and plan refuse every impossible head (pending SIGKILL, mappings out of range, ...) with exit 2', async () => {
  const image = join(dir, 'pauser.proc');
  await withProcess([buildC(PAUSER_CODE)], { fds: [] }, async (pid) => {
    waitInSyscall(pid, PAUSE);
    const run = await cr(['dump', '--pid', String(pid), '-o', image]);
    assert.is(run.code, 0, run.stderr);
  });
  const seed = { name: 'pauser.proc', bytes: readFileSync(image) };
  const opts = { seed: 1, flips: 0, splices: 0, refits: 0, truncations: 0, huge: false };
  const lies = [...processMutants(seed, opts, ['restart'])].filter((m) => m.family === 'proc-lie');
  assert.ok(lies.length >= 40, `${lies.length} lies`);
  for (const lie of lies) {
    const file = join(dir, 'lie.proc');
    writeFileSync(file, lie.bytes(), { mode: 0o600 });
    for (const args of [['restore', file], ['show', file], ['plan', file]]) {
      const run = await cr(args);
      assert.is(run.code, 2, `${lie.name}: ${args[0]}: exit ${run.code}: ${run.stderr}`);
      assert.ok(oneLine(run.stderr), `${lie.name}: ${run.stderr}`);
    }
  }
  const kill = lies.find((m) => m.name.endsWith('a pending SIGKILL (shared)'))!;
  writeFileSync(join(dir, 'kill.proc'), kill.bytes());
  const run = await cr(['restore', join(dir, 'kill.proc')]);
  assert.match(run.stderr, /head\.signals\.pending\[\d+\] is SIGKILL/);
});

test('restart refuses a file mapping whose path now names a FIFO, at once and with exit 2', async () => {
  const fifo = join(dir, 'mapped.fifo');
  execFileSync('mkfifo', [fifo]);
  const seed = readFileSync(join(dir, 'pauser.proc'));
  const st = statSync(fifo);
  const file = join(dir, 'fifo.proc');
  const lie = withHead(seed, (head) => {
    const mapping = head.mappings.find((m: { file: unknown }) => m.file);
    mapping.file = { ...mapping.file, path: fifo, dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
  });
  writeFileSync(file, lie, { mode: 0o600 });
  const run = await cr(['restore', file]);
  assert.is(run.code, 2, run.stderr);
  assert.match(run.stderr, /is not a regular file\n$/);
});

test('restart refuses a vdso other than this kernel\'s in one line', async () => {
  const file = join(dir, 'vdso.proc');
  writeFileSync(file, withHead(readFileSync(join(dir, 'pauser.proc')), (head) => void (head.vdsoSha256 = Buffer.alloc(32, 7))), { mode: 0o600 });
  const run = await cr(['restore', file]);
  assert.is(run.code, 1, run.stderr);
  assert.match(run.stderr, /^cr restore: the vdso of this kernel differs[^\n]*\n$/);
});

// (5) A comm and file names chosen to attack the terminal: an escape sequence (clear the screen)
// and a newline followed by a forged line of cr's. Every message shows them escaped, on one line.
const ESCAPE_CODE = `
#include <fcntl.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>
int main(int argc, char **argv) {
  prctl(PR_SET_NAME, "\\033[2J\\ncr: FORGED");
  if (argc > 1) {
    if (open(argv[1], O_RDWR | O_CREAT, 0600) < 0) return 1;
    unlink(argv[1]);
  }
  for (;;) pause();
}
`;

const FORGED = /\x1b|\ncr: FORGED/;

test('a comm and paths with escape sequences and newlines are escaped in dump, restore and plan messages', async () => {
  const exe = buildC(ESCAPE_CODE);
  const whole = join(dir, 'escape.proc');
  await withProcess([exe], { fds: [] }, async (pid) => {
    waitInSyscall(pid, PAUSE);
    const fds = await cr(['dump', '--fds-only', '--pid', String(pid), '-o', join(dir, 'escape.img')]);
    const all = await cr(['dump', '--pid', String(pid), '-o', whole]);
    for (const run of [fds, all]) {
      assert.is(run.code, 0, run.stderr);
      assert.ok(oneLine(run.stdout), run.stdout);
      assert.not.match(run.stdout, FORGED);
      assert.ok(run.stdout.includes('(\\x1b[2J\\ncr: FORGED)'), run.stdout);
    }
  });
  const restart = await cr(['restore', whole, '--detach']);
  const restarted = Number(/as pid (\d+)/.exec(restart.stderr)?.[1]);
  try {
    assert.is(restart.code, 0, restart.stderr);
    assert.ok(oneLine(restart.stderr), restart.stderr);
    assert.not.match(restart.stderr, FORGED);
  } finally {
    if (restarted > 0) ensureReaped(restarted);
  }
  // A deleted file whose name carries the same attack: dumped with its contents, shown escaped.
  await withProcess([exe, join(dir, '\x1b[2J\ncr: FORGED')], { fds: [] }, async (pid) => {
    waitInSyscall(pid, PAUSE);
    const run = await cr(['dump', '--fds-only', '--pid', String(pid), '-o', join(dir, 'escape-deleted.img')]);
    assert.is(run.code, 0, run.stderr);
    assert.not.match(run.stdout, FORGED);
    const shown = await cr(['show', join(dir, 'escape-deleted.img')]);
    assert.is(shown.code, 0, shown.stderr);
    assert.not.match(shown.stdout, FORGED);
    assert.match(shown.stdout, /\\x1b\[2J\\ncr: FORGED \(deleted\)/);
  });
  // Image paths: plan refuses one under /proc, restore fails to open a missing one.
  const image = (name: string, path: string): string => {
    const file = nullImage(name);
    const img = readImage(file);
    img.table.descs[0] = { id: 0, kind: 'file', flags: 0o100000, path, offset: 0 };
    writeFileSync(file, encodeImage(img), { mode: 0o600 });
    return file;
  };
  const runs = [
    await cr(['plan', image('escape-proc.img', '/proc/\x1b[2J\ncr: FORGED')]),
    await cr(['restore', image('escape-missing.img', join(dir, 'missing', '\x1b[2J\ncr: FORGED')), '--', '/bin/true']),
  ];
  // A path under /proc is bad input (2); a path that fails to open fails the restore (1).
  for (const [i, run] of runs.entries()) {
    assert.is(run.code, [2, 1][i], run.stderr);
    assert.ok(oneLine(run.stderr), run.stderr);
    assert.not.match(run.stderr, FORGED);
    assert.ok(run.stderr.includes('\\x1b[2J\\ncr: FORGED'), run.stderr);
  }
});

// (6) /proc/TID answers like a process; cr refuses it and names the process.
const THREAD_CODE = `
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
static void *sleeper(void *arg) {
  printf("%ld\\n", (long)syscall(SYS_gettid));
  fflush(stdout);
  for (;;) pause();
  return arg;
}
int main(void) {
  pthread_t t;
  pthread_create(&t, 0, sleeper, 0);
  for (;;) pause();
}
`;

test('dump --pid and restore --into of a thread id are refused, naming the process', async () => {
  const out = join(dir, 'tid.out');
  const fd = openFile(out, 0o1101 | O_CLOEXEC, 0o600); // O_WRONLY|O_CREAT|O_TRUNC
  try {
    await withProcess([buildC(THREAD_CODE, ['-pthread'])], { fds: [[fd, 1]] }, async (pid) => {
      const sleeper = new Int32Array(new SharedArrayBuffer(4));
      while (readFileSync(out, 'utf8') === '') Atomics.wait(sleeper, 0, 0, 2);
      const tid = Number(readFileSync(out, 'utf8').trim());
      assert.ok(tid !== pid);
      const dump = await cr(['dump', '--pid', String(tid), '-o', join(dir, 'tid-dump.img')]);
      assert.is(dump.code, 2, dump.stderr);
      assert.ok(oneLine(dump.stderr), dump.stderr);
      assert.ok(dump.stderr.includes(`${tid} is a thread of process ${pid}`), dump.stderr);
      const into = await cr(['restore', nullImage('tid.img'), '--into', String(tid)]);
      assert.is(into.code, 2, into.stderr);
      assert.ok(into.stderr.includes(`${tid} is a thread of process ${pid}`), into.stderr);
      assert.is(status(pid, 'TracerPid'), '0');
      assert.ok(alive(pid));
    });
  } finally {
    closeFd(fd);
  }
});

test.run();
