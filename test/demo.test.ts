// cr demo, as a new user runs it: no arguments, every step in words, the restored process
// reading the queued bytes, the restarted counter carrying on from the next number, nothing left
// running, its temporary directory removed; then the commands it offers to paste, run as printed.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

test('node cr.mjs demo: dumps, restores, diff says same, both processes read the queued bytes; a whole counter restarts from the next number', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'cr.mjs'), 'demo'], { encoding: 'utf8', cwd: ROOT });
  const dir = /The temporary directory (\S+) is removed/.exec(r.stdout)?.[1];
  try {
    assert.is(r.stderr, '');
    assert.is(r.status, 0);
    for (const step of [1, 2, 3, 4, 5, 6, 7, 8, 9]) assert.match(r.stdout, new RegExp(`^Step ${step}\\. `, 'm'));
    assert.match(r.stdout, /^ +\$ node cr\.mjs dump --fds-only --pid \d+ -o \S+original\.img\n +dumped pid \d+ \(python3\): 5 fds, 3 descriptions, 2 pipes holding 77 bytes/m);
    assert.match(r.stdout, /^ +\$ node cr\.mjs diff \S+original\.img \S+restored\.img\n +same: .* describe the same fd table \(5 fds, 3 descriptions, 2 pipes\)$/m);
    const pids = [...r.stdout.matchAll(/^ +(original|restored) \(pid (\d+)\): +fd 9 gave "hello from the original process\\n", fd 5 gave "this pipe lost its writer but kept its bytes\\n"$/gm)];
    assert.equal(pids.map((m) => m[1]), ['original', 'restored']);
    for (const m of pids) assert.not.ok(existsSync(`/proc/${m[2]}`), `pid ${m[2]} is still there`);
    assert.ok(dir, 'the demo names its temporary directory');
    // The whole-process part: dumped whole, killed, restarted (its pid kept when cr can), counting on from the next number.
    const counter = /^ +\$ node cr\.mjs dump --pid (\d+) -o \S+counter\.img --leave-stopped\n +dumped pid \1 \((counter|python3)\), the whole process: \d+ mappings, /m.exec(r.stdout);
    assert.ok(counter, 'the counter dumped whole');
    const last = Number(/The last number it wrote was (\d+)\./.exec(r.stdout)?.[1]);
    const restarted = new RegExp(`^ +\\$ node cr\\.mjs restore \\S+counter\\.img --detach\\n +cr restore: \\S+ restarted as pid (\\d+), (?:a new pid \\(it was ${counter![1]} when dumped\\)|the pid it had when dumped)\\n +\\1$`, 'm').exec(r.stdout);
    assert.ok(restarted, 'restore says which pid it got, and prints it');
    assert.match(r.stdout, new RegExp(`^ +\\.\\.\\. ${last - 2}, ${last - 1}, ${last} \\| ${last + 1}, ${last + 2}, ${last + 3}, ${last + 4}, ${last + 5} \\.\\.\\.$`, 'm'));
    assert.match(r.stdout, new RegExp(`pid ${restarted![1]} exited with status 0\\.`));
    for (const pid of [counter![1], restarted![1]]) assert.not.ok(existsSync(`/proc/${pid}`), `pid ${pid} is still there`);
    assert.not.ok(existsSync(dir!), `${dir} is still there`);
  } finally {
    if (dir?.includes('cr-demo-')) rmSync(dir, { recursive: true, force: true });
  }
  // The commands it offers, pasted into sh as they are, in a directory with cr.mjs in it.
  const offered = /^Try it on a process of your own.*\n((?:  .*\n?)+)/m.exec(r.stdout)?.[1];
  assert.ok(offered, 'the demo ends with commands to paste');
  const lines = offered!.split('\n').map((l) => l.trim()).filter(Boolean);
  assert.ok(lines.every((l) => l.includes('node cr.mjs ')), 'every command is run as node cr.mjs');
  const scratch = mkdtempSync(join(tmpdir(), 'cr-demo-try-'));
  let restored: string | undefined;
  try {
    symlinkSync(join(ROOT, 'cr.mjs'), join(scratch, 'cr.mjs'));
    // Files, as a terminal would be: node's stdio pipes are sockets, which the sleep would hold and cr refuse.
    const out = openSync(join(scratch, 'out'), 'w');
    const err = openSync(join(scratch, 'err'), 'w');
    const status = spawnSync('sh', ['-c', lines.join('\n')], { cwd: scratch, stdio: ['ignore', out, err], timeout: 60_000 }).status;
    closeSync(out);
    closeSync(err);
    const t = { stdout: readFileSync(join(scratch, 'out'), 'utf8'), stderr: readFileSync(join(scratch, 'err'), 'utf8') };
    restored = /^(\d+)$/m.exec(t.stdout)?.[1];
    assert.is(status, 0, t.stderr);
    assert.match(t.stdout, /^dumped pid \d+ \(sleep\), the whole process: .* -> sleep\.img .*\(process killed\)$/m);
    assert.match(t.stdout, /^process \d+ \(sleep\), uid \d+: "sleep" "1000"$/m);
    assert.match(t.stderr, /^cr restore: sleep restarted as pid (\d+), (a new pid|the pid it had when dumped)/m);
    assert.ok(restored && existsSync(`/proc/${restored}`), 'the restarted sleep runs');
  } finally {
    if (restored) process.kill(Number(restored), 'SIGKILL');
    // The sleep if the dump failed: found by its command line and its directory.
    spawnSync('sh', ['-c', `for p in $(pgrep -x sleep); do [ "$(readlink /proc/$p/cwd)" = "${scratch}" ] && kill -9 $p; done`]);
    rmSync(scratch, { recursive: true, force: true });
  }
});

test.run();
