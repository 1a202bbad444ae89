// `npm test`: runs every compiled test file under build/test (or those whose name matches the
// regex given as the argument), each in a Node process of its own, as many at once as the
// machine has cores (at most 2, or CR_TEST_JOBS): most tests wait on the processes they check,
// so two files at once take about half the time of one after another. Each file's output is
// printed whole when it ends, then the slowest files, `N skipped` (when some were) and one
// summary line `N passed, N failed` (what CI reads); exits non-zero on any failure.
// Test files never share a path or a process (the guide's rule for two clones testing at once
// holds for two files of one run too).
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const testDir = join(root, 'build', 'test');
const pattern = new RegExp(process.argv[2] ?? '\\.test\\.js$');
const jobs = Math.max(1, Number(process.env.CR_TEST_JOBS) || Math.min(2, availableParallelism()));
const files = readdirSync(testDir).filter((f) => f.endsWith('.test.js') && pattern.test(f)).sort();
// The journals of every cr the tests run (and kill) go to a run directory of this run only, not
// the user's own (/run/cr for root): two runs at once never see each other's, none is left.
const runDir = mkdtempSync(join(tmpdir(), 'cr-test-run-'));
const queue = [...files];

// Interrupted (Ctrl-C reaches the whole process group; a kill reaches the runner alone): no file
// starts, each running one is told to end, and once all have, the run directory goes with them
// (a file ended by a signal leaves its own scratch directories under the system's tmp).
const running = new Set();
let interrupted = false;
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    interrupted = true;
    queue.length = 0;
    for (const child of running) child.kill('SIGTERM');
  });
}

/** One file's run: its counts from uvu's summary, its output, how long it took. */
function runFile(file) {
  return new Promise((resolve) => {
    const started = performance.now();
    const child = spawn(process.execPath, [join(testDir, file)], {
      cwd: root,
      env: { ...process.env, XDG_RUNTIME_DIR: runDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(child);
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (out += chunk));
    child.on('close', (code, signal) => {
      const stopped = interrupted && running.has(child);
      running.delete(child);
      const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
      const count = (name) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(plain)?.[1] ?? 0);
      const total = count('Total');
      const passed = count('Passed');
      // uvu's Total counts only the tests it ran: skipped ones are not in it.
      let failed = total - passed;
      if ((code !== 0 || signal !== null) && failed === 0) failed = 1; // a crash before uvu could count
      resolve({ file, out, passed, failed, skipped: count('Skipped'), stopped, seconds: (performance.now() - started) / 1000 });
    });
  });
}

const results = [];
async function worker() {
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    const r = await runFile(file);
    process.stdout.write(`\n${file} (${r.seconds.toFixed(1)} s)\n${r.out.replace(/\s*Total:[\s\S]*$/, '')}\n`);
    results.push(r);
  }
}
const started = performance.now();
await Promise.all(Array.from({ length: jobs }, worker));
rmSync(runDir, { recursive: true, force: true });
if (interrupted) {
  console.log(`\ninterrupted: ${results.filter((r) => !r.stopped).length} of ${files.length} files ran to their end`);
  process.exit(130);
}

const sum = (k) => results.reduce((n, r) => n + r[k], 0);
const slowest = [...results].sort((a, b) => b.seconds - a.seconds).slice(0, 5);
console.log(`\n${files.length} files, ${jobs} at a time, ${((performance.now() - started) / 1000).toFixed(1)} s; slowest: ${slowest.map((r) => `${r.file} ${r.seconds.toFixed(1)} s`).join(', ')}`);
for (const r of results.filter((x) => x.failed > 0)) console.log(`failed in ${r.file}: ${r.failed}`);
if (sum('skipped') > 0) console.log(`${sum('skipped')} skipped`);
if (files.length === 0) console.log(`no test file in build/test matches ${pattern}`);
const failed = files.length === 0 ? 1 : sum('failed');
console.log(`${sum('passed')} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
