// `npm test`: runs every compiled test file under build/test with uvu, then prints
// `N skipped` (when some were) and one summary line `N passed, N failed` (what CI reads), and
// exits non-zero on failure.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const pattern = process.argv[2] ?? '\\.test\\.js$';
// The journals of every cr the tests run (and kill) go to a run directory of this run only, not
// the user's own (/run/cr for root): two runs at once never see each other's, none is left.
const runDir = mkdtempSync(join(tmpdir(), 'cr-test-run-'));
const child = spawn(process.execPath, [join(root, 'node_modules', 'uvu', 'bin.js'), join('build', 'test'), pattern], {
  cwd: root,
  env: { ...process.env, XDG_RUNTIME_DIR: runDir },
  stdio: ['ignore', 'pipe', 'inherit'],
});
let out = '';
child.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  out += chunk.toString();
});
child.on('close', (code) => {
  rmSync(runDir, { recursive: true, force: true });
  const plain = out.replace(/\x1b\[[0-9;]*m/g, '');
  const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? 0);
  const passed = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? 0);
  const skipped = Number(/Skipped:\s+(\d+)/.exec(plain)?.[1] ?? 0);
  // uvu's Total counts only the tests it ran: skipped ones are not in it.
  let failed = total - passed;
  if (code !== 0 && failed === 0) failed = 1; // a crash before uvu could count
  if (skipped > 0) console.log(`${skipped} skipped`);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 ? 0 : 1);
});
