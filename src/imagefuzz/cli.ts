// Mutants through the real CLI: `node cr.mjs show|plan|restore ...` as child processes (cr is not
// traced by us, so node's child_process is safe for it). Each refusal must be exit code 2, nothing
// on stdout and exactly one line on stderr, within a time bound; `restore -- CMD` must leave no
// process behind and `restore --into PID` must leave PID's fd table as it was.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The commands a bad image goes through; `restart` (restore IMAGE alone) only for whole-process images. */
export type Column = 'show' | 'plan' | 'restore' | 'into' | 'restart';
export const COLUMNS: readonly Column[] = ['show', 'plan', 'restore', 'into', 'restart'];
/** What a mutant must be refused by when it does not say. */
export const FD_IMAGE_COLUMNS: readonly Column[] = ['show', 'plan', 'restore', 'into'];

const CR = fileURLToPath(new URL('../../../cr.mjs', import.meta.url));

export interface CrRun {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** `node cr.mjs ...args`, killed (SIGKILL) after timeoutMs. */
export function runCr(args: string[], timeoutMs: number): Promise<CrRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CR, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    // Keep only the start of what a broken cr might print: enough to show what went wrong.
    child.stdout.on('data', (c: Buffer) => void (stdout.length < 4096 && (stdout += c.toString('utf8'))));
    child.stderr.on('data', (c: Buffer) => void (stderr.length < 4096 && (stderr += c.toString('utf8'))));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** The arguments of each column for an image file. */
export function columnArgs(column: Column, file: string, opts: { intoPid?: number; nonce: string }): string[] {
  switch (column) {
    case 'show':
      return ['show', file];
    case 'plan':
      return ['plan', file];
    case 'restore':
      // A command that does nothing if ever run, marked so a left-over process can be found.
      return ['restore', file, '--', '/bin/sh', '-c', 'exit 0', opts.nonce];
    case 'into':
      if (opts.intoPid === undefined) throw new Error('columnArgs: into needs a pid');
      return ['restore', file, '--into', String(opts.intoPid)];
    case 'restart':
      return ['restore', file, '--detach'];
  }
}

/** '' when a run is a proper refusal of bad input, else what is wrong with it. */
export function refusalProblem(column: Column, run: CrRun): string {
  const command = column === 'into' || column === 'restart' ? 'restore' : column;
  if (run.timedOut) return 'no answer within the time bound (killed)';
  if (run.signal) return `cr died of ${run.signal}`;
  const lines = run.stderr.split('\n').filter((l, i, all) => l !== '' || i < all.length - 1);
  if (run.code !== 2) return `exit code ${run.code}: ${run.stderr.trim().split('\n')[0] ?? ''}`;
  if (run.stdout !== '') return `printed on stdout: ${JSON.stringify(run.stdout.slice(0, 200))}`;
  if (lines.length !== 1) return `${lines.length} lines on stderr: ${JSON.stringify(run.stderr.slice(0, 300))}`;
  if (!run.stderr.startsWith(`cr ${command}: `)) return `stderr does not start with "cr ${command}: ": ${JSON.stringify(run.stderr)}`;
  if (/internal error|\n\s+at /.test(run.stderr)) return `not a bad-input message: ${run.stderr.trim()}`;
  return '';
}

/** Pids of processes whose command line contains `nonce` (left behind by a restore). */
export function processesWith(nonce: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (readFileSync(join('/proc', name, 'cmdline'), 'latin1').includes(nonce)) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
