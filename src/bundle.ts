// Runs a command from its bundle: build/cli/COMMAND.cjs holds that command's modules, with
// src/dispatch.ts over that command alone, in one file (scripts/build.mjs makes one per command
// with esbuild). Node reads one file instead of resolving and compiling about a hundred ES
// modules, and none of any other command; V8 takes the compiled code from the cache the build
// made beside it (Node 20 caches no ES module's code; a script's, V8 takes as cachedData).
// cr.mjs requires this module as build/bundle.cjs, its CommonJS build.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Script } from 'node:vm';

/** What a bundle exports: cr's main over its one command. */
interface Bundle {
  main(argv: string[]): Promise<number>;
}

/** This module as cr.mjs loads it (scripts/build.mjs makes it). */
export const LOADER = fileURLToPath(new URL('../bundle.cjs', import.meta.url));
/**
 * What a bundle's file opens with, after its first line: CommonJS's wrapper, as Node's own loader
 * gives a module. The file is then the very script V8 compiles, read as it is: no copy of a
 * half-megabyte string made to wrap it, which cost about 120 page faults (docs/performance.md).
 */
export const BUNDLE_WRAPPER = '(function (exports, require, module, __filename, __dirname) {';

/** The bundles' directory, beside build/src. */
export const BUNDLES = fileURLToPath(new URL('../cli/', import.meta.url));
/** A command's bundle. */
export const bundleFile = (command: string): string => join(BUNDLES, `${command}.cjs`);
/** Its code cache: the bundle's first line (which names its hash), then V8's data. */
export const cacheFile = (command: string): string => `${bundleFile(command)}.cache`;

/**
 * A command's bundle compiled, from the code cache when the cache is the bundle's (its first
 * line matches): V8 checks the cache against the source's length and V8's version and flags, not
 * the source itself, so a cache is taken only with the bundle it was made from. `cache: false`
 * compiles from the source alone (the build, making the cache).
 */
export function compileBundle(command: string, opts: { cache?: boolean } = {}): { script: Script; header: string } {
  const file = bundleFile(command);
  const sourceFd = openSync(file, 'r');
  let cacheFd: number | undefined;
  try {
    if (opts.cache !== false) {
      try {
        cacheFd = openSync(cacheFile(command), 'r');
      } catch {
        // No cache (unreadable, or removed): compiled from the source.
      }
    }
    const sourceBytes = fstatSync(sourceFd).size;
    const cacheBytes = cacheFd === undefined ? 0 : fstatSync(cacheFd).size;
    // One buffer for both files: the source's bytes are copied into its string before the
    // cache's are read over them. A fresh page costs a fault, 15-20 us here (docs/performance.md).
    const buf = Buffer.allocUnsafe(Math.max(sourceBytes, cacheBytes));
    // ASCII (the build checks): Latin-1 is the cheapest reading of it.
    const source = readAll(sourceFd, buf, sourceBytes).toString('latin1');
    const header = source.slice(0, source.indexOf('\n') + 1);
    let cachedData: Buffer | undefined;
    if (cacheFd !== undefined) {
      const cache = readAll(cacheFd, buf, cacheBytes);
      if (cache.subarray(0, header.length).toString('latin1') === header) cachedData = cache.subarray(header.length);
    }
    return { script: new Script(source, { filename: file, cachedData }), header };
  } finally {
    closeSync(sourceFd);
    if (cacheFd !== undefined) closeSync(cacheFd);
  }
}

/** Up to `bytes` of the file open at fd, from its start, into the start of buf: what was read. */
function readAll(fd: number, buf: Buffer, bytes: number): Buffer {
  let got = 0;
  while (got < bytes) {
    const n = readSync(fd, buf, got, bytes - got, got);
    if (n === 0) break;
    got += n;
  }
  return buf.subarray(0, got);
}

/** Run a command's bundle: its module's exports. */
export function loadBundle(command: string): Bundle {
  const file = bundleFile(command);
  const module = { exports: {} as Bundle };
  const wrapper = compileBundle(command).script.runInThisContext() as (...args: unknown[]) => void;
  wrapper(module.exports, createRequire(file), module, file, dirname(file));
  return module.exports;
}

/** cr's main, from the bundle of the command argv names (cr.mjs has seen that it exists). */
export function main(argv: string[]): Promise<number> {
  return loadBundle(argv[0]!).main(argv);
}
