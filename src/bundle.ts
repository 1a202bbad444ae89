// Runs the CLI from its bundle: build/cli.cjs holds every module of build/src/cli.js in one file
// (scripts/build.mjs makes it with esbuild), so Node reads one file instead of resolving and
// compiling a hundred ES modules, and V8 takes its compiled code from the cache the build made
// beside it (Node 20 caches no ES module's code; a script's, V8 takes as cachedData).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

type Cli = typeof import('./cli.js');

/** The bundle, beside build/src. */
export const BUNDLE = fileURLToPath(new URL('../cli.cjs', import.meta.url));
/** Its code cache: the bundle's first line (which names its hash), then V8's data. */
export const CODE_CACHE = `${BUNDLE}.cache`;

/**
 * The bundle's module, run from the code cache when the cache is the bundle's (its first line
 * matches): V8 checks the cache against the source's length and V8's version and flags, not the
 * source itself, so a cache is taken only with the bundle it was made from. `cache: false` compiles
 * from the source alone (the build, making the cache).
 */
export function loadBundle(opts: { cache?: boolean } = {}): { cli: Cli; script: Script; header: string } {
  const source = readFileSync(BUNDLE, 'utf8');
  const header = source.slice(0, source.indexOf('\n') + 1);
  let cachedData: Buffer | undefined;
  if (opts.cache !== false) {
    try {
      const cache = readFileSync(CODE_CACHE);
      if (cache.subarray(0, header.length).toString('latin1') === header) cachedData = cache.subarray(header.length);
    } catch {
      // No cache (a build older than it, or unreadable): compiled from the source.
    }
  }
  // CommonJS's wrapper, as Node's own loader gives a module.
  const script = new Script(`(function (exports, require, module, __filename, __dirname) {${source}\n})`, {
    filename: BUNDLE,
    cachedData,
  });
  const module = { exports: {} as Cli };
  const wrapper = script.runInThisContext() as (...args: unknown[]) => void;
  wrapper(module.exports, createRequire(BUNDLE), module, BUNDLE, dirname(BUNDLE));
  return { cli: module.exports, script, header };
}

export function main(argv: string[]): Promise<number> {
  return loadBundle().cli.main(argv);
}
