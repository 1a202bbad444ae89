// Builds everything under build/: the shared constants (scripts/abi.mjs), the wasm planner (asc)
// and the TypeScript (tsc).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generated } from './abi.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);
mkdirSync(join(root, 'build'), { recursive: true });
const run = (cmd, args) => {
  try {
    execFileSync(cmd, args, { cwd: root, stdio: 'inherit' });
  } catch {
    console.error(`build failed: ${[cmd, ...args].join(' ')}`);
    process.exit(1);
  }
};
if (!existsSync(bin('asc')) || !existsSync(bin('tsc'))) {
  console.error('build: run `npm install` first (asc and tsc come from node_modules)');
  process.exit(1);
}
// The constants both languages share, from their one source (scripts/abi.mjs); written only
// when they changed, so a build leaves an up-to-date tree untouched.
for (const [path, text] of Object.entries(generated())) {
  const at = join(root, path);
  if (!existsSync(at) || readFileSync(at, 'utf8') !== text) writeFileSync(at, text);
}
run(bin('asc'), ['--config', 'asconfig.json']);
run(bin('tsc'), ['-p', '.']);
// The help texts rendered from every command's declaration, for help without loading the commands.
const { helpTexts, HELP_TEXTS } = await import(join(root, 'build', 'src', 'cli.js'));
writeFileSync(HELP_TEXTS, `${JSON.stringify(await helpTexts())}\n`);
