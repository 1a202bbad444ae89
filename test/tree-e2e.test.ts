// Process trees end to end (issue 11, docs/trees.md): real trees dumped by `cr dump --pid` as a
// process of its own (the whole group killed with --kill), then brought back by `cr restore` and
// checked against what an undisturbed run of the same programs gives: a 3-stage shell pipeline
// with bytes in every pipe, a forking shell loop caught with a `sleep` child, a python parent and
// 4 workers over pipes both ways, a parent with zombie children, a 3-level tree with a group and
// a session of its own (its shape relative to the root, restored twice at once, and --same-pid).
// Every process started, the originals and every restored tree, is killed at the end.
import { spawn as spawnChild } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { kill, SIGCONT, SIGKILL, SIGSTOP, SIGUSR1 } from '../bridge/signal.js';
import { ProcessImage } from '../src/image/process-format.js';
import { listTree, readStat } from '../src/proc/tree.js';
import { CR, crProcess, ROOT } from './helpers/cli.js';
import { buildC, ensureReaped } from './helpers/processes.js';
import { TreeScene } from './helpers/tree-scene.js';

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
const nap = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
const text = (path: string): string => (existsSync(path) ? readFileSync(path, 'utf8') : '');
const alive = (pid: number): boolean => {
  try {
    return readStat(pid).state !== 'Z';
  } catch {
    return false;
  }
};

function waitUntil(what: string, cond: () => boolean, timeoutMs = 60_000): void {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    nap(5);
  }
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** `cr restore`'s line naming the tree: each member's pid when dumped and now, in tree order. */
function membersOf(stderr: string): Array<{ was: number; now: number }> {
  const list = /the root of a tree of \d+ processes \(([^)]*)\)/.exec(stderr)?.[1];
  if (list === undefined) return [];
  return list.split(' ').map((t) => {
    const [was, now = was] = t.split('->').map(Number) as [number, number?];
    return { was, now };
  });
}

/** A tree's shape relative to its root: for each member, its parent's, group leader's and session leader's index (-1: outside). */
function shape(pids: number[]): Array<[number, number, number]> {
  const at = (p: number): number => pids.indexOf(p);
  return pids.map((p, i) => {
    const s = readStat(p);
    return [i === 0 ? -1 : at(s.ppid), at(s.pgid), at(s.sid)];
  });
}

/**
 * Trees started in sessions of their own, in a directory of their own; every pid ever seen in
 * one (originals, restored members, what they forked) killed at the end, whatever happened.
 */
class Scene extends TreeScene {
  constructor() {
    super('tree-e2e');
  }

  /** Run fn and wait until it ends: a root this scene started (and reaps). */
  async run(argv: string[], done: () => boolean): Promise<void> {
    const pid = this.start(argv);
    await waitFor(`${argv.join(' ')} to finish`, () => done() && !alive(pid), 120_000);
    ensureReaped(pid);
  }

  /** dump --pid root --kill; the root reaped, and every member's pid free again (for --same-pid). */
  dumpKilled(root: number, image: string): ProcessImage {
    const read = this.dump(root, image, '--kill');
    ensureReaped(root);
    waitUntil('the dumped members to be reaped', () => read.tree.every((m) => !existsSync(`/proc/${m.pid}`)));
    return read;
  }

  /** restore IMAGE --detach: the tree's members, was and now (remembered for the cleanup). */
  restore(image: string, ...extra: string[]): Array<{ was: number; now: number }> {
    const r = crProcess(['restore', image, '--detach', ...extra]);
    const members = membersOf(r.stderr);
    this.adopt(members);
    assert.is(r.code, 0, r.stderr);
    assert.ok(members.length > 0, r.stderr);
    assert.is(Number(r.stdout.trim()), members[0]!.now, 'the root\'s pid on stdout');
    return members;
  }

  /** restore IMAGE without --detach: cr waits for the root and exits with its status. */
  async restoreWaiting(image: string, extra: string[] = [], restored?: (cr: ReturnType<typeof spawnChild>) => void): Promise<{ code: number; stderr: string; members: Array<{ was: number; now: number }> }> {
    const child = spawnChild(process.execPath, [CR, 'restore', image, ...extra], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let members: Array<{ was: number; now: number }> = [];
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      if (members.length > 0) return;
      this.adopt((members = membersOf(stderr)));
      if (members.length > 0) restored?.(child);
    });
    const code = await new Promise<number>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
      child.on('close', (c, signal) => {
        clearTimeout(timer);
        resolve(c ?? 128 + (signal === 'SIGKILL' ? 9 : 15));
      });
    });
    return { code, stderr, members };
  }

  private adopt(members: Array<{ was: number; now: number }>): void {
    if (members.length > 0) this.watch(members[0]!.now, members.map((m) => m.now));
  }

}

async function scene(fn: (s: Scene) => void | Promise<void>): Promise<void> {
  const s = new Scene();
  try {
    await fn(s);
  } finally {
    s.end();
  }
}

// gen N: N numbered lines of letters on stdout. sink OUT GO HEAD: stdin copied to OUT, waiting
// after the first HEAD bytes until the file GO exists: the pipes behind it fill up.
const GEN = `#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
  long n = atol(argv[1]);
  for (long i = 0; i < n; i++) printf("line %ld of the pipeline: abcdefghijklmnopqrstuvwxyz\\n", i);
  return fflush(stdout) == 0 ? 0 : 1;
}
`;
const SINK = `#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
  int out = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC, 0644);
  long head = atol(argv[3]), total = 0;
  char buf[4096];
  if (out < 0) return 2;
  for (;;) {
    long want = total < head && head - total < (long)sizeof buf ? head - total : (long)sizeof buf;
    ssize_t n = read(0, buf, want);
    if (n < 0) return 3;
    if (n == 0) break;
    if (write(out, buf, n) != n) return 4;
    total += n;
    if (total == head) while (access(argv[2], F_OK) != 0) usleep(10000);
  }
  return close(out) == 0 ? 0 : 5;
}
`;

const wchan = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/wchan`, 'utf8');
  } catch {
    return '';
  }
};
const comm = (pid: number): string => {
  try {
    return readStat(pid).comm;
  } catch {
    return '';
  }
};

test('a 3-stage shell pipeline dumped mid-stream and killed: restored with new pids and with --same-pid, OUT is byte-identical to an undisturbed run', () =>
  scene(async (s) => {
    const gen = buildC(GEN);
    const sink = buildC(SINK);
    const pipeline = (out: string, go: string): string[] => ['sh', '-c', `${gen} 200000 | tr a-z A-Z | ${sink} ${out} ${go} 100000; echo $? > ${out}.status`];
    // Undisturbed: GO there from the start.
    writeFileSync(s.path('GO0'), '');
    await s.run(pipeline('OUT0', 'GO0'), () => text(s.path('OUT0.status')) !== '');
    const expected = readFileSync(s.path('OUT0'));
    assert.ok(expected.length > 10_000_000, `an undisturbed run wrote ${expected.length} bytes`);

    const root = s.start(pipeline('OUT', 'GO'));
    waitUntil('both pipes to fill', () => {
      const pids = s.tree(root);
      const blocked = (name: string): boolean => pids.some((p) => comm(p) === name && /pipe_write$/.test(wchan(p)));
      return text(s.path('OUT')).length === 100000 && blocked(gen.split('/').pop()!.slice(0, 15)) && blocked('tr');
    });
    const image = s.dumpKilled(root, s.path('pipeline.img'));
    assert.is(image.tree.length, 4, image.tree.map((m) => m.comm).join(', '));
    assert.ok(image.fdImage.table.pipes.filter((p) => p.data.length > 0).length >= 2, 'bytes in both pipes between the stages');
    assert.is(readFileSync(s.path('OUT')).length, 100000, 'nothing written after the dump');
    copyFileSync(s.path('OUT'), s.path('OUT.dumped'));
    writeFileSync(s.path('GO'), '');

    // New pids: the shell's job table knows its children by their old pids, so only the output is
    // the undisturbed run's (docs/trees.md, What changes).
    const fresh = await s.restoreWaiting(s.path('pipeline.img'), ['--new-pid']);
    assert.is(fresh.members.length, 4, fresh.stderr);
    assert.ok(fresh.members.every((m) => m.was !== m.now), 'new pids');
    assert.ok(readFileSync(s.path('OUT')).equals(expected), 'OUT is byte-identical to an undisturbed run (new pids)');

    // --same-pid: the shell finds its children and exits as the undisturbed run did.
    copyFileSync(s.path('OUT.dumped'), s.path('OUT'));
    rmSync(s.path('OUT.status'), { force: true });
    waitUntil('the first restore\'s members to be reaped', () => fresh.members.every((m) => !existsSync(`/proc/${m.now}`)));
    const same = await s.restoreWaiting(s.path('pipeline.img'), ['--same-pid']);
    assert.equal(same.members.map((m) => m.now), image.tree.map((m) => m.pid), same.stderr);
    assert.is(same.code, 0, same.stderr);
    assert.ok(readFileSync(s.path('OUT')).equals(expected), 'OUT is byte-identical to an undisturbed run (--same-pid)');
    assert.is(text(s.path('OUT.status')), text(s.path('OUT0.status')), 'the sink\'s exit status');
  }));

// Appends 1, 2, 3, ... to FILE, forking a sleep between two.
const loop = (file: string): string[] => ['sh', '-c', `i=0; while [ $i -lt 200 ]; do i=$((i+1)); echo $i >> ${file}; sleep 0.02; done; echo done >> ${file}`];

test('a forking shell loop dumped while a sleep child runs: after restore the sequence goes on with no gap or repeat', () =>
  scene(async (s) => {
    await s.run(loop('f0'), () => text(s.path('f0')).endsWith('done\n'));
    const expected = text(s.path('f0'));
    assert.ok(expected.startsWith('1\n2\n3\n'), expected.slice(0, 20));

    // Caught with its sleep child (alive, or exited and not yet reaped): --leave-stopped keeps the
    // tree as it was dumped; a dump that caught the shell between two sleeps is let go on, and
    // taken again.
    const root = s.start(loop('f'));
    let image: ProcessImage | undefined;
    for (let attempt = 0; attempt < 20 && image === undefined; attempt++) {
      const lines = text(s.path('f')).length;
      waitUntil('the loop to count on, in a sleep', () => text(s.path('f')).length > lines && s.tree(root).slice(1).some((p) => comm(p) === 'sleep'));
      const r = crProcess(['dump', '--pid', String(root), '-o', s.path('loop.img'), '--force', '--leave-stopped']);
      assert.is(r.code, 0, r.stderr);
      const got = ProcessImage.read(s.path('loop.img'));
      for (const m of got.tree) s.tree(m.pid);
      if (got.tree.length === 2 && got.tree[1]!.comm === 'sleep') image = got;
      else for (const m of got.tree) kill(m.pid, SIGCONT);
    }
    assert.ok(image !== undefined, 'a dump with the sleep child in 20 tries');
    for (const m of image!.tree) kill(m.pid, SIGKILL);
    ensureReaped(root);
    const atDump = text(s.path('f'));
    assert.not.ok(atDump.endsWith('done\n'), 'dumped before the end');
    const members = s.restore(s.path('loop.img'), '--new-pid');
    assert.is(members.length, 2);
    await waitFor('the restored loop to finish', () => text(s.path('f')).endsWith('done\n'), 120_000);
    assert.ok(text(s.path('f')).startsWith(atDump));
    assert.is(text(s.path('f')), expected, 'the sequence an undisturbed run writes');
  }));

// A parent and 4 workers, a pipe each way per worker. Each worker says hello up its pipe, then
// waits for GO before reading the 20,000 bytes its parent wrote down; bytes sit both ways. After
// GO the parent checks every answer and reaps its workers (by any pid: they may have new ones).
const WORKERS = `import os, sys, time
N, SIZE = 4, 20000
down, up = [], []
for i in range(N):
    d, u = os.pipe(), os.pipe()
    if os.fork() == 0:
        os.close(d[1]); os.close(u[0])
        os.write(u[1], b'hello %d\\n' % i)
        while not os.path.exists('GO'):
            time.sleep(0.01)
        got = b''
        while len(got) < SIZE:
            got += os.read(d[0], 65536)
        os.write(u[1], got.upper())
        os._exit(0)
    os.close(d[0]); os.close(u[1])
    down.append(d[1]); up.append(u[0])
payload = [bytes((97 + (j * 7 + i) % 26) for j in range(SIZE)) for i in range(N)]
for i in range(N):
    os.write(down[i], payload[i])
open('ready', 'w').write('up')
while not os.path.exists('GO'):
    time.sleep(0.01)
answers = []
for i in range(N):
    got = b''
    while True:
        chunk = os.read(up[i], 65536)
        if not chunk:
            break
        got += chunk
    answers.append(got == b'hello %d\\n' % i + payload[i].upper())
statuses = sorted(os.wait()[1] for i in range(N))
open('result', 'w').write('answers %s statuses %s' % (answers, statuses))
`;

test('a python parent with 4 workers over pipes both ways, dumped with bytes in all 8 pipes: restored, it finishes as an undisturbed run does', () =>
  scene(async (s) => {
    writeFileSync(s.path('workers.py'), WORKERS);
    writeFileSync(s.path('GO'), '');
    await s.run([PYTHON, 'workers.py'], () => text(s.path('result')) !== '');
    const expected = text(s.path('result'));
    assert.is(expected, 'answers [True, True, True, True] statuses [0, 0, 0, 0]');
    for (const f of ['GO', 'result', 'ready']) rmSync(s.path(f));

    const root = s.start([PYTHON, 'workers.py']);
    waitUntil('the workers to say hello', () => {
      const pids = s.tree(root);
      return text(s.path('ready')) === 'up' && pids.length === 5 && pids.every((p) => /nanosleep/.test(wchan(p)));
    });
    const image = s.dumpKilled(root, s.path('workers.img'));
    assert.is(image.tree.length, 5);
    const full = image.fdImage.table.pipes.filter((p) => p.data.length > 0);
    assert.is(full.length, 8, 'bytes in every pipe, both ways');
    writeFileSync(s.path('GO'), '');
    const members = s.restore(s.path('workers.img'), '--new-pid');
    assert.is(members.length, 5);
    await waitFor('the result', () => text(s.path('result')) !== '');
    assert.is(text(s.path('result')), expected);
  }));

// One child exits 7, one is killed by SIGTERM; the parent reaps them only after GO.
const ZOMBIES = `import os, signal, sys, time
a = os.fork()
if a == 0:
    os._exit(7)
b = os.fork()
if b == 0:
    time.sleep(100)
    os._exit(0)
os.kill(b, signal.SIGTERM)
while open('/proc/%d/stat' % a).read().split(') ')[1][0] != 'Z' or open('/proc/%d/stat' % b).read().split(') ')[1][0] != 'Z':
    time.sleep(0.01)
open('ready', 'w').write('up')
while not os.path.exists('GO'):
    time.sleep(0.01)
got = sorted((os.WEXITSTATUS(s) if os.WIFEXITED(s) else -os.WTERMSIG(s)) for s in (os.wait()[1], os.wait()[1]))
open('result', 'w').write('%s' % got)
`;

test('a process with zombie children: restored, its wait() reads the statuses an undisturbed run reads', () =>
  scene(async (s) => {
    writeFileSync(s.path('zombies.py'), ZOMBIES);
    writeFileSync(s.path('GO'), '');
    await s.run([PYTHON, 'zombies.py'], () => text(s.path('result')) !== '');
    const expected = text(s.path('result'));
    assert.is(expected, '[-15, 7]');
    for (const f of ['GO', 'result', 'ready']) rmSync(s.path(f));

    const root = s.start([PYTHON, 'zombies.py']);
    waitUntil('the zombies', () => text(s.path('ready')) === 'up');
    const before = shape(s.tree(root));
    const image = s.dumpKilled(root, s.path('zombies.img'));
    assert.equal(image.tree.map((m) => m.zombie !== null), [false, true, true]);
    const members = s.restore(s.path('zombies.img'), '--new-pid');
    const now = members.map((m) => m.now);
    assert.equal(now.slice(1).map((p) => readStat(p).state), ['Z', 'Z'], 'zombies again');
    assert.equal(shape(now), before, 'parent, group and session relative to the root');
    writeFileSync(s.path('GO'), '');
    await waitFor('the result', () => text(s.path('result')) !== '');
    assert.is(text(s.path('result')), expected);
  }));

// Three levels under the root: a child in a group of its own, a grandchild leading a session of
// its own, and its child. Each writes its pid to a file of its level when signalled SIGUSR1.
const LEVELS = `import os, signal, sys, time
def level(n):
    if n == 1:
        os.setpgid(0, 0)
    if n == 2:
        os.setsid()
    if n < 3 and os.fork() == 0:
        level(n + 1)
    signal.signal(signal.SIGUSR1, lambda *a: open('pong%d' % n, 'w').write(str(os.getpid())))
    open('level%d' % n, 'w').write(str(os.getpid()))
    while True:
        time.sleep(1000)
level(0)
`;

/** Signal each pid, in level order, and read the pid each answers with. */
async function pongs(s: Scene, pids: number[]): Promise<number[]> {
  for (let n = 0; n < pids.length; n++) rmSync(s.path(`pong${n}`), { force: true });
  for (const p of pids) kill(p, SIGUSR1);
  await waitFor('every level to answer', () => pids.every((_, n) => text(s.path(`pong${n}`)) !== ''));
  return pids.map((_, n) => Number(text(s.path(`pong${n}`))));
}

test('a 3-level tree with a group and a session of its own: restored twice at once (new pids, then by default the recorded ones), then with --same-pid; the shape relative to the root is kept', () =>
  scene(async (s) => {
    writeFileSync(s.path('levels.py'), LEVELS);
    const root = s.start([PYTHON, 'levels.py']);
    waitUntil('every level', () => [0, 1, 2, 3].every((n) => text(s.path(`level${n}`)) !== ''));
    const pids = [0, 1, 2, 3].map((n) => Number(text(s.path(`level${n}`))));
    assert.equal(s.tree(root), pids);
    const before = shape(pids);
    // Not all one group and session: the shape says something.
    assert.equal(before, [[-1, 0, 0], [0, 1, 0], [1, 2, 2], [2, 2, 2]]);
    assert.equal(await pongs(s, pids), pids);
    s.dumpKilled(root, s.path('levels.img'));

    // New pids, then (the recorded ones free) by default the recorded ones.
    const first = s.restore(s.path('levels.img'), '--new-pid');
    const second = s.restore(s.path('levels.img'));
    for (const restored of [first, second]) {
      assert.equal(restored.map((m) => m.was), pids);
      const now = restored.map((m) => m.now);
      assert.equal(listTree(now[0]!).map((m) => m.pid), now, 'the restored tree, nothing more or less');
      assert.equal(shape(now), before, 'parent, group and session relative to the root');
      assert.equal(await pongs(s, now), now, 'each level runs its own code and knows its new pid');
    }
    assert.ok(first.every((m, i) => m.now !== second[i]!.now), 'two copies, each with pids of its own');
    for (const m of [...first, ...second]) kill(m.now, SIGKILL);
    waitUntil('the copies to be reaped', () => [...first, ...second].every((m) => !existsSync(`/proc/${m.now}`)));

    const same = s.restore(s.path('levels.img'), '--same-pid');
    assert.equal(same.map((m) => m.now), pids, 'every member at its recorded pid');
    assert.equal(shape(pids), before);
    assert.equal(await pongs(s, pids), pids);
  }));

test('cr waiting for a restored tree passes a signal on to the root\'s whole group, as a shell does to its job: every member ends', () =>
  scene(async (s) => {
    const root = s.start(['sh', '-c', 'sleep 1000 & sleep 1000 & wait']);
    waitUntil('two sleeps', () => s.tree(root).slice(1).filter((p) => comm(p) === 'sleep').length === 2);
    s.dumpKilled(root, s.path('job.img'));
    const r = await s.restoreWaiting(s.path('job.img'), [], (cr) => cr.kill('SIGTERM'));
    assert.is(r.members.length, 3, r.stderr);
    assert.is(r.code, 128 + 15, r.stderr);
    await waitFor('every member to end', () => r.members.every((m) => !alive(m.now)));
  }));

// A shell with two children: a sleep stopped by job control, and a python process whose 3 threads
// each count into a file of their own.
const THREADS = `import threading, time
def count(n):
    i = 0
    while True:
        i += 1
        with open('th%d' % n, 'a') as f:
            f.write('%d\\n' % i)
        time.sleep(0.02)
for n in range(3):
    threading.Thread(target=count, args=(n,), daemon=True).start()
time.sleep(1000)
`;

const counted = (s: Scene, n: number): number[] => text(s.path(`th${n}`)).split('\n').filter(Boolean).map(Number);

test('a tree with a job-control stopped member and a multi-threaded one: the stopped one comes back stopped, every thread of the other counts on with no gap or repeat', () =>
  scene(async (s) => {
    writeFileSync(s.path('threads.py'), THREADS);
    const root = s.start(['sh', '-c', `sleep 1000 & ${PYTHON} threads.py & wait`]);
    waitUntil('the threads to count', () => [0, 1, 2].every((n) => counted(s, n).length >= 3));
    const sleeper = s.tree(root).find((p) => comm(p) === 'sleep')!;
    kill(sleeper, SIGSTOP);
    waitUntil('the sleep to stop', () => readStat(sleeper).state === 'T');
    const image = s.dumpKilled(root, s.path('threads.img'));
    assert.equal(image.tree.map((m) => [m.comm, m.stopped]), [['sh', false], ['sleep', true], ['python3', false]]);
    assert.is(image.members[2]!.head.threads.length, 3, 'the python member\'s 3 threads besides its leader');
    const atDump = [0, 1, 2].map((n) => counted(s, n).length);
    const members = s.restore(s.path('threads.img'));
    const [, stopped, python] = members.map((m) => m.now) as [number, number, number];
    await waitFor('every thread to count on', () => [0, 1, 2].every((n) => counted(s, n).length >= atDump[n]! + 10));
    for (const n of [0, 1, 2]) {
      const got = counted(s, n);
      assert.equal(got, Array.from({ length: got.length }, (_, k) => k + 1), `thread ${n}: 1, 2, 3, ... with no gap or repeat`);
    }
    assert.is(readFileSync(`/proc/${python}/status`, 'utf8').match(/^Threads:\s+(\d+)/m)?.[1], '4');
    assert.is(readStat(stopped).state, 'T', 'stopped again');
    assert.match(readFileSync(`/proc/${stopped}/status`, 'utf8'), /^TracerPid:\s+0$/m);
    kill(stopped, SIGCONT);
    await waitFor('the sleep to run', () => readStat(stopped).state === 'S');
  }));

test.run();
