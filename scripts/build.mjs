// Builds everything under build/: the shared constants (scripts/abi.mjs), the wasm planner (asc),
// the TypeScript (tsc), the help texts, and each command's bundle with its code cache (esbuild).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
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

// The help texts rendered from every command's declaration, for help without loading the commands.
const { commands, helpTexts, HELP_TEXTS } = await import(join(root, 'build', 'src', 'cli.js'));
writeFileSync(HELP_TEXTS, `${JSON.stringify(await helpTexts())}\n`);

// Each command in one file (src/bundle.ts runs it): Node resolves, reads and compiles one script
// instead of about a hundred ES modules, and none of another command's. Its entry is cr's main
// (src/dispatch.ts) over that command alone. koffi stays outside (its native library is found
// from its package directory), and so does msgpackr-extract (msgpackr's optional native part,
// likewise). Each module's import.meta.url stays the URL of its file under build/src, so the paths
// it makes from it (the planner's wasm, the help texts, package.json) are the same bundled or not.
const { BUNDLES, BUNDLE_WRAPPER, LOADER, bundleFile, cacheFile, compileBundle } = await import(join(root, 'build', 'src', 'bundle.js'));
const BUNDLE_URL = '__crBundleUrl';
const HASH_HOLDER = '0'.repeat(64);
const names = Object.keys(commands);
mkdirSync(BUNDLES, { recursive: true });
/** Each module's import.meta.url made the URL of its file under build/src, from `base`, the output's own URL. */
const importMetaUrl = (outDir, base = BUNDLE_URL) => ({
  name: 'import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\.m?js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      const url = `new URL(${JSON.stringify(relative(outDir, args.path))}, ${base}).href`;
      return { contents: text.replaceAll('import.meta.url', url), loader: 'js' };
    });
  },
});
const bundled = await Promise.all(
  names.map((name) =>
    build({
      stdin: {
        contents: `import { dispatcher } from './dispatch.js';\nexport const main = dispatcher({ ${JSON.stringify(name)}: () => import('./commands/${name}.js') });\n`,
        resolveDir: join(root, 'build', 'src'),
        sourcefile: `${name}-entry.js`,
      },
      outfile: bundleFile(name),
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      // No keepNames: its __name call for each function and class (660 in the dump's bundle, each
      // a defineProperty that gives the function a map of its own) allocated 270 KB at start, a
      // scavenge's worth. Without it a function esbuild renames (a second `classify` becomes
      // `classify2`) carries that name in a CR_DEBUG stack; cr reads no function's name, and its
      // error classes set their own.
      charset: 'ascii',
      external: ['koffi', 'msgpackr-extract'],
      write: false,
      logLevel: 'warning',
      // The file is the whole script src/bundle.ts compiles: CommonJS's wrapper around the modules.
      banner: { js: `// cr bundle ${HASH_HOLDER}\n${BUNDLE_WRAPPER}const ${BUNDLE_URL} = require('node:url').pathToFileURL(__filename).href;` },
      footer: { js: '})' },
      plugins: [importMetaUrl(BUNDLES)],
    }),
  ),
);
// Each written whole under another name, then renamed: a cr starting meanwhile reads the old or the new.
const replace = (path, data) => {
  writeFileSync(`${path}.new`, data);
  renameSync(`${path}.new`, path);
};
for (const [i, name] of names.entries()) {
  // src/bundle.ts reads a bundle as Latin-1, one byte a character, and V8 holds an ASCII source
  // in one byte a character (one other character makes it two). esbuild writes code in ASCII
  // (charset above) but keeps some comments as they are (a class member's doc comment): what is
  // left outside ASCII is in a comment, where an escape reads as well.
  const text = bundled[i].outputFiles[0].text.replace(/[^\x00-\x7f]/gu, (c) => `\\u{${c.codePointAt(0).toString(16)}}`);
  // The first line names the bundle's hash: the code cache is taken only with the bundle it was made from.
  const source = text.replace(HASH_HOLDER, createHash('sha256').update(text).digest('hex'));
  const header = source.slice(0, source.indexOf('\n') + 1);
  const file = bundleFile(name);
  if (!existsSync(file) || readFileSync(file, 'utf8') !== source) replace(file, source);
  // The code cache, made again only for a new bundle: every function of the bundle compiled, not
  // only those V8 compiles up front, so a command compiles none of its own as it runs (a dump's
  // CPU about a tenth less than with a cache of the modules' top levels: docs/performance.md).
  // V8 compiles them all under --no-lazy; the flag is set back before the cache is made, since a
  // cache records V8's flags and is refused by a V8 whose flags differ (cr runs with the default).
  const cache = cacheFile(name);
  if (existsSync(cache) && readFileSync(cache).subarray(0, header.length).toString('latin1') === header) continue;
  setFlagsFromString('--no-lazy');
  let script;
  try {
    script = compileBundle(name, { cache: false }).script;
  } finally {
    setFlagsFromString('--lazy');
  }
  replace(cache, Buffer.concat([Buffer.from(header, 'latin1'), script.createCachedData()]));
}
// The loader cr.mjs runs a bundle with (src/bundle.ts), as CommonJS: required, it costs neither
// the ES module loader's work for one more file nor a namespace of each builtin it imports.
const loader = await build({
  entryPoints: [join(root, 'build', 'src', 'bundle.js')],
  bundle: true,
  platform: 'node',
  format: 'cjs',
  target: 'node20',
  write: false,
  logLevel: 'warning',
  plugins: [importMetaUrl(dirname(LOADER), "require('node:url').pathToFileURL(__filename).href")],
});
if (!existsSync(LOADER) || readFileSync(LOADER, 'utf8') !== loader.outputFiles[0].text) replace(LOADER, loader.outputFiles[0].text);
// Bundles of commands there are no more: cr.mjs would run one if it found it.
for (const file of readdirSync(BUNDLES)) {
  if (!names.some((name) => file === `${name}.cjs` || file === `${name}.cjs.cache`)) rmSync(join(BUNDLES, file));
}
