// Mappings issue 17 asks to carry rather than refuse: shared anonymous memory named with
// PR_SET_VMA_ANON_NAME ([anon_shmem:NAME]; this kernel may lack CONFIG_ANON_VMA_NAME, so it is
// judged from smaps text: classified as the shared object it is, named again by restart), and aio
// rings (test/fixtures/state-aio.c checks its contexts itself, restarted with a new pid and with
// --same-pid; a ring holding an event not yet reaped, and copies of rings a child inherited, are
// refused at dump, the processes running on).
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, realpathSync, rmSync, writeSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { reap, spawn } from '../bridge/spawn.js';
import { checkpointProcess } from '../src/checkpoint/checkpoint.js';
import { classify } from '../src/checkpoint/maps.js';
import { CrError } from '../src/errors.js';
import { ProcessImage } from '../src/image/process-format.js';
import { parseSmaps } from '../src/proc/smaps.js';
import { anonName } from '../src/restart/memory.js';
import { restartProcess } from '../src/restart/restart.js';
import { buildFixture, ensureReaped, waitInSyscall } from './helpers/processes.js';

const SYS_read = 0;
const AIO = buildFixture('state-aio');
const text = (path: string): string => (existsSync(path) ? readFileSync(path, 'utf8') : '');

/**
 * Run a gated self-checking fixture (argv: FIFO, output file, extra) up to its wait, hand it to
 * `during` (pid, image path), then let it (or what `during` returned, a restarted pid) check
 * itself and end: its output. Every process it starts is killed.
 */
function gated(prog: string, extra: string[], during: (pid: number, image: string) => number): string {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-maps-')));
  const pids: number[] = [];
  let gate = -1;
  try {
    const fifo = join(dir, 'gate');
    execFileSync('mkfifo', [fifo]);
    gate = openSync(fifo, 'r+');
    const out = join(dir, 'out');
    const devnull = openSync('/dev/null', 'r+');
    const pid = spawn([prog, fifo, out, ...extra], { fds: [[devnull, 0], [devnull, 1], [devnull, 2]] });
    closeSync(devnull);
    pids.push(pid);
    waitInSyscall(pid, SYS_read);
    assert.is(text(out), 'before: PASS\n');
    const running = during(pid, join(dir, 'image'));
    pids.push(running);
    writeSync(gate, 'c');
    const end = reap(running, 10_000);
    assert.equal([end.kind, end.code], ['exited', 0], text(out));
    return text(out);
  } finally {
    if (gate >= 0) closeSync(gate);
    for (const p of pids) ensureReaped(p);
    rmSync(dir, { recursive: true, force: true });
  }
}

const smaps = (line: string): ReturnType<typeof parseSmaps>[number] => parseSmaps(`${line}\nVmFlags: rd wr sh mr mw me ms\n`)[0]!;

test('[anon_shmem:NAME] is shared anonymous memory of its inode, keeping its name, which restart gives it again; [anon:NAME] too', () => {
  const named = classify(smaps('7f0000000000-7f0000002000 rw-s 00001000 00:01 1025                       [anon_shmem:work counter]'))!;
  assert.is(named.mapping.kind, 'shared-anon');
  assert.is(named.mapping.name, '[anon_shmem:work counter]');
  assert.equal(named.mapping.shm, { object: 1025, offset: 4096, sysv: null });
  assert.is(anonName(named.mapping), 'work counter');
  // The same object unnamed: one object, no name to give.
  const plain = classify(smaps('7f0000004000-7f0000005000 rw-s 00000000 00:01 1025                       /dev/zero (deleted)'))!;
  assert.equal([plain.mapping.kind, plain.mapping.name, plain.mapping.shm!.object], ['shared-anon', '', 1025]);
  assert.is(anonName(plain.mapping), null);
  const priv = classify(smaps('7f0000006000-7f0000007000 rw-p 00000000 00:00 0                          [anon:arena]'))!;
  assert.equal([priv.mapping.kind, anonName(priv.mapping)], ['anon', 'arena']);
  // A name of the other family is not given: the kernel names each kind its own way.
  assert.is(anonName({ ...priv.mapping, name: '[anon_shmem:arena]' }), null);
});

test('a shared mapping with no inode is still refused in one line', () => {
  assert.throws(() => classify(smaps('7f0000000000-7f0000001000 rw-s 00000000 00:00 0                          [odd]')), /a shared mapping with no file behind it/);
});

for (const samePid of [false, true]) {
  test(`aio contexts (a one-page and a ten-page ring, each used before): at their ids, submitting and reaping after a restart (${samePid ? '--same-pid' : 'new pid'})`, () => {
    const out = gated(AIO, [], (pid, image) => {
      checkpointProcess(pid, image, { kill: true });
      reap(pid, 10_000);
      return restartProcess(ProcessImage.read(image), { samePid }).pid;
    });
    assert.is(out, 'before: PASS\nafter: PASS\n');
  });
}

test('an aio ring holding a completed event not yet reaped is refused at dump in one line; the process runs on', () => {
  gated(AIO, ['pending'], (pid, image) => {
    assert.throws(() => checkpointProcess(pid, image), (e: unknown) => e instanceof CrError && /\/\[aio\] \(deleted\): an aio ring \(io_setup\) with 1 completed events not yet reaped/.test(e.message) && !e.message.includes('\n'));
    return pid;
  });
});

test('aio rings a forked child holds copies of are refused at dump, naming the other process; both run on', () => {
  gated(AIO, ['fork'], (pid, image) => {
    const child = Number(readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim());
    assert.ok(child > 0);
    const err = (() => {
      try {
        checkpointProcess(pid, image);
        return '';
      } catch (e) {
        return e instanceof CrError ? e.message : String(e);
      }
    })();
    assert.match(err, new RegExp(`an aio ring that pid ${child} maps too \\(a copy inherited across fork`));
    assert.match(err, new RegExp(`an aio ring that pid ${pid} maps too`));
    return pid;
  });
});

test.run();
