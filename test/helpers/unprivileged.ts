// Running cr (or a fixture) as another user, e.g. nobody. That user may not be able to reach the
// checkout at all (a clone under /root, or under any 0700 directory), so such runs never use it:
// they use a copy, made once per test process in a temporary directory anyone may read, of just
// what cr loads at run time. Where no such place exists the tests that need one are skipped with
// one line saying why.
import { chmodSync, chownSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';

/** The uid (and gid) of nobody, for running as an unprivileged user. */
export const NOBODY = 65534;

/**
 * A command prefix that runs what follows as `uid`, with no supplementary groups, and with an
 * XDG_RUNTIME_DIR of its own: not this run's (root's, 0700), and not the shared default cr falls
 * back to without one (/tmp/cr-UID, which would outlive the tests and be shared by concurrent runs).
 */
export const asUser = (uid: number): string[] => ['setpriv', `--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', 'env', `XDG_RUNTIME_DIR=${runtimeDirOf(uid)}`];

const runtimeDirs = new Map<number, string>();

/** A per-run runtime directory owned by uid, mode 0700 (made on first use, removed when the tests end). */
function runtimeDirOf(uid: number): string {
  let dir = runtimeDirs.get(uid);
  if (dir === undefined) {
    const made = mkdtempSync(join(tmpdir(), `cr-run-${uid}-`));
    process.on('exit', () => rmSync(made, { recursive: true, force: true }));
    // Only root runs things as another user; without root these tests are skipped.
    if (process.getuid?.() === 0) chownSync(made, uid, uid);
    runtimeDirs.set(uid, (dir = made));
  }
  return dir;
}

/** The checkout (tests run from build/test/helpers/). */
const CHECKOUT = fileURLToPath(new URL('../../../', import.meta.url));

/** The compiled code cr runs (its bundle too); build/test and build/bench are the tests' own. */
const BUILT = ['build/src', 'build/bridge', 'build/planner.wasm', 'build/help.json', 'build/cli', 'build/bundle.cjs'];

/**
 * Copy what `node cr.mjs` needs from the checkout `from` into the directory `to`: cr.mjs,
 * package.json (it makes build/ ESM, and images record its version), the compiled code, and the
 * packages that code imports with everything they depend on (not the build tools: binaryen alone
 * is ~100 MB). Everything copied is made readable by all, whatever the umask it was made with.
 */
export function copyCr(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const path of ['cr.mjs', 'package.json', ...BUILT]) {
    cpSync(join(from, path), join(to, path), { recursive: true, dereference: true });
  }
  for (const dir of runtimePackages(from)) {
    const name = dir.slice(join(from, 'node_modules').length + 1);
    cpSync(dir, join(to, 'node_modules', name), { recursive: true, dereference: true });
  }
  readableByAll(to);
}

/** The bare specifiers (package names) the compiled code imports or requires, `node:` ones aside. */
function importedPackages(root: string): Set<string> {
  const names = new Set<string>();
  const visit = (path: string): void => {
    if (statSync(path).isDirectory()) {
      for (const entry of readdirSync(path)) visit(join(path, entry));
      return;
    }
    if (!path.endsWith('.js')) return;
    for (const m of readFileSync(path, 'utf8').matchAll(/(?:\bfrom|\bimport\s*\(?|\brequire\s*\()\s*'([^'./][^']*)'/g)) {
      const spec = m[1]!;
      if (spec.startsWith('node:')) continue;
      const parts = spec.split('/');
      names.add(spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0]!);
    }
  };
  for (const path of BUILT) visit(join(root, path));
  return names;
}

/**
 * The directories under from/node_modules of the imported packages and of their dependencies,
 * optional ones included when installed (msgpackr's native extractor, koffi's prebuilt binary).
 * A package nested in another's node_modules is copied with it.
 */
function runtimePackages(from: string): string[] {
  const top = join(from, 'node_modules');
  const found = new Set<string>();
  const walk = (name: string, near: string): void => {
    const dir = [join(near, 'node_modules', name), join(top, name)].find((d) => existsSync(join(d, 'package.json')));
    if (dir === undefined || found.has(dir)) return;
    found.add(dir);
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
    for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) walk(dep, dir);
  };
  for (const name of importedPackages(from)) walk(name, from);
  return [...found].filter((dir) => dirname(dir) === top || dirname(dirname(dir)) === top);
}

/** chmod a+rX over a tree: directories and executables 0755, other files 0644. */
function readableByAll(path: string): void {
  const st = statSync(path);
  if (st.isDirectory()) {
    chmodSync(path, 0o755);
    for (const entry of readdirSync(path)) readableByAll(join(path, entry));
  } else {
    chmodSync(path, st.mode & 0o100 ? 0o755 : 0o644);
  }
}

/** Why another user cannot be given a copy here, or undefined when they can. */
function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root, so cannot run anything as another user';
  // Every directory from / to the temp dir must be searchable by others.
  for (let dir = resolve(tmpdir()); ; dir = dirname(dir)) {
    if ((statSync(dir).mode & 0o001) === 0) return `${dir} is not searchable by other users (set TMPDIR to a directory that is)`;
    if (dir === dirname(dir)) return undefined;
  }
}

const reason = unavailable();
let copy: string | undefined;

/** The per-run directory holding the copy of cr (made on first use, removed when the tests end). */
export function readableDir(): string {
  if (reason !== undefined) throw new Error(`cannot run cr as another user: ${reason}`);
  if (copy === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'cr-readable-'));
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    copyCr(CHECKOUT, dir);
    copy = dir;
  }
  return copy;
}

/** cr.mjs in the copy, for `node` run as another user. */
export const readableCr = (): string => join(readableDir(), 'cr.mjs');

/** A copy of `file` (a fixture) in the readable directory, readable by all. */
export function readableCopy(file: string): string {
  const dir = join(readableDir(), 'fixtures');
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const to = join(dir, basename(file));
  copyFileSync(file, to);
  chmodSync(to, 0o644);
  return to;
}

let told = false;

/** A uvu test that runs something as another user: skipped, with one line saying why, where it cannot. */
export function unprivilegedTest(name: string, fn: () => void | Promise<void>): void {
  if (reason === undefined) return test(name, fn);
  if (!told) console.log(`  skipping the tests that run as another user: ${reason}`);
  told = true;
  test.skip(name, fn);
}
