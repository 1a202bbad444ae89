// The tests that run cr as another user pass wherever the checkout lives, even where that user
// cannot reach it (a clone under /root or any 0700 directory): they run a readable copy
// (test/helpers/unprivileged.ts), and this file keeps both halves of that true.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ROOT } from './helpers/cli.js';
import { asUser, copyCr, NOBODY, unprivilegedTest } from './helpers/unprivileged.js';

/** `node DIR/cr.mjs ...` as nobody, in DIR. */
function crIn(dir: string, args: string[]): { code: number | null; stdout: string; stderr: string } {
  const argv = [...asUser(NOBODY), process.execPath, join(dir, 'cr.mjs'), ...args];
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', cwd: dir, timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

unprivilegedTest('cr runs as nobody from a copy of a checkout nobody cannot reach: image, planner and ptrace all load', () => {
  const hidden = mkdtempSync(join(tmpdir(), 'cr-hidden-'));
  const readable = mkdtempSync(join(tmpdir(), 'cr-readable-'));
  try {
    chmodSync(hidden, 0o700);
    const checkout = join(hidden, 'checkout');
    copyCr(ROOT, checkout);
    const image = join(readable, 'seed.img');
    copyFileSync(join(ROOT, 'test', 'fixtures', 'hardening-seed.img'), image);
    chmodSync(image, 0o644);
    // The layout is what the issue was about: from the checkout itself, nobody gets nowhere.
    const direct = crIn(checkout, ['plan', image]);
    assert.is(direct.code, 1, direct.stderr); // node itself fails to load cr: its uncaught-error status
    assert.match(direct.stderr, /Cannot find module/);

    copyCr(checkout, join(readable, 'cr'));
    chmodSync(readable, 0o755);
    // restore -- CMD reads the image (msgpackr), plans (wasm) and spawns and traces (koffi).
    const r = crIn(join(readable, 'cr'), ['restore', image, '--allow-uid-change', '--', '/bin/true']);
    assert.is(r.code, 0, r.stderr);
    // Only what cr loads is copied: the build tools stay behind (binaryen alone is ~100 MB).
    const packages = readdirSync(join(readable, 'cr', 'node_modules'));
    assert.ok(packages.includes('koffi') && packages.includes('msgpackr'), packages.join(' '));
    for (const tool of ['assemblyscript', 'binaryen', 'typescript', 'uvu']) assert.not.ok(packages.includes(tool), tool);
  } finally {
    rmSync(hidden, { recursive: true, force: true });
    rmSync(readable, { recursive: true, force: true });
  }
});

test('no test runs anything as another user except through test/helpers/unprivileged.ts', () => {
  const sources: string[] = [];
  const visit = (path: string): void => {
    if (statSync(path).isDirectory()) readdirSync(path).forEach((e) => visit(join(path, e)));
    else if (/\.(ts|mjs|c|py)$/.test(path)) sources.push(path);
  };
  const testDir = join(ROOT, 'test');
  visit(testDir);
  assert.ok(existsSync(join(testDir, 'helpers', 'unprivileged.ts')));
  const offenders: string[] = [];
  for (const path of sources) {
    const name = relative(testDir, path);
    if (name === join('helpers', 'unprivileged.ts') || name === 'unprivileged.test.ts') continue;
    readFileSync(path, 'utf8').split('\n').forEach((line, i) => {
      if (/^\s*(\/\/|\*|\/\*)/.test(line)) return; // comments may name setpriv
      // Switching users by hand, or running node (cr) as another user without the readable copy.
      const byHand = /setpriv|runuser|--reuid|\bsudo\b/.test(line);
      const checkoutCr = /asUser\(.*process\.execPath/.test(line) && !line.includes('readableCr()');
      if (byHand || checkoutCr) offenders.push(`${name}:${i + 1}`);
    });
  }
  assert.equal(offenders, []);
});

test.run();
