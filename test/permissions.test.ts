// Permissions: an unprivileged user dumps and restores their own processes and is refused another
// user's with one EPERM line; images are 0600 whatever the umask, owned by who dumped, created
// exclusively, never written through a symlink; an image another user cannot read is refused in
// one line. Paths in an image are opened by the target itself: an image naming a root-only file
// gives an unprivileged target nothing, even when root runs cr.
import { oneProcess, type FdTable } from '../src/model/fdtable.js';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readImage } from '../src/image/format.js';
import { fdSnapshot, runState } from '../src/imagefuzz/live-target.js';
import { spawn } from '../bridge/spawn.js';
import { readStatus } from '../src/proc/process.js';
import { ensureReaped } from './helpers/processes.js';
import { holderBinary, readBack, startHolder, type HolderSpec } from './fixtures/hardening-holder.js';
import { asUser, NOBODY, readableCr, readableDir, unprivilegedTest } from './helpers/unprivileged.js';
import { tableJson } from '../src/model/json.js';

const CR = fileURLToPath(new URL('../../cr.mjs', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const OTHER = 65533;
const SPEC: HolderSpec = { pipes: 2, capacity: 65536, bytes: 3000, dups: 2, high: 0 };

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** `node cr.mjs ...` as uid (root when undefined; another user runs a copy it can read), with a umask. */
function cr(args: string[], uid?: number, umask = '022'): Run {
  const other = uid !== undefined;
  const argv = [...(other ? asUser(uid) : []), 'sh', '-c', `umask ${umask}; exec "$@"`, 'sh', process.execPath, other ? readableCr() : CR, ...args];
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', cwd: other ? readableDir() : ROOT, timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A directory the user may write in. */
function dirFor(uid: number): string {
  const d = mkdtempSync(join(tmpdir(), `cr-perm-${uid}-`));
  chownSync(d, uid, uid);
  chmodSync(d, 0o755);
  return d;
}

// The holder binary must be reachable by the unprivileged users.
const binary = holderBinary();
chmodSync(binary, 0o755);

unprivilegedTest('an unprivileged user dumps their own process: 0600 image of theirs, whatever the umask; nothing consumed', () => {
  const d = dirFor(NOBODY);
  const h = startHolder(SPEC, d, asUser(NOBODY));
  try {
    const before = fdSnapshot(h.pid);
    for (const umask of ['000', '022', '077']) {
      const image = join(d, `own-${umask}.img`);
      const r = cr(['dump', '--fds-only', '--pid', String(h.pid), '-o', image], NOBODY, umask);
      assert.is(r.code, 0, r.stderr);
      const st = statSync(image);
      assert.is(st.mode & 0o777, 0o600, `umask ${umask}`);
      assert.is(st.uid, NOBODY);
      const img = readImage(image);
      assert.is(img.process.uid, NOBODY);
      assert.is(img.table.pipes.length, SPEC.pipes);
      assert.is(runState(h.pid), '');
    }
    // show and plan work on the user's own image, as that user.
    const shown = cr(['show', join(d, 'own-022.img')], NOBODY);
    assert.is(shown.code, 0, shown.stderr);
    assert.match(shown.stdout, new RegExp(`uid ${NOBODY}`));
    assert.is(cr(['plan', join(d, 'own-022.img')], NOBODY).code, 0);
    assert.is(fdSnapshot(h.pid), before);
    assert.is(readBack(h), '');
  } finally {
    ensureReaped(h.pid);
    rmSync(d, { recursive: true, force: true });
  }
});

// Restarting one's own process needs no capability: only the /proc/PID/exe link does
// (CAP_CHECKPOINT_RESTORE), and without it the rest is restored and the link's loss said in one line.
unprivilegedTest('an unprivileged user restarts their own whole process: it runs on as them, the new pid and the exe link\'s loss said in one warning each', async () => {
  const d = dirFor(NOBODY);
  const pids: number[] = [];
  try {
    // Its cwd is d, which nobody can reach (the checkout may not be): the restart goes back there.
    const pid = spawn([...asUser(NOBODY), '/bin/sleep', '300'], { fds: [], cwd: d });
    pids.push(pid);
    // Dumped once it sleeps: setpriv has exec'd it and sleep has closed its start-up files.
    for (let i = 0; i < 500 && !(readFileSync(`/proc/${pid}/comm`, 'utf8') === 'sleep\n' && readStatus(pid).state === 'S'); i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const image = join(d, 'sleep.img');
    const dumped = cr(['dump', '--pid', String(pid), '-o', image], NOBODY);
    assert.is(dumped.code, 0, dumped.stderr);
    ensureReaped(pid);
    const r = cr(['restore', image, '--detach'], NOBODY);
    assert.is(r.code, 0, r.stderr);
    const restarted = Number(r.stdout);
    pids.push(restarted);
    // Without CAP_CHECKPOINT_RESTORE it cannot have its pid either: both said, one line each.
    assert.equal(r.stderr.split('\n').slice(0, 2), [
      'cr restore: warning: new pids, not the dumped ones: cr may not choose pids (that needs CAP_CHECKPOINT_RESTORE); a program that remembers its own pid (python\'s asyncio does) or another\'s (a shell waiting for its job) may misbehave',
      'cr restore: warning: setting /proc/PID/exe needs CAP_CHECKPOINT_RESTORE: it stays /bin/true, the program the restart started from',
    ]);
    const status = readFileSync(`/proc/${restarted}/status`, 'utf8');
    assert.match(status, new RegExp(`^Uid:\\t${NOBODY}\\t${NOBODY}\\t${NOBODY}\\t${NOBODY}$`, 'm'));
    assert.is(readFileSync(`/proc/${restarted}/cmdline`, 'utf8'), '/bin/sleep\u0000300\u0000');
    assert.is(runState(restarted), '', 'running, untraced');
  } finally {
    for (const p of pids) ensureReaped(p);
    rmSync(d, { recursive: true, force: true });
  }
});

unprivilegedTest('another user\'s process (root\'s, or another unprivileged uid\'s) is refused with one EPERM line and left alone', () => {
  const d = dirFor(NOBODY);
  const holders = [startHolder(SPEC, d), startHolder(SPEC, d, asUser(OTHER))];
  try {
    for (const h of holders) {
      const before = fdSnapshot(h.pid);
      const image = join(d, `theirs-${h.pid}.img`);
      const r = cr(['dump', '--fds-only', '--pid', String(h.pid), '-o', image], NOBODY);
      assert.is(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`^cr dump: may not trace process ${h.pid}: ptrace\\(PTRACE_SEIZE, pid=${h.pid}, options=0x0\\): EPERM \\(Operation not permitted\\)\\n$`));
      assert.is(r.stdout, '');
      assert.not.ok(existsSync(image));
      assert.is(runState(h.pid), '');
      assert.is(fdSnapshot(h.pid), before);
      assert.is(readBack(h), '');
    }
  } finally {
    for (const h of holders) ensureReaped(h.pid);
    rmSync(d, { recursive: true, force: true });
  }
});

unprivilegedTest('an image is never written through a symlink, never over an existing file, and no temporary file is left', () => {
  const d = dirFor(NOBODY);
  const h = startHolder(SPEC, d, asUser(NOBODY));
  // A file the user must not be able to reach through cr (root's, 0644 in a root directory).
  const rootDir = mkdtempSync(join(tmpdir(), 'cr-perm-root-'));
  const precious = join(rootDir, 'precious');
  writeFileSync(precious, 'root data');
  try {
    const link = join(d, 'link.img');
    symlinkSync(precious, link);
    let r = cr(['dump', '--fds-only', '--pid', String(h.pid), '-o', link], NOBODY);
    assert.is(r.code, 2, r.stderr);
    assert.is(r.stderr, `cr dump: ${link} exists (use --force to replace it)\n`);
    // --force replaces the symlink itself, never what it points to.
    r = cr(['dump', '--fds-only', '--pid', String(h.pid), '-o', link, '--force'], NOBODY);
    assert.is(r.code, 0, r.stderr);
    assert.ok(lstatSync(link).isFile());
    assert.is(readFileSync(precious, 'utf8'), 'root data');
    // A dangling symlink counts as existing too: O_EXCL semantics, not "exists and is a file".
    const dangling = join(d, 'dangling.img');
    symlinkSync(join(rootDir, 'would-be-created'), dangling);
    r = cr(['dump', '--fds-only', '--pid', String(h.pid), '-o', dangling], NOBODY);
    assert.is(r.code, 2, r.stderr);
    assert.not.ok(existsSync(join(rootDir, 'would-be-created')));
    // Into a directory the user may not write: one line, nothing left.
    r = cr(['dump', '--fds-only', '--pid', String(h.pid), '-o', join(rootDir, 'x.img')], NOBODY);
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, /^cr dump: cannot write .*x\.img: EACCES \(open\)\n$/);
    const left = spawnSync('ls', ['-A', d], { encoding: 'utf8' }).stdout.split('\n').filter((n) => n.endsWith('.tmp'));
    assert.equal(left, []);
    assert.is(runState(h.pid), '');
    assert.is(readBack(h), '');
  } finally {
    ensureReaped(h.pid);
    rmSync(d, { recursive: true, force: true });
    rmSync(rootDir, { recursive: true, force: true });
  }
});

unprivilegedTest('an image the user may not read is refused in one line by show and plan', () => {
  const d = dirFor(NOBODY);
  const h = startHolder(SPEC, d);
  try {
    const image = join(d, 'root.img');
    assert.is(cr(['dump', '--fds-only', '--pid', String(h.pid), '-o', image]).code, 0);
    assert.is(statSync(image).uid, 0);
    for (const command of ['show', 'plan']) {
      const r = cr([command, image], NOBODY);
      assert.is(r.code, 2, r.stderr);
      assert.is(r.stderr, `cr ${command}: cannot read ${image}: EACCES (open)\n`);
    }
    assert.is(readBack(h), '');
  } finally {
    ensureReaped(h.pid);
    rmSync(d, { recursive: true, force: true });
  }
});

/** A table with a pipe (bytes queued) at 50 and 51, and, if given, a file opened read-only at 52. */
function tableWith(file?: string): string {
  const t = {
    fds: [{ fd: 50, desc: 0, cloexec: false }, { fd: 51, desc: 1, cloexec: false }, ...(file ? [{ fd: 52, desc: 2, cloexec: false }] : [])],
    descs: [
      { id: 0, kind: 'pipe', flags: 0, pipe: 0 },
      { id: 1, kind: 'pipe', flags: 1, pipe: 0 },
      ...(file ? [{ id: 2, kind: 'file', flags: 0o100000, path: file, offset: 0 }] : []),
    ],
    pipes: [{ id: 0, capacity: 65536, data: Buffer.from('restored bytes') }],
    rlimit: { soft: 1024, hard: 4096 },
  };
  return tableJson(oneProcess(t as FdTable, 1));
}

unprivilegedTest('an unprivileged user restores into their own process, and is refused root\'s with one EPERM line', () => {
  const d = dirFor(NOBODY);
  const own = startHolder(SPEC, d, asUser(NOBODY));
  const roots = startHolder(SPEC, d);
  try {
    const image = join(d, 'pipe.json');
    writeFileSync(image, tableWith());
    chmodSync(image, 0o644);
    let r = cr(['restore', image, '--into', String(own.pid)], NOBODY);
    assert.is(r.code, 0, r.stderr);
    assert.ok(fdSnapshot(own.pid).includes('\n50 -> pipe:'));
    assert.is(runState(own.pid), '');
    const before = fdSnapshot(roots.pid);
    r = cr(['restore', image, '--into', String(roots.pid)], NOBODY);
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`^cr restore: may not trace process ${roots.pid}: ptrace\\(PTRACE_SEIZE, pid=${roots.pid}, options=0x0\\): EPERM [^\\n]*\\n$`));
    assert.is(fdSnapshot(roots.pid), before);
    assert.is(runState(roots.pid), '');
    assert.is(readBack(own), '');
    assert.is(readBack(roots), '');
  } finally {
    ensureReaped(own.pid);
    ensureReaped(roots.pid);
    rmSync(d, { recursive: true, force: true });
  }
});

unprivilegedTest('an image naming a root-only file: the unprivileged target cannot open it, even with root running cr; rolled back, one line', () => {
  const d = dirFor(NOBODY);
  const rootDir = mkdtempSync(join(tmpdir(), 'cr-perm-secret-'));
  chmodSync(rootDir, 0o755);
  const secret = join(rootDir, 'secret');
  writeFileSync(secret, 'root only', { mode: 0o600 });
  const h = startHolder(SPEC, d, asUser(NOBODY));
  try {
    const image = join(d, 'secret.json');
    writeFileSync(image, tableWith(secret));
    chmodSync(image, 0o644);
    const before = fdSnapshot(h.pid);
    // root runs cr; the open happens in the target, with the target's credentials.
    let r = cr(['restore', image, '--into', String(h.pid)]);
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, /^cr restore: [^\n]*open\("[^"]*secret"[^\n]*EACCES[^\n]*rolled back[^\n]*\n$/);
    assert.is(fdSnapshot(h.pid), before);
    assert.is(runState(h.pid), '');
    // The same image restored by the unprivileged user into a new process: killed, one line.
    r = cr(['restore', image, '--', '/bin/sleep', '30'], NOBODY);
    assert.is(r.code, 1, r.stderr);
    assert.match(r.stderr, /^cr restore: [^\n]*EACCES[^\n]*was killed\n$/);
    assert.is(readBack(h), '');
  } finally {
    ensureReaped(h.pid);
    rmSync(d, { recursive: true, force: true });
    rmSync(rootDir, { recursive: true, force: true });
  }
});

unprivilegedTest('an image of one user\'s process restored into another user\'s needs --allow-uid-change', () => {
  const d = dirFor(NOBODY);
  const root = startHolder(SPEC, d);
  const other = startHolder(SPEC, d, asUser(NOBODY));
  try {
    // Dumped from root's process (uid 0), restored by root into nobody's. The image names root's
    // output file, which nobody's process must be able to open for the restore to succeed.
    chmodSync(root.out, 0o666);
    const image = join(d, 'root-made.img');
    assert.is(cr(['dump', '--fds-only', '--pid', String(root.pid), '-o', image]).code, 0);
    const before = fdSnapshot(other.pid);
    let r = cr(['restore', image, '--into', String(other.pid)]);
    assert.is(r.code, 2, r.stderr);
    assert.match(r.stderr, /^cr restore: [^\n]*uid 0[^\n]*uid 65534[^\n]*--allow-uid-change[^\n]*\n$/);
    assert.is(fdSnapshot(other.pid), before);
    assert.is(runState(other.pid), '');
    r = cr(['restore', image, '--into', String(other.pid), '--allow-uid-change']);
    assert.is(r.code, 0, r.stderr);
    assert.is(runState(other.pid), '');
    assert.is(readBack(root), '');
  } finally {
    ensureReaped(root.pid);
    ensureReaped(other.pid);
    rmSync(d, { recursive: true, force: true });
  }
});

test.run();
