// Dumps of process trees (docs/trees.md): the TREE record's rules, and real trees dumped whole.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { kill, SIGCONT, SIGSTOP } from '../bridge/signal.js';
import { ProcessImage } from '../src/image/process-format.js';
import { decodeWaitStatus, treeProblem, type TreeMember } from '../src/model/tree.js';
import { readStatus } from '../src/proc/process.js';
import { readStat } from '../src/proc/tree.js';
import { cr } from './helpers/cli.js';
import { withProcess } from './helpers/processes.js';

const member = (pid: number, ppid: number, pgid: number, sid: number, zombie: TreeMember['zombie'] = null): TreeMember =>
  ({ pid, ppid, pgid, sid, comm: 'x', cmdline: [], stopped: false, zombie });
const exit0 = { code: 0, signal: null, core: false };

test('tree rules: shapes, groups and sessions no process could have are named', () => {
  const ok: TreeMember[][] = [
    [member(10, 1, 5, 5)],
    // a shell job: the root leads its group in a session led from outside; a child in its own group
    [member(10, 1, 10, 5), member(11, 10, 10, 5), member(12, 10, 12, 5), member(13, 12, 12, 5, exit0)],
    // a daemon: a member that called setsid, and its child
    [member(10, 1, 10, 5), member(11, 10, 11, 11), member(12, 11, 11, 11)],
  ];
  for (const t of ok) assert.is(treeProblem(t), null, JSON.stringify(t));
  const bad: Array<[TreeMember[], RegExp]> = [
    [[], /no processes/],
    [[member(10, 1, 5, 5, exit0)], /the root 10 is a zombie/],
    [[member(10, 1, 5, 5), member(10, 10, 5, 5)], /pid 10 is in the tree twice/],
    [[member(10, 1, 5, 5), member(11, 99, 5, 5)], /process 11: its parent 99 is not in the tree before it/],
    [[member(10, 1, 5, 5), member(11, 10, 5, 5, exit0), member(12, 11, 5, 5)], /its parent 11 is a zombie/],
    [[member(10, 1, 5, 5), member(11, 10, 5, 77)], /session 77, which is neither the root's \(5\) nor led by a member/],
    [[member(10, 1, 5, 5), member(11, 10, 77, 5)], /group 77, which is neither the root's \(5\) nor led by a member/],
    [[member(10, 1, 10, 5), member(11, 10, 11, 11), member(12, 10, 11, 5)], /group 11 of session 11 but in session 5/],
    [[member(10, 1, 10, 5), member(11, 10, 10, 11)], /leads session 11 but is in group 10/],
    [[member(10, 1, 10, 5), member(11, 10, 11, 11), member(12, 11, 10, 11)], /in the root's group 10 but in session 11/],
    [[member(0, 1, 5, 5)], /pid 0 is not 1\.\.4194304/],
  ];
  for (const [t, why] of bad) assert.match(treeProblem(t) ?? '', why);
});

test('wait statuses decode as waitpid gives them', () => {
  assert.equal(decodeWaitStatus(3 << 8), { code: 3, signal: null, core: false });
  assert.equal(decodeWaitStatus(15), { code: null, signal: 15, core: false });
  assert.equal(decodeWaitStatus(0x80 | 11), { code: null, signal: 11, core: true });
});

test('a single process is a tree of one: its group, session and job-control stop are in the image, and it stays stopped', () =>
  withProcess(['sleep', '1000'], { fds: [], setsid: true }, async (pid) => {
    const dir = mkdtempSync(join(tmpdir(), 'cr-tree-dump-'));
    try {
      const running = join(dir, 'running.img');
      let r = await cr(['dump', '--pid', String(pid), '-o', running]);
      assert.is(r.code, 0, r.stderr);
      const stat = readStat(pid);
      assert.equal(ProcessImage.read(running).tree, [{ pid, ppid: process.pid, pgid: pid, sid: pid, comm: 'sleep', cmdline: ['sleep', '1000'], stopped: false, zombie: null }]);
      assert.equal([stat.pgid, stat.sid], [pid, pid]);
      kill(pid, SIGSTOP);
      for (let i = 0; readStatus(pid).state !== 'T'; i++) if (i > 1e6) throw new Error('sleep did not stop');
      const stopped = join(dir, 'stopped.img');
      r = await cr(['dump', '--pid', String(pid), '-o', stopped]);
      assert.is(r.code, 0, r.stderr);
      assert.is(ProcessImage.read(stopped).tree[0]!.stopped, true);
      const after = readStatus(pid);
      assert.equal([after.state, after.tracerPid], ['T', 0], 'still job-control stopped, not traced');
      kill(pid, SIGCONT);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }));

test.run();
