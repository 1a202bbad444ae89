// Running cr from tests: in this process (node starts slowly here) with the console captured, or
// as a process of its own where what cr does to its own process matters (exit status, waiting,
// another user's credentials).
import { spawnSync } from 'node:child_process';
import { constants } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli.js';
import { asUser, readableCr, readableDir } from './unprivileged.js';

/** The checkout (tests run from build/test/). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CR = join(ROOT, 'cr.mjs');

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** fn's exit code and the console output it made. */
export async function captured(fn: () => Promise<number>): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => void out.push(a.join(' ') + '\n');
  console.error = (...a: unknown[]) => void err.push(a.join(' ') + '\n');
  try {
    const code = await fn();
    return { code, stdout: out.join(''), stderr: err.join('') };
  } finally {
    console.log = log;
    console.error = error;
  }
}

/** The CLI run inside this process, its console output captured. */
export const cr = (args: string[]): Promise<Run> => captured(() => main(args));

export interface ProcessOptions {
  /** run cr as this user (from a copy that user can read: see unprivileged.ts) */
  uid?: number;
  /** run cr in a session of its own, waiting for it (setsid -w) */
  setsid?: boolean;
}

/** `node cr.mjs ...` as a process of its own; a signal's death is 128 + its number. */
export function crProcess(args: string[], options: ProcessOptions = {}): Run {
  const other = options.uid !== undefined;
  const argv = [...(options.setsid ? ['setsid', '-w'] : []), ...(other ? asUser(options.uid!) : []), process.execPath, other ? readableCr() : CR, ...args];
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', cwd: other ? readableDir() : ROOT, maxBuffer: 64 << 20 });
  const code = r.status ?? (r.signal ? 128 + constants.signals[r.signal] : -1);
  return { code, stdout: r.stdout, stderr: r.stderr };
}
