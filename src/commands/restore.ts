// `cr restore IMAGE [--detach] [--pidfile F] [--timings] -- CMD [ARGS...]`: start CMD with exactly
// the image's fd table. `cr restore IMAGE --into PID [--exact] [--timings]`: install the image's
// fds in a running process. IMAGE may also be a JSON fd table (docs/fd-table.md).
import { closeSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { killAndReap } from '../../bridge/spawn.js';
import { badInput, CrError } from '../errors.js';
import { loadTableInput } from '../image/format.js';
import type { FdTable } from '../model/fdtable.js';
import { restoreFresh } from '../restore/fresh.js';
import { restoreInto } from '../restore/into.js';
import type { Outcome } from '../restore/outcome.js';
import { HeldSignals, settle, waitChild } from '../restore/supervise.js';

const USAGE = 'usage: cr restore IMAGE [--detach] [--pidfile F] [--timings] -- CMD [ARGS...]  |  cr restore IMAGE --into PID [--exact] [--timings]';

function parse(args: string[]) {
  const dashes = args.indexOf('--');
  const own = dashes < 0 ? args : args.slice(0, dashes);
  const command = dashes < 0 ? [] : args.slice(dashes + 1);
  let parsed;
  try {
    parsed = parseArgs({
      args: own,
      allowPositionals: true,
      strict: true,
      options: {
        into: { type: 'string' },
        exact: { type: 'boolean', default: false },
        detach: { type: 'boolean', default: false },
        pidfile: { type: 'string' },
        timings: { type: 'boolean', default: false },
      },
    });
  } catch (err) {
    badInput(`${(err as Error).message.split('\n')[0]} (${USAGE})`);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) badInput(USAGE);
  if (values.into !== undefined) {
    if (dashes >= 0) badInput('--into and -- CMD exclude each other: restore into a running process or start a new one');
    if (values.detach || values.pidfile !== undefined) badInput('--detach and --pidfile are for -- CMD, not --into');
    if (!/^[1-9][0-9]{0,9}$/.test(values.into)) badInput(`--into: ${JSON.stringify(values.into)} is not a pid`);
  } else {
    if (command.length === 0) badInput(USAGE);
    if (values.exact) badInput('--exact is for --into (a new process always gets exactly the image\'s fds)');
  }
  return { image: positionals[0]!, command, ...values };
}

/**
 * `${pid}\n` to path, put in place with rename so a reader never sees a partial file. The
 * temporary file is created exclusively: a symlink planted at its name is not followed.
 */
function writePidfile(path: string, pid: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  let created = false;
  try {
    const fd = openSync(tmp, 'wx', 0o644);
    created = true;
    try {
      writeSync(fd, `${pid}\n`);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    if (created) rmSync(tmp, { force: true });
    throw new CrError(`cannot write the pidfile ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

function summary(table: FdTable): string {
  const bytes = table.pipes.reduce((n, p) => n + Buffer.byteLength(p.data, 'base64'), 0);
  const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
  return `${plural(table.fds.length, 'fd')}, ${plural(table.descs.length, 'description')}, ${plural(table.pipes.length, 'pipe')} holding ${plural(bytes, 'byte')}`;
}

function timings(outcome: Outcome): string {
  const total = outcome.phases.reduce((n, [, ms]) => n + ms, 0);
  const each = [...outcome.stats.syscallMs].sort((a, b) => a - b);
  const median = each.length ? each[each.length >> 1]! * 1000 : 0;
  return (
    `timings: ${outcome.phases.map(([name, ms]) => `${name} ${ms.toFixed(2)}`).join(', ')}, total ${total.toFixed(2)} ms; ` +
    `${outcome.plan.ops.length} ops, ${outcome.stats.syscalls} injected syscalls, median ${median.toFixed(1)} us each, pipe bytes ${outcome.stats.writeMs.toFixed(2)} ms`
  );
}

/** Restore, then print, detach or wait as asked; returns cr's exit status. */
async function restoreAndGo(opts: ReturnType<typeof parse>, table: FdTable, held: HeldSignals): Promise<number> {
  let outcome: Outcome;
  try {
    outcome = opts.into !== undefined ? restoreInto(table, Number(opts.into), opts.exact) : restoreFresh(table, opts.command);
  } finally {
    await settle();
  }
  for (const warning of outcome.plan.warnings) console.error(`cr restore: warning: ${warning}`);
  if (opts.timings) console.error(timings(outcome));
  if (opts.into !== undefined) {
    console.log(`restored ${summary(table)} into pid ${outcome.pid}${opts.exact ? ', its other fds closed' : ''}`);
    return 0;
  }
  if (!opts.detach) held.forwardTo(outcome.pid);
  if (opts.pidfile !== undefined) {
    try {
      writePidfile(opts.pidfile, outcome.pid);
    } catch (err) {
      killAndReap(outcome.pid);
      throw new CrError(`${(err as Error).message}; pid ${outcome.pid} was killed`);
    }
  }
  if (!opts.detach) return waitChild(outcome.pid);
  console.log(String(outcome.pid));
  return 0;
}

export async function run(args: string[]): Promise<number> {
  const opts = parse(args);
  const { table, image } = loadTableInput(opts.image);
  const dropped = image?.dropped ?? [];
  if (dropped.length > 0) {
    console.error(`cr restore: warning: the image left out ${dropped.map((d) => `fd ${d.fd} (${d.kind})`).join(', ')}; the restored process will not have them`);
  }
  const held = new HeldSignals();
  let code: number;
  let signal: number | null;
  try {
    code = await restoreAndGo(opts, table, held);
  } finally {
    signal = held.release();
  }
  // A signal that came during the restore, and went to no CMD, ends cr now that it is done.
  return signal === null ? code : 128 + signal;
}
