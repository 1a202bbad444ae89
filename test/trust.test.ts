// The trust boundary (docs/trust.md): an image gives a restored process at most what its author,
// the owner of the image file, could get. Root runs cr on images of a process of nobody's; owned
// by nobody, each crafted head is refused before any process exists (exit 2, one line naming the
// field), and each path nobody may not open fails to open (exit 1, one line), with nothing left
// running. The same image owned by root, which vouches for it, comes back.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { kill, SIGUSR1, SIGUSR2 } from '../bridge/signal.js';
import { spawn } from '../bridge/spawn.js';
import { checkpointProcess } from '../src/checkpoint/checkpoint.js';
import { ProcessImage, ProcessImageWriter } from '../src/image/process-format.js';
import type { ProcessHead } from '../src/image/process-head.js';
import { listFds } from '../src/proc/fds.js';
import { cr, crProcess, type Run } from './helpers/cli.js';
import { asUser, NOBODY } from './helpers/unprivileged.js';
import { buildC, ensureReaped, waitInSyscall } from './helpers/processes.js';

const SYS_pause = 34;
const SYS_clock_nanosleep = 230;
const RLIMIT_NOFILE = 7;
const RLIMIT_MEMLOCK = 8;

// argv[1]: "plain" (pause), "fd" (pause holding fd 3), "map" (fd 3 mapped shared and writable,
// then closed). Restarted, it pauses on where it was.
const HOLDER = `#include <sys/mman.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "map") == 0) {
    if (mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, 3, 0) == MAP_FAILED) return 1;
    close(3);
  }
  for (;;) pause();
}
`;
const holder = buildC(HOLDER);

// An --into target that reports, on SIGUSR2, its dumpable flag and parent-death signal (SIGUSR1).
const REPORTER = buildC(`#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>
static void report(int s) {
  int sig = 0;
  char line[32];
  (void)s;
  prctl(PR_GET_PDEATHSIG, &sig);
  int n = snprintf(line, sizeof line, "%d %d\\n", prctl(PR_GET_DUMPABLE), sig);
  write(1, line, n);
}
static void quiet(int s) { (void)s; }
int main(void) {
  signal(SIGUSR1, quiet);
  signal(SIGUSR2, report);
  prctl(PR_SET_PDEATHSIG, SIGUSR1);
  for (;;) pause();
}
`);
chmodSync(holder, 0o755);
/** A word in every holder's command line, different in each run: other runs of this file (other checkouts) hold their own. */
const RUN_TAG = `cr-trust-run-${process.pid}-${Date.now()}`;

/** Pids of this run's holders now (the original, a restart, a husk turned holder): the restored memory keeps its argv. */
function holders(): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'latin1');
        return readFileSync(`/proc/${d}/cmdline`, 'latin1').split('\0').includes(RUN_TAG) && !/\) [ZX] /.test(stat);
      } catch {
        return false;
      }
    })
    .map(Number);
}

const pause = new Int32Array(new SharedArrayBuffer(4));

/** Kill pids (restarted, so not our children: init reaps them) and wait until they are gone. */
function stop(pids: number[]): void {
  for (const pid of pids) ensureReaped(pid);
  const deadline = Date.now() + 10_000;
  while (holders().some((p) => pids.includes(p))) {
    if (Date.now() > deadline) assert.unreachable(`pids ${pids.join(', ')} still running`);
    Atomics.wait(pause, 0, 0, 5);
  }
}

class Scene {
  /** 0755, root's: no one else could replace an image in it */
  readonly dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-trust-')));
  /** a 0700 directory of root's with a root-only 0600 file in it, and a subdirectory */
  readonly vault = join(this.dir, 'vault');
  readonly secret = join(this.vault, 'secret');
  private readonly pids: number[] = [];

  constructor() {
    chmodSync(this.dir, 0o755);
    mkdirSync(this.vault, { mode: 0o700 });
    mkdirSync(join(this.vault, 'inner'));
    writeFileSync(this.secret, 'root only\n', { mode: 0o600 });
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  /** The holder as nobody (fd 3 the secret opened read-write by root, for "fd" and "map"), dumped by root, killed. */
  dumpHolder(mode: 'plain' | 'fd' | 'map', image: string): void {
    const devnull = openSync('/dev/null', 'r+');
    const secret = mode === 'plain' ? -1 : openSync(this.secret, 'r+');
    let pid = 0;
    try {
      const fds: Array<[number, number]> = [[devnull, 0], [devnull, 1], [devnull, 2], ...(secret >= 0 ? [[secret, 3] as [number, number]] : [])];
      pid = spawn([...asUser(NOBODY), holder, mode, RUN_TAG], { fds, cwd: this.dir });
      this.pids.push(pid);
      waitInSyscall(pid, SYS_pause);
      checkpointProcess(pid, image, { leaveStopped: true });
    } finally {
      if (pid) ensureReaped(pid);
      closeSync(devnull);
      if (secret >= 0) closeSync(secret);
    }
  }

  /** `cr restore IMAGE --detach` as root (in this process); a process it started is killed at the end. */
  async restore(image: string, ...more: string[]): Promise<Run> {
    const r = await cr(['restore', image, '--detach', ...more]);
    if (r.code === 0) this.pids.push(Number(r.stdout.trim()));
    return r;
  }

  end(): void {
    stop(this.pids);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

async function scene(fn: (s: Scene) => Promise<void>): Promise<void> {
  const s = new Scene();
  try {
    await fn(s);
  } finally {
    s.end();
  }
}

/** Copy an image through the reader and writer (checksum recomputed), changing its head; owned by `owner`. */
function rewrite(from: string, to: string, owner: number, change: (head: ProcessHead) => ProcessHead): string {
  const reader = ProcessImage.read(from);
  const writer = ProcessImageWriter.create(to, { force: false });
  try {
    const head = change(structuredClone(reader.head));
    // A page run names its mapping by index: follow the mapping if the change moved it.
    const index = (old: number): number => head.mappings.findIndex((m) => m.start === reader.head.mappings[old]!.start);
    writer.tree(reader.tree);
    writer.fds(reader.fdImage);
    writer.head(head);
    for (const run of reader.pages()) writer.pages(index(run.mapping), run.addr, run.data);
    writer.commit();
  } finally {
    writer.abort();
  }
  chownSync(to, owner, owner);
  return to;
}

const same = (head: ProcessHead): ProcessHead => head;

/** A refusal: the exit code, one line matching `pattern`, and no holder running afterwards. */
function refused(r: Run, code: number, pattern: RegExp): void {
  assert.is(r.code, code, r.stderr);
  assert.match(r.stderr, pattern);
  assert.match(r.stderr, /^cr restore: [^\n]+\n$/, 'one line');
  assert.match(r.stderr, pattern);
  assert.equal(holders(), [], 'nothing left running');
}

/** The restarted process runs as `uid` and is the holder. */
function runsAs(r: Run, uid: number): void {
  assert.is(r.code, 0, r.stderr);
  const pid = Number(r.stdout.trim());
  assert.match(readFileSync(`/proc/${pid}/status`, 'latin1'), new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, 'm'));
  assert.ok(holders().includes(pid), 'the holder, restarted');
}

test('credentials the author (nobody) could not have are refused before any process exists; its own come back', () =>
  scene(async (s) => {
    const image = s.path('plain.img');
    s.dumpHolder('plain', image);
    const nobodys = (name: string, change: (head: ProcessHead) => ProcessHead): string => rewrite(image, s.path(name), NOBODY, change);
    const creds = (uid: number[], gid: number[], groups: number[]) => (head: ProcessHead): ProcessHead => ({ ...head, creds: { uid, gid, groups } });
    const N = NOBODY;
    // The control: nobody's own image of nobody's process.
    runsAs(await s.restore(nobodys('own.img', same)), NOBODY);
    stop(holders());
    refused(await s.restore(nobodys('saved0.img', creds([N, N, 0, N], [N, N, N, N], [])), '--allow-uid-change'), 2, /head\.creds\.uid\[2\] \(saved uid\) is 0, which the image's author \(uid 65534, owner of [^)]*\) could not have/);
    refused(await s.restore(nobodys('uid-1.img', creds([N, 0xffffffff, N, N], [N, N, N, N], []))), 2, /head\.creds\.uid\[1\] \(effective uid\) is -1 \("unchanged"\)/);
    refused(await s.restore(nobodys('gid-1.img', creds([N, N, N, N], [N, N, N, 0xffffffff], []))), 2, /head\.creds\.gid\[3\] \(filesystem gid\) is -1/);
    refused(await s.restore(nobodys('gid0.img', creds([N, N, N, N], [0, N, N, N], []))), 2, /head\.creds\.gid\[0\] \(real gid\) is 0, a group the image's author [^\n]* is not in/);
    refused(await s.restore(nobodys('group0.img', creds([N, N, N, N], [N, N, N, N], [0]))), 2, /head\.creds\.groups\[0\] is 0, a group/);
    // All-root credentials in an image whose process was nobody's: the two disagree.
    refused(await s.restore(nobodys('allroot.img', creds([0, 0, 0, 0], [0, 0, 0, 0], [])), '--allow-uid-change'), 2, /head\.process\.uid 65534 and head\.creds\.uid\[0\] \(real uid\) 0 disagree/);
    // The same all-root image owned by root is still refused: uid and credentials must agree.
    refused(await s.restore(rewrite(image, s.path('allroot-root.img'), 0, creds([0, 0, 0, 0], [0, 0, 0, 0], [])), '--allow-uid-change'), 2, /head\.process\.uid 65534 and head\.creds\.uid\[0\] \(real uid\) 0 disagree/);
    // A uid with no passwd entry (65533) has no groups: its image of its own process, restarted
    // by nobody's cr, names a gid its author is not known to have; refused before any process.
    const OTHER = NOBODY - 1;
    const others = rewrite(image, s.path('other.img'), OTHER, (h) => ({ ...h, process: { ...h.process, uid: OTHER }, creds: { uid: [OTHER, OTHER, OTHER, OTHER], gid: [OTHER, OTHER, OTHER, OTHER], groups: [] } }));
    chmodSync(others, 0o644);
    refused(crProcess(['restore', others, '--detach'], { uid: NOBODY }), 2, /head\.creds\.gid\[0\] \(real gid\) is 65533, a group the image's author \(uid 65533, [^)]*\) is not in \(it has no passwd entry and so no groups\)/);
    // daemon's image (uid 1, a passwd entry and group 1) of its own ids, restarted by nobody's cr:
    // the husk would be nobody's and could not open as daemon; refused before it exists.
    const DAEMON = 1;
    const daemons = rewrite(image, s.path('daemon.img'), DAEMON, (h) => ({ ...h, process: { ...h.process, uid: DAEMON }, creds: { uid: [1, 1, 1, 1], gid: [1, 1, 1, 1], groups: [] } }));
    chmodSync(daemons, 0o644);
    refused(crProcess(['restore', daemons, '--detach'], { uid: NOBODY }), 2, /the husk \(as cr's user\) opens files as uid 65534 and cannot open them as the image's author \(uid 1, owner of [^)]*\) instead/);
    // Root's cr restarts it: the husk opens as daemon, then becomes daemon.
    runsAs(await s.restore(daemons), DAEMON);
    // Root vouches for root-owned images: any ids agreeing with the process's uid.
    runsAs(await s.restore(rewrite(image, s.path('root-owned.img'), 0, creds([N, N, N, N], [N, 0, N, N], [0]))), NOBODY);
  }));

test('what an unprivileged author could not do: a mapping at 0, locked memory beyond RLIMIT_MEMLOCK, a hard limit above cr\'s', () =>
  scene(async (s) => {
    const image = s.path('plain.img');
    s.dumpHolder('plain', image);
    const nobodys = (name: string, change: (head: ProcessHead) => ProcessHead): string => rewrite(image, s.path(name), NOBODY, change);
    const atZero = { start: 0, end: 4096, prot: 1, kind: 'anon' as const, name: '', file: null, shm: null, unnamed: null, vmflags: ['rd', 'mr', 'mw', 'me'], guards: [] };
    refused(await s.restore(nobodys('zero.img', (h) => ({ ...h, mappings: [atZero, ...h.mappings] }))), 2, /head\.mappings\[0\] starts at 0x0, below vm\.mmap_min_addr/);
    const lockFirst = (h: ProcessHead, memlock: number): ProcessHead => ({
      ...h,
      mappings: h.mappings.map((m, i) => (i === 0 ? { ...m, vmflags: [...m.vmflags, 'lo'] } : m)),
      rlimits: h.rlimits.map((r) => (r.resource === RLIMIT_MEMLOCK ? { ...r, soft: memlock, hard: memlock } : r)),
    });
    refused(await s.restore(nobodys('vmlck.img', (h) => lockFirst(h, 0))), 2, /head\.mappings lock \d+ bytes in memory \(VmLck\), beyond the 0 bytes RLIMIT_MEMLOCK/);
    const ownHard = Number(execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim());
    refused(
      await s.restore(nobodys('nofile.img', (h) => ({ ...h, rlimits: h.rlimits.map((r) => (r.resource === RLIMIT_NOFILE ? { ...r, hard: ownHard + 1 } : r)) }))),
      2,
      /head\.rlimits\[7\] \(resource 7\) has the hard limit \d+, above cr's own/,
    );
    // Root could do all of it: the locked image owned by root comes back (within the limit cr has).
    runsAs(await s.restore(rewrite(image, s.path('vmlck-root.img'), 0, (h) => lockFirst(h, 1 << 20))), NOBODY);
  }));

test('paths are opened as the author: a root-only file held by fd or shared mapping, a cwd in a 0700 directory', () =>
  scene(async (s) => {
    for (const mode of ['fd', 'map'] as const) {
      // The process legitimately held the file (root gave it the fd); nobody's image cannot have it back.
      const image = s.path(`${mode}.img`);
      s.dumpHolder(mode, image);
      const secretBefore = statSync(s.secret);
      // Named as the fd or the mapping it is, with the path.
      const named = mode === 'fd' ? /\(fd 3\): open\("[^"]*\/vault\/secret", O_RDWR/ : /mapping at [0-9a-f]+: open\("[^"]*\/vault\/secret", O_RDWR\) in the husk/;
      const r1 = await s.restore(rewrite(image, s.path(`${mode}-nobody.img`), NOBODY, same));
      refused(r1, 1, /EACCES[^\n]*the half-restored process \d+ was killed\n$/);
      assert.match(r1.stderr, named);
      assert.is(readFileSync(s.secret, 'utf8'), 'root only\n');
      assert.is(statSync(s.secret).mtimeMs, secretBefore.mtimeMs);
      // Dumped by root and left root's, it does come back, with the file.
      const r = await s.restore(image);
      runsAs(r, NOBODY);
      const pid = Number(r.stdout.trim());
      if (mode === 'fd') assert.ok(listFds(pid).includes(3));
      else assert.match(readFileSync(`/proc/${pid}/maps`, 'latin1'), new RegExp(` rw-s [^\\n]*${s.secret}\\n`));
      stop([pid]);
    }
    const image = s.path('plain.img');
    s.dumpHolder('plain', image);
    const inVault = (h: ProcessHead): ProcessHead => ({ ...h, cwd: join(s.vault, 'inner') });
    refused(await s.restore(rewrite(image, s.path('cwd-nobody.img'), NOBODY, inVault)), 1, /the working directory: chdir\("[^"]*\/vault\/inner"\) in the husk \(pid \d+\): EACCES/);
    runsAs(await s.restore(rewrite(image, s.path('cwd-root.img'), 0, inVault)), NOBODY);
  }));

test('an image others could have written is trusted only from the user running cr', () =>
  scene(async (s) => {
    const image = s.path('plain.img');
    s.dumpHolder('plain', image);
    const open = rewrite(image, s.path('open.img'), NOBODY, same);
    chmodSync(open, 0o666);
    refused(await s.restore(open), 2, /the image file is writable by others than its owner \(mode 0666\), and its owner \(uid 65534\) is not the user running cr \(uid 0\)/);
    const shared = join(s.dir, 'shared');
    mkdirSync(shared);
    chmodSync(shared, 0o777);
    const inShared = rewrite(image, join(shared, 'img'), NOBODY, same);
    refused(await s.restore(inShared), 2, /which others may write without the sticky bit \(mode 0777\)/);
    // With the sticky bit no one else could have replaced it: nobody's image, restored as nobody.
    chmodSync(shared, 0o1777);
    runsAs(await s.restore(inShared), NOBODY);
    // root's own image, writable by all, is root's business.
    const rootOpen = rewrite(image, s.path('root-open.img'), 0, same);
    chmodSync(rootOpen, 0o666);
    runsAs(await s.restore(rootOpen), NOBODY);
  }));

test('-- CMD and --into with nobody\'s table naming a root-only file: the open fails; the --into target keeps its table, ids, dumpable flag and parent-death signal; another user\'s target is refused', () =>
  scene(async (s) => {
    const table = (path: string, flags: number): string =>
      JSON.stringify({
        descs: [{ id: 0, kind: 'file', flags, path, offset: 0 }],
        pipes: [],
        processes: [{ pid: 1, fds: [{ fd: 50, desc: 0, cloexec: false }], rlimit: { soft: 1024, hard: 4096 } }],
      });
    const O_RDWR = 2;
    const secret = s.path('secret.json');
    writeFileSync(secret, table(s.secret, O_RDWR));
    chownSync(secret, NOBODY, NOBODY);
    let r = await cr(['restore', secret, '--', '/bin/sleep', '30']);
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, /^cr restore: [^\n]*secret[^\n]*EACCES[^\n]*was killed\n$/);
    const readable = s.path('readable');
    writeFileSync(readable, 'anyone\n', { mode: 0o644 });
    const fine = s.path('fine.json');
    writeFileSync(fine, table(readable, 0));
    chownSync(fine, NOBODY, NOBODY);
    const devnull = openSync('/dev/null', 'r+');
    const reports = s.path('reports');
    const out = openSync(reports, 'w');
    const target = spawn([REPORTER], { fds: [[devnull, 0], [out, 1], [devnull, 2]] });
    closeSync(out);
    const other = spawn([...asUser(NOBODY - 1), '/bin/sleep', '60'], { fds: [[devnull, 0], [devnull, 1], [devnull, 2]] });
    closeSync(devnull);
    try {
      waitInSyscall(target, SYS_pause);
      const status = (): string => readFileSync(`/proc/${target}/status`, 'latin1').split('\n').filter((l) => /^(Uid|Gid|Groups|CapEff):/.test(l)).join('\n');
      /** The target's dumpable flag and parent-death signal, which a change of fs id resets. */
      const flags = (): string => {
        const lines = readFileSync(reports, 'utf8').split('\n').length;
        kill(target, SIGUSR2);
        const deadline = Date.now() + 10_000;
        while (readFileSync(reports, 'utf8').split('\n').length === lines) {
          if (Date.now() > deadline) assert.unreachable('the target did not report');
          Atomics.wait(pause, 0, 0, 2);
        }
        return readFileSync(reports, 'utf8').trim().split('\n').pop()!;
      };
      const before = status();
      assert.is(flags(), `1 ${SIGUSR1}`);
      const fds = listFds(target);
      r = await cr(['restore', secret, '--into', String(target)]);
      assert.is(r.code, 1, r.stderr);
      assert.match(r.stderr, /^cr restore: [^\n]*secret[^\n]*EACCES[^\n]*rolled back[^\n]*\n$/);
      assert.equal(listFds(target), fds);
      assert.is(status(), before, 'root again: its fs ids, groups and capabilities as they were');
      assert.is(flags(), `1 ${SIGUSR1}`, 'dumpable and its parent-death signal put back');
      // A file nobody may read is restored into root's process, which gets its own ids back.
      r = await cr(['restore', fine, '--into', String(target)]);
      assert.is(r.code, 0, r.stderr);
      assert.ok(listFds(target).includes(50));
      assert.is(status(), before);
      assert.is(flags(), `1 ${SIGUSR1}`);
      // A target of another unprivileged user cannot open as nobody: refused before it is stopped.
      waitInSyscall(other, SYS_clock_nanosleep);
      const otherFds = listFds(other);
      r = await cr(['restore', fine, '--into', String(other)]);
      assert.is(r.code, 2, r.stderr);
      assert.is(r.stderr, `cr restore: pid ${other} opens files as uid ${NOBODY - 1} and cannot open them as the image's author (uid ${NOBODY}, owner of ${fine}) instead\n`);
      assert.equal(listFds(other), otherFds);
      assert.match(readFileSync(`/proc/${other}/status`, 'latin1'), /^TracerPid:\s+0$/m);
    } finally {
      ensureReaped(target);
      ensureReaped(other);
    }
  }));

test.run();
