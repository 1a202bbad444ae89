// parseTables / parseTarget: every rule of docs/fd-table.md, one bad input each, and the
// message must name the field.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CrError, EXIT_BAD_INPUT } from '../src/errors.js';
import type { FdTables } from '../src/model/fdtable.js';
import { O_APPEND, O_ASYNC, O_CLOEXEC, O_DSYNC, O_LARGEFILE, O_NONBLOCK, O_RDONLY, O_RDWR, O_SYNC, O_WRONLY } from '../src/model/fdtable.js';
import { MAX_ENTRIES, parseFdList, parseRlimit, parseTables, parseTarget } from '../src/image/validate.js';
import { tableJson } from '../src/model/json.js';

const GOOD = (): FdTables => ({
  processes: [{ pid: 100, fds: [
    { fd: 0, desc: 1, cloexec: false },
    { fd: 1, desc: 2, cloexec: true },
    { fd: 7, desc: 2, cloexec: false },
    { fd: 9, desc: 3, cloexec: false },
    { fd: 10, desc: 4, cloexec: false },
    { fd: 11, desc: 5, cloexec: true },
    { fd: 12, desc: 6, cloexec: false },
    { fd: 13, desc: 7, cloexec: false },
  ], rlimit: { soft: 1024, hard: 4096 } }],
  descs: [
    { id: 1, kind: 'pipe', flags: O_RDONLY, pipe: 0 },
    { id: 2, kind: 'pipe', flags: O_WRONLY | O_NONBLOCK, pipe: 0 },
    { id: 3, kind: 'pipe', flags: O_RDWR | O_LARGEFILE, pipe: 0 },
    { id: 4, kind: 'fifo', flags: O_RDONLY, pipe: 5, path: '/tmp/fifo' },
    { id: 5, kind: 'file', flags: O_WRONLY | O_APPEND | O_LARGEFILE, path: '/var/log/x', offset: 123 },
    { id: 6, kind: 'chr', flags: O_RDWR, path: '/dev/null' },
    { id: 7, kind: 'eventfd', flags: O_RDWR, count: 3, semaphore: false },
  ],
  pipes: [
    { id: 0, capacity: 65536, data: Buffer.from('queued') },
    { id: 5, capacity: 8192, data: Buffer.from('abc'), packets: [1, 2] },
  ],
});

/** Apply `change` to a fresh good table (as plain JSON) and expect this error message. */
function rejects(change: (t: any) => void, message: string | RegExp): void {
  const t = JSON.parse(tableJson(GOOD()));
  change(t);
  try {
    parseTables(t);
  } catch (err) {
    assert.instance(err, CrError);
    assert.is((err as CrError).code, EXIT_BAD_INPUT);
    const text = (err as Error).message;
    assert.not.match(text, '\n');
    if (typeof message === 'string') assert.is(text, message);
    else assert.match(text, message);
    return;
  }
  assert.unreachable(`accepted a table that should fail with: ${message}`);
}

test('a good table comes back normalised: O_LARGEFILE added to path-opened descriptions', () => {
  const t = parseTables(JSON.parse(tableJson(GOOD())));
  const want = GOOD();
  want.descs[3].flags |= O_LARGEFILE;
  want.descs[5].flags |= O_LARGEFILE;
  assert.equal(t, want);
  assert.is(t.descs[0].flags, O_RDONLY); // a pipe2() end stays without it
});

test('table shape: objects, arrays, known fields only', () => {
  for (const bad of [null, 3, 'x', [], true]) {
    assert.throws(() => parseTables(bad), /^table: expected an object/);
  }
  rejects((t) => (t.extra = 1), 'table: unknown field "extra"');
  rejects((t) => delete t.processes[0].fds, 'processes[0].fds: expected an array, got missing');
  rejects((t) => (t.descs = {}), 'descs: expected an array, got an object');
  rejects((t) => (t.processes[0].fds[2] = [1]), 'processes[0].fds[2]: expected an object, got an array');
  rejects((t) => (t.processes[0].fds[0].extra = 0), 'processes[0].fds[0]: unknown field "extra"');
  rejects((t) => (t.pipes[0] = JSON.parse('{"__proto__": 1}')), 'pipes[0]: unknown field "__proto__"');
  rejects((t) => (t.processes[0].fds.length = MAX_ENTRIES + 1), `processes[0].fds: ${MAX_ENTRIES + 1} entries is more than ${MAX_ENTRIES}`);
});

test('numbers: integers in range, no NaN, no strings, no nesting', () => {
  rejects((t) => (t.processes[0].fds[1].fd = 1.5), 'processes[0].fds[1].fd: 1.5 is not an integer');
  rejects((t) => (t.processes[0].fds[1].fd = NaN), 'processes[0].fds[1].fd: NaN is not an integer');
  rejects((t) => (t.processes[0].fds[1].fd = Infinity), 'processes[0].fds[1].fd: Infinity is not an integer');
  rejects((t) => (t.processes[0].fds[1].fd = -1), 'processes[0].fds[1].fd: -1 is below 0');
  rejects((t) => (t.processes[0].fds[1].fd = '1'), 'processes[0].fds[1].fd: expected an integer, got "1"');
  rejects((t) => (t.processes[0].fds[1].fd = [[[[[1]]]]]), 'processes[0].fds[1].fd: expected an integer, got an array');
  rejects((t) => (t.processes[0].fds[1].fd = 2 ** 53), /^processes\[0\]\.fds\[1\]\.fd: 9007199254740992 is above/);
  rejects((t) => (t.descs[0].flags = 2 ** 32), 'descs[0].flags: 4294967296 is above 4294967295');
  rejects((t) => (t.processes[0].fds[1].cloexec = 1), 'processes[0].fds[1].cloexec: expected true or false, got 1');
  rejects((t) => (t.descs[0].kind = 'x'.repeat(1000)), /^descs\[0\]\.kind: expected one of .*got "x{40}\.\.\."$/);
});

test('processes: pids once each, a parent listed before its child, at least one; the old one-process shape refused', () => {
  const child = (t: any, over: object = {}) => t.processes.push({ pid: 101, parent: 100, fds: [{ fd: 3, desc: 5, cloexec: false }], rlimit: { soft: 64, hard: 64 }, ...over });
  // A description two processes hold is one object referenced twice: accepted.
  const two = JSON.parse(tableJson(GOOD()));
  child(two);
  assert.is(parseTables(two).processes[1]!.parent, 100);
  rejects((t) => child(t, { pid: 100 }), 'processes[1].pid: 100 is used twice (also processes[0])');
  rejects((t) => child(t, { parent: 102 }), 'processes[1].parent: no process with pid 102 is listed before it');
  rejects((t) => child(t, { parent: 101 }), 'processes[1].parent: no process with pid 101 is listed before it');
  rejects((t) => child(t, { pid: 0 }), 'processes[1].pid: 0 is below 1');
  rejects((t) => child(t, { fds: [{ fd: 3, desc: 42, cloexec: false }] }), 'processes[1].fds[0].desc: no description with id 42');
  rejects((t) => (t.processes = []), 'processes: an empty list (an image holds at least one process)');
  rejects((t) => delete t.processes, 'processes: expected an array, got missing');
  const old = { fds: GOOD().processes[0]!.fds, descs: GOOD().descs, pipes: GOOD().pipes, rlimit: { soft: 1024, hard: 4096 } };
  assert.throws(() => parseTables(old), /^table: fds and rlimit at the top is the old one-process shape; they now go in processes: \[\{pid, fds, rlimit\}\]/);
});

test('rlimit: soft <= hard, both within the kernel ceiling', () => {
  rejects((t) => (t.processes[0].rlimit = { soft: 10, hard: 5 }), 'processes[0].rlimit.soft: 10 is above processes[0].rlimit.hard 5');
  rejects((t) => (t.processes[0].rlimit.hard = 2 ** 31), 'processes[0].rlimit.hard: 2147483648 is above 2147483584');
  rejects((t) => (t.processes[0].rlimit.soft = undefined), 'processes[0].rlimit.soft: expected an integer, got missing');
  rejects((t) => (t.processes[0].rlimit.max = 1), 'processes[0].rlimit: unknown field "max"');
});

test('fds: distinct, below the soft limit, naming an existing description', () => {
  rejects((t) => (t.processes[0].fds[4].fd = 70000), /^processes\[0\]\.fds\[4\]\.fd: 70000 is not below rlimit\.soft 1024$/);
  rejects((t) => (t.processes[0].fds[3].fd = 7), 'processes[0].fds[3].fd: 7 appears twice (also fds[2])');
  rejects((t) => (t.processes[0].fds[3].desc = 99), 'processes[0].fds[3].desc: no description with id 99');
  rejects((t) => (t.processes[0].fds[3].desc = 2), 'descs[2]: description 3 has no fd');
});

test('descriptions: ids, kinds, fields each kind has', () => {
  rejects((t) => (t.descs[1].id = 1), 'descs[1].id: 1 is used twice (also descs[0])');
  rejects((t) => (t.descs[4].pipe = 0), 'descs[4]: a file description has no pipe');
  rejects((t) => (t.descs[0].path = '/x'), 'descs[0]: a pipe description has no path');
  rejects((t) => (t.descs[3].offset = 0), 'descs[3]: a fifo description has no offset');
  rejects((t) => delete t.descs[4].offset, 'descs[4].offset: expected an integer, got missing');
  rejects((t) => (t.descs[4].offset = -5), 'descs[4].offset: -5 is below 0');
  rejects((t) => delete t.descs[5].path, 'descs[5].path: expected a string, got missing');
  rejects((t) => delete t.descs[3].pipe, 'descs[3].pipe: expected an integer, got missing');
  rejects((t) => (t.descs[3].pipe = 77), 'descs[3].pipe: no pipe with id 77');
});

test('flags: what F_GETFL can say, never O_CLOEXEC', () => {
  rejects((t) => (t.descs[0].flags = 3), 'descs[0].flags: access mode 3 is not O_RDONLY, O_WRONLY or O_RDWR');
  rejects((t) => (t.descs[0].flags = O_CLOEXEC), "descs[0].flags: O_CLOEXEC is never part of F_GETFL's answer here");
  rejects((t) => (t.descs[0].flags = 0o100), "descs[0].flags: O_CREAT is never part of F_GETFL's answer here");
  rejects((t) => (t.descs[0].flags = 0o40000000), 'descs[0].flags: unknown flag bits 0o40000000');
  rejects((t) => (t.descs[4].flags = O_WRONLY | (O_SYNC & ~O_DSYNC)), 'descs[4].flags: __O_SYNC without O_DSYNC');
  const ok = GOOD();
  ok.descs[4].flags = O_WRONLY | O_SYNC | O_ASYNC | O_LARGEFILE;
  assert.is(parseTables(ok).descs[4].flags, O_WRONLY | O_SYNC | O_ASYNC | O_LARGEFILE);
});

test('paths: absolute, non-empty, no NUL, not under /proc, one kind per path', () => {
  rejects((t) => ((t.descs[4] as { path: string }).path = 'rel/x'), 'descs[4].path: "rel/x" is not absolute');
  rejects((t) => ((t.descs[4] as { path: string }).path = ''), 'descs[4].path: empty path');
  rejects((t) => ((t.descs[4] as { path: string }).path = '/a\0b'), 'descs[4].path: path contains NUL');
  rejects((t) => ((t.descs[4] as { path: string }).path = '/proc/self/fd/3'), 'descs[4].path: "/proc/self/fd/3" is under /proc');
  rejects((t) => ((t.descs[4] as { path: string }).path = '//proc/1/mem'), /is under \/proc$/);
  rejects((t) => ((t.descs[4] as { path: string }).path = '/tmp/../proc/./1'), /is under \/proc$/);
  rejects((t) => ((t.descs[4] as { path: string }).path = '/' + 'a'.repeat(5000)), 'descs[4].path: path of 5001 characters is longer than PATH_MAX');
  rejects((t) => ((t.descs[4] as { path: string }).path = '/tmp/fifo'), 'descs[4].path: "/tmp/fifo" is a fifo in descs[3], not a file');
  const ok = GOOD();
  (ok.descs[4] as { path: string }).path = '/procfs/x';
  assert.is((parseTables(ok).descs[4] as { path: string }).path, '/procfs/x');
});

test('pipes: capacity, canonical base64 within capacity, packets', () => {
  rejects((t) => (t.pipes[0].capacity = 0), 'pipes[0].capacity: 0 is below 1');
  rejects((t) => (t.pipes[0].capacity = 12288), 'pipes[0].capacity: 12288 is not a power of two times 4096');
  rejects((t) => (t.pipes[0].capacity = 1000), 'pipes[0].capacity: 1000 is not a power of two times 4096');
  rejects((t) => (t.pipes[0].capacity = 2 ** 32), 'pipes[0].capacity: 4294967296 is above 2147483648');
  rejects((t) => (t.pipes[0].data = 'cXVldWVk'.slice(0, 7)), 'pipes[0].data: not canonical base64');
  rejects((t) => (t.pipes[0].data = 'cXVldWVk\n'), 'pipes[0].data: not canonical base64');
  rejects((t) => (t.pipes[0].data = 'YR=='), 'pipes[0].data: not canonical base64'); // stray bits after the byte
  rejects((t) => (t.pipes[0].data = 5), 'pipes[0].data: expected a base64 string, got 5');
  rejects((t) => (t.pipes[1].data = Buffer.alloc(8193).toString('base64')), 'pipes[1].data: 8193 bytes is more than capacity 8192');
  rejects((t) => (t.pipes[1].data = 'A'.repeat(1 << 20)), 'pipes[1].data: more bytes than capacity 8192');
  rejects((t) => (t.pipes[1].packets = [1, 1]), 'pipes[1].packets: sum 2 is not the data length 3');
  rejects((t) => (t.pipes[1].packets = [3, 0]), 'pipes[1].packets[1]: 0 is below 1');
  rejects((t) => (t.pipes[1].packets = [1, 1, 1]), 'pipes[1].packets: 3 packets do not fit the 2 buffers of capacity 8192');
  rejects((t) => {
    t.pipes[1].capacity = 16384;
    t.pipes[1].data = Buffer.alloc(5000).toString('base64');
    t.pipes[1].packets = [5000];
  }, 'pipes[1].packets[0]: 5000 is above 4096');
  rejects((t) => (t.pipes[1].id = 0), 'pipes[1].id: 0 is used twice (also pipes[0])');
  rejects((t) => t.pipes.push({ id: 8, capacity: 4096, data: '' }), 'pipes[2]: pipe 8 has no description');
});

test('pipe ends: one kind per pipe, one FIFO path, at most one pipe2() end of each side', () => {
  rejects((t) => (t.descs[3].pipe = 0), 'descs[3].kind: pipe 0 has a pipe description (descs[0]) and a fifo one');
  rejects((t) => {
    t.processes[0].fds.push({ fd: 20, desc: 8, cloexec: false });
    t.descs.push({ id: 8, kind: 'fifo', flags: O_WRONLY, pipe: 5, path: '/tmp/other' });
  }, 'descs[7].path: FIFO pipe 5 is "/tmp/fifo" in descs[3], not "/tmp/other"');
  rejects((t) => {
    t.processes[0].fds.push({ fd: 20, desc: 8, cloexec: false });
    t.descs.push({ id: 8, kind: 'fifo', flags: O_WRONLY, pipe: 0, path: '/tmp/fifo' });
  }, /^descs\[7\]\.path: FIFO "\/tmp\/fifo" has pipe 5 in descs\[3\], not 0$/);
  rejects((t) => {
    t.processes[0].fds.push({ fd: 20, desc: 8, cloexec: false });
    t.descs.push({ id: 8, kind: 'pipe', flags: O_RDONLY | O_NONBLOCK, pipe: 0 });
  }, 'descs[7].flags: pipe 0 already has a read end made by pipe2() (descs[0]); a reopened end has O_LARGEFILE');
  rejects((t) => (t.descs[2].flags = O_RDWR), 'descs[2].flags: an O_RDWR pipe description always has O_LARGEFILE');
  rejects((t) => (t.descs[1].flags = O_WRONLY | O_SYNC), 'descs[1].flags: O_DSYNC on a pipe end made by pipe2() (no O_LARGEFILE): nothing can set it there');
  const ok = GOOD();
  ok.processes[0]!.fds.push({ fd: 20, desc: 8, cloexec: false });
  ok.descs.push({ id: 8, kind: 'pipe', flags: O_RDONLY | O_LARGEFILE, pipe: 0 });
  assert.is(parseTables(ok).descs.length, 8);
});

test('parseTarget and the CLI forms --target-fds / --rlimit', () => {
  assert.equal(parseTarget({ fds: [0, 1, 2, 5000], rlimit: { soft: 10, hard: 20 }, mode: 'into' }), {
    fds: [0, 1, 2, 5000],
    rlimit: { soft: 10, hard: 20 },
    mode: 'into',
  });
  assert.throws(() => parseTarget({ fds: [1, 1], rlimit: { soft: 1, hard: 1 }, mode: 'fresh' }), /^target\.fds\[1\]: 1 appears twice$/);
  assert.throws(() => parseTarget({ fds: [], rlimit: { soft: 1, hard: 1 }, mode: 'later' }), /^target\.mode: expected one of fresh, into, into-exact, got "later"$/);
  assert.throws(() => parseTarget({ fds: [-3], rlimit: { soft: 1, hard: 1 }, mode: 'fresh' }), /^target\.fds\[0\]: -3 is below 0$/);
  assert.equal(parseFdList('0-2, 7,10-11'), [0, 1, 2, 7, 10, 11]);
  assert.equal(parseFdList('none'), []);
  assert.equal(parseFdList(''), []);
  assert.throws(() => parseFdList('3,x'), /^--target-fds: "x" is not a number or a range like 3-9$/);
  assert.throws(() => parseFdList('5-2'), /^--target-fds: range 5-2 is backwards$/);
  assert.throws(() => parseFdList('1,0-2'), /^--target-fds: 1 appears twice$/);
  assert.throws(() => parseFdList('0-9999999999'), /is not below/);
  assert.equal(parseRlimit('1024'), { soft: 1024, hard: 1024 });
  assert.equal(parseRlimit('64:4096'), { soft: 64, hard: 4096 });
  assert.throws(() => parseRlimit('4096:64'), /^--rlimit: soft 4096 is above hard 64$/);
  assert.throws(() => parseRlimit('-1'), /^--rlimit: "-1" is not N or SOFT:HARD$/);
});

test.run();
