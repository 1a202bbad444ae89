// Test helpers for real processes: start them with bridge/spawn.ts (never child_process, whose
// SIGCHLD handling would steal ptrace stops) and always kill and reap them, even on failure.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SyscallError } from '../../bridge/errno.js';
import { killAndReap, spawn, type SpawnOptions } from '../../bridge/spawn.js';

const ECHILD = 10;

/** SIGKILL and reap pid unless something (the test itself) reaped it already. */
export function ensureReaped(pid: number): void {
  try {
    killAndReap(pid);
  } catch (err) {
    if (!(err instanceof SyscallError && err.errno === ECHILD)) throw err;
  }
}

/**
 * Spawn argv (see bridge/spawn.ts for options: fds, stopAtExec, ...), run fn with its pid, then
 * kill and reap it whatever happened. fn may reap the process itself (to check how it ended).
 */
export async function withProcess<T>(argv: string[], options: SpawnOptions, fn: (pid: number) => T | Promise<T>): Promise<T> {
  const pid = spawn(argv, options);
  try {
    return await fn(pid);
  } finally {
    ensureReaped(pid);
  }
}

let binDir: string | undefined;

/**
 * This test run's own directory for compiled programs: two checkouts testing at once never share
 * a path. Readable by all (unprivileged tests run these programs), removed when the run ends.
 */
function testBinDir(): string {
  if (binDir === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'cr-test-bin-'));
    chmodSync(dir, 0o755);
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    binDir = dir;
  }
  return binDir;
}

/**
 * Compile a small C program with cc (once per run for each source) and return its path.
 * Tests use these where sh/python cannot put a process in the exact state wanted.
 */
export function buildC(source: string, ccArgs: string[] = []): string {
  const hash = createHash('sha256').update(source).update(ccArgs.join('\0')).digest('hex').slice(0, 16);
  const exe = join(testBinDir(), `prog-${hash}`);
  if (existsSync(exe)) return exe;
  const src = `${exe}.c`;
  writeFileSync(src, source);
  // cc runs to completion before we look at any tracee, so child_process is safe here.
  execFileSync('cc', ['-O1', '-o', exe, src, ...ccArgs], { stdio: ['ignore', 'ignore', 'inherit'] });
  return exe;
}

/** The C programs the tests run, and the header they share (selfcheck.h). */
const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));

/** Compile test/fixtures/NAME.c (it may include the fixtures' own headers) and return its path. */
export const buildFixture = (name: string, ccArgs: string[] = []): string =>
  buildC(readFileSync(join(FIXTURES, `${name}.c`), 'utf8'), ['-I', FIXTURES, ...ccArgs]);

/**
 * Wait until pid sleeps inside system call nr (x86_64 number, per /proc/PID/syscall), or one of
 * several, e.g. a reader blocked in read(2) on an empty pipe. A sleep that was interrupted and
 * restarted shows as restart_syscall (219). Polls; throws after timeoutMs: a readiness wait, long
 * enough for a python3 start-up on a machine at load 50 (a CI run saw one take more than 5 s).
 */
export function waitInSyscall(pid: number, nr: number | number[], timeoutMs = 30_000): void {
  const wanted = (Array.isArray(nr) ? nr : [nr]).map(String);
  const deadline = Date.now() + timeoutMs;
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    const state = /\) (\w)/.exec(readFileSync(`/proc/${pid}/stat`, 'utf8'))?.[1];
    const current = readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0];
    if (state === 'S' && wanted.includes(current!)) return;
    if (Date.now() > deadline) throw new Error(`pid ${pid} not blocked in syscall ${nr} after ${timeoutMs} ms (state ${state}, syscall ${current})`);
    Atomics.wait(sleeper, 0, 0, 2);
  }
}
