// Builds everything under build/: the shared constants (scripts/abi.mjs), the wasm planner (asc),
// the TypeScript (tsc), the help texts, and the CLI's bundle with its code cache (esbuild).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
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

// The CLI in one file (src/bundle.ts runs it): Node resolves, reads and compiles one script
// instead of about a hundred ES modules. koffi stays outside (its native library is found from
// its package directory), and so does msgpackr-extract (msgpackr's optional native part, likewise).
// Each module's import.meta.url stays the URL of its file under build/src, so the paths it makes
// from it (the planner's wasm, the help texts, package.json) are the same bundled or not.
const BUNDLE_URL = '__crBundleUrl';
const HASH_HOLDER = '0'.repeat(64);
const bundled = await build({
  entryPoints: [join(root, 'build', 'src', 'cli.js')],
  outfile: join(root, 'build', 'cli.cjs'),
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  keepNames: true,
  external: ['koffi', 'msgpackr-extract'],
  write: false,
  logLevel: 'warning',
  banner: { js: `// cr bundle ${HASH_HOLDER}\nconst ${BUNDLE_URL} = require('node:url').pathToFileURL(__filename).href;` },
  plugins: [
    {
      name: 'import-meta-url',
      setup(b) {
        b.onLoad({ filter: /\.m?js$/ }, (args) => {
          const text = readFileSync(args.path, 'utf8');
          if (!text.includes('import.meta.url')) return undefined;
          const url = `new URL(${JSON.stringify(relative(join(root, 'build'), args.path))}, ${BUNDLE_URL}).href`;
          return { contents: text.replaceAll('import.meta.url', url), loader: 'js' };
        });
      },
    },
  ],
});
const { BUNDLE, CODE_CACHE, loadBundle } = await import(join(root, 'build', 'src', 'bundle.js'));
const text = bundled.outputFiles[0].text;
// The first line names the bundle's hash: the code cache is taken only with the bundle it was made from.
const source = text.replace(HASH_HOLDER, createHash('sha256').update(text).digest('hex'));
const header = source.slice(0, source.indexOf('\n') + 1);
// Each written whole under another name, then renamed: a cr starting meanwhile reads the old or the new.
const replace = (path, data) => {
  writeFileSync(`${path}.new`, data);
  renameSync(`${path}.new`, path);
};
if (!existsSync(BUNDLE) || readFileSync(BUNDLE, 'utf8') !== source) replace(BUNDLE, source);
// The help texts rendered from every command's declaration, for help without loading the
// commands. From the bundle (the same modules), which may not share this process with
// build/src's modules: both would declare their types to the one koffi.
const { cli, script } = loadBundle({ cache: false });
writeFileSync(cli.HELP_TEXTS, `${JSON.stringify(await cli.helpTexts())}\n`);
// The code cache: what V8 compiled while every module's top level ran (rendering the help texts
// loads every command); made again only for a new bundle.
const cached = existsSync(CODE_CACHE) && readFileSync(CODE_CACHE).subarray(0, header.length).toString('latin1') === header;
if (!cached) replace(CODE_CACHE, Buffer.concat([Buffer.from(header, 'latin1'), script.createCachedData()]));
