// cr demo, as a new user runs it: no arguments, every step in words, the restored process
// reading the queued bytes, the restarted counter carrying on from the next number, nothing left
// running, the images left where it says.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

test('node cr.mjs demo: dumps, restores, diff says same, both processes read the queued bytes; a whole counter restarts from the next number', () => {
  const r = spawnSync(process.execPath, [join(ROOT, 'cr.mjs'), 'demo'], { encoding: 'utf8', cwd: ROOT });
  const dir = /The images are in (\S+) /.exec(r.stdout)?.[1];
  try {
    assert.is(r.stderr, '');
    assert.is(r.status, 0);
    for (const step of [1, 2, 3, 4, 5, 6, 7, 8, 9]) assert.match(r.stdout, new RegExp(`^Step ${step}\\. `, 'm'));
    assert.match(r.stdout, /^ +\$ cr dump --fds-only --pid \d+ -o \S+original\.img\n +dumped pid \d+ \(python3\): 5 fds, 3 descriptions, 2 pipes holding 77 bytes/m);
    assert.match(r.stdout, /^ +\$ cr diff \S+original\.img \S+restored\.img\n +same: .* describe the same fd table \(5 fds, 3 descriptions, 2 pipes\)$/m);
    const pids = [...r.stdout.matchAll(/^ +(original|restored) \(pid (\d+)\): +fd 9 gave "hello from the original process\\n", fd 5 gave "this pipe lost its writer but kept its bytes\\n"$/gm)];
    assert.equal(pids.map((m) => m[1]), ['original', 'restored']);
    for (const m of pids) assert.not.ok(existsSync(`/proc/${m[2]}`), `pid ${m[2]} is still there`);
    assert.ok(dir && existsSync(join(dir, 'restored.img')));
    // The whole-process part: dumped whole, killed, restarted as a new pid, counting on from the next number.
    const counter = /^ +\$ cr dump --pid (\d+) -o \S+counter\.img --leave-stopped\n +dumped pid \1 \((counter|python3)\), the whole process: \d+ mappings, /m.exec(r.stdout);
    assert.ok(counter, 'the counter dumped whole');
    const last = Number(/The last number it wrote was (\d+)\./.exec(r.stdout)?.[1]);
    const restarted = new RegExp(`^ +\\$ cr restore \\S+counter\\.img --detach\\n +cr restore: \\S+ restarted as pid (\\d+), a new pid \\(it was ${counter![1]} when dumped\\)\\n +\\1$`, 'm').exec(r.stdout);
    assert.ok(restarted, 'restore says which pid it got, and prints it');
    assert.match(r.stdout, new RegExp(`^ +\\.\\.\\. ${last - 2}, ${last - 1}, ${last} \\| ${last + 1}, ${last + 2}, ${last + 3}, ${last + 4}, ${last + 5} \\.\\.\\.$`, 'm'));
    assert.match(r.stdout, new RegExp(`pid ${restarted![1]} exited with status 0\\.`));
    for (const pid of [counter![1], restarted![1]]) assert.not.ok(existsSync(`/proc/${pid}`), `pid ${pid} is still there`);
    assert.ok(existsSync(join(dir!, 'counter.img')));
  } finally {
    if (dir?.includes('cr-demo-')) rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
