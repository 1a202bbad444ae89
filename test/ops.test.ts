// src/plan/ops.ts: a plan's ops as words. Replay dispatches on OP_NAMES[kind], which is a list of
// names in index order kept by hand beside the kinds (K_*, most of them the planner's op codes
// from scripts/abi.mjs): every kind must name its own op, and every op come back from its words.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { OP_NAMES, OpWords, type Op } from '../src/plan/ops.js';

/** One op of every kind, with a distinct value in each field. */
const EVERY: Op[] = [
  { op: 'pipe2', flags: 2048, fds: [3, 4], pipe: 7 },
  { op: 'open', desc: 5, path: '/tmp/x', via: -1, flags: 66, fd: 9 },
  { op: 'open', desc: 6, path: '/proc/self/fd/3', via: 3, flags: 1, fd: 10 },
  { op: 'dup2', from: 3, to: 11, cloexec: true },
  { op: 'dupfd', from: 4, min: 20, cloexec: false, fd: 21 },
  { op: 'close', fd: 12 },
  { op: 'setfl', fd: 13, flags: 2048 },
  { op: 'setfd', fd: 14, cloexec: true },
  { op: 'setpipesz', fd: 15, size: 8192 },
  { op: 'lseek', fd: 16, offset: '9007199254740993' },
  { op: 'create', desc: 8, cloexec: true, fd: 17, call: 'eventfd2(0, EFD_CLOEXEC)' },
  { op: 'link', desc: 9, item: 2, fd: 18, call: 'epoll_ctl(18, EPOLL_CTL_ADD, 3)' },
  { op: 'pty', desc: 10, lowest: 19, fd: 22, done: true, call: 'open("/dev/ptmx")' },
  { op: 'socketpair', cloexec: false, fds: [23, 24], descs: [11, -1], call: 'socketpair(AF_UNIX, SOCK_STREAM)' },
  { op: 'write', fd: 25, pipe: 7, bytes: 4096 },
  { op: 'prlimit', soft: 1024, hard: 4096 },
  { op: 'fork', pid: 4242 },
  { op: 'commit' },
];

test('every kind of op: its words name it in OP_NAMES, and read back as the record they were made from', () => {
  assert.equal(new Set(EVERY.map((o) => o.op)).size, OP_NAMES.length, 'EVERY holds one op of each name');
  const words = OpWords.fromOps(EVERY);
  assert.is(words.length, EVERY.length);
  EVERY.forEach((op, i) => {
    assert.is(OP_NAMES[words.kind(i)], op.op, `op ${i}: kind ${words.kind(i)}`);
    assert.equal(words.op(i), op, `op ${i} read back`);
  });
});

test.run();
