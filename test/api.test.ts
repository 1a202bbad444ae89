// cr as a library, used the way a Node program would: a script in a directory of its own whose
// node_modules/cr is this checkout imports the package by name, dumps a self-checking process
// (test/fixtures/fd-selfcheck.c) whole with kill, shows, plans and diffs the image, restarts it,
// and meets refusals as CrErrors carrying the CLI's exit codes. The restarted process then checks
// its own fds and says PASS. A TypeScript file importing the same names type-checks against
// the .d.ts the build emits.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { kill, SIGUSR1 } from '../bridge/signal.js';
import { spawn } from '../bridge/spawn.js';
import { ROOT } from './helpers/cli.js';
import { waitFile } from './helpers/fdlayout.js';
import { ensureReaped } from './helpers/processes.js';
import { layoutSpec, selfcheckProgram, type Layout } from './helpers/selfcheck.js';

const PROG = selfcheckProgram();

const layout = (dir: string): Layout => ({
  name: 'api',
  rlimit: { soft: 64, hard: 64 },
  pipes: [{ id: 0, data: Buffer.from('bytes in a pipe\n') }],
  descs: [
    { id: 0, kind: 'end', pipe: 0, access: 'r', flags: 0 },
    { id: 1, kind: 'end', pipe: 0, access: 'w', flags: 0 },
    { id: 2, kind: 'file', path: join(dir, 'data'), access: 'rw', flags: 0, offset: 3 },
  ],
  fds: [
    { fd: 3, desc: 0, cloexec: false },
    { fd: 6, desc: 1, cloexec: true },
    { fd: 8, desc: 2, cloexec: false },
    { fd: 9, desc: 0, cloexec: false },
  ],
});

// The user's program: argv PID DIR. Prints one JSON line of what it saw.
const SCRIPT = `
import { CrError, EXIT_BAD_INPUT, diff, dump, plan, restore, show } from 'cr';
const [pid, dir] = [Number(process.argv[2]), process.argv[3]];
const image = dir + '/app.img';
const refused = (fn) => { try { fn(); return null; } catch (e) { return e instanceof CrError ? [e.code, e.message] : ['not a CrError', String(e)]; } };
const out = {};
out.badPid = await dump(-1, { output: image }).then(() => null, (e) => (e instanceof CrError ? [e.code, e.message] : String(e)));
out.missing = refused(() => show(dir + '/no-such.img'));
const d = await dump(pid, { output: image, kill: true });
out.dump = { whole: d.whole, afterwards: d.afterwards, counts: d.counts, pid: d.pid };
const s = show(image);
out.show = { kind: s.kind, fds: s.table.processes[0].fds.map((f) => f.fd).sort((a, b) => a - b), mappings: s.process.head.mappings.length > 0 };
const p = plan(image);
out.plan = { ops: p.plan.ops.length, mode: p.target.mode };
out.diff = diff(image, image).same;
out.fdsOnlyRestart = await restore(dir + '/fds.json').then(() => null, (e) => (e instanceof CrError ? [e.code] : String(e)));
const r = await restore(image);
out.restore = { mode: r.mode, pid: r.pid, dumpedPid: r.dumpedPid, warnings: r.warnings.length >= 0 };
out.badInputCode = EXIT_BAD_INPUT;
console.log(JSON.stringify(out));
`;

const CONSUMER = `
import { dump, restore, type DumpResult, type RestoreResult, CrError } from 'cr';
const d: DumpResult = await dump(1, { output: 'x.img', fdsOnly: true });
const n: number = d.counts.pipeBytes;
const r: Promise<RestoreResult> = restore('x.img', { command: ['true'] });
const code: number = new CrError('x').code;
// @ts-expect-error: the output is required
void dump(1, {});
export { n, r, code };
`;

function verdict(pid: number, dir: string): string {
  rmSync(join(dir, 'result'), { force: true });
  kill(pid, SIGUSR1);
  return waitFile(dir, 'result');
}

test('a script imports { dump, show, plan, diff, restore } from "cr": results as data, refusals as CrErrors with exit codes, the restarted process PASSes', () => {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'cr-api-')));
  const pids: number[] = [];
  try {
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(ROOT, join(dir, 'node_modules', 'cr'));
    writeFileSync(join(dir, 'user.mjs'), SCRIPT);
    writeFileSync(join(dir, 'fds.json'), JSON.stringify({ fds: [], descs: [], pipes: [], rlimit: { soft: 64, hard: 64 } }));
    const spec = join(dir, 'spec');
    writeFileSync(spec, layoutSpec(layout(dir)));
    const pid = spawn([PROG, 'build', spec, dir], { fds: [] });
    pids.push(pid);
    waitFile(dir, 'ready');
    const r = spawnSync(process.execPath, ['user.mjs', String(pid), dir], { cwd: dir, encoding: 'utf8', timeout: 60_000 });
    assert.is(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    pids.push(out.restore.pid);
    assert.equal(out.badPid, [2, 'pid: -1 is not a pid']);
    assert.is(out.missing[0], 2);
    assert.match(out.missing[1], /no-such\.img/);
    assert.equal(out.dump, { whole: true, afterwards: 'killed', counts: { fds: 4, descriptions: 3, pipes: 1, pipeBytes: 16 }, pid });
    assert.equal(out.show, { kind: 'process', fds: [3, 6, 8, 9], mappings: true });
    assert.ok(out.plan.ops > 0);
    assert.is(out.plan.mode, 'fresh');
    assert.is(out.diff, true);
    assert.equal(out.fdsOnlyRestart, [2], 'a JSON table cannot be restarted: bad input');
    assert.is(out.restore.mode, 'process');
    assert.is(out.restore.dumpedPid, pid);
    assert.is(out.badInputCode, 2);
    assert.is(verdict(out.restore.pid, dir), 'PASS\n', 'the restarted process checks its own fds');
    // The types, as a TypeScript user gets them.
    writeFileSync(join(dir, 'consumer.mts'), CONSUMER);
    writeFileSync(join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, skipLibCheck: true, types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')] }, files: ['consumer.mts'] }));
    const tsc = spawnSync(join(ROOT, 'node_modules', '.bin', 'tsc'), ['-p', dir], { cwd: dir, encoding: 'utf8', timeout: 120_000 });
    assert.is(tsc.status, 0, `${tsc.stdout}${tsc.stderr}`);
  } finally {
    for (const p of pids) ensureReaped(p);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
