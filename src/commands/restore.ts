// `cr restore IMAGE [--detach] [--pidfile F] [--same-pid] [--timings]`: bring a whole-process
// image back as a new process that carries on where it was stopped (docs/restart.md).
// `cr restore IMAGE [--detach] [--pidfile F] [--timings] -- CMD [ARGS...]`: start CMD with exactly
// the image's fd table. `cr restore IMAGE --into PID [--exact] [--timings]`: install the image's
// fds in a running process. For those two IMAGE may be either kind of image, or a JSON fd table
// (docs/fd-table.md). An image of one user's process restored as another's needs --allow-uid-change.
import { existsSync } from 'node:fs';
import { killAndReap } from '../../bridge/spawn.js';
import { defineCommand, parseCommand } from '../command-line.js';
import { badInput, CrError } from '../errors.js';
import type { Image } from '../image/format.js';
import { loadInput, type Input } from '../image/input.js';
import type { ProcessImage } from '../image/process-format.js';
import { CallLog } from '../inject/trace.js';
import { OutputFile } from '../output-file.js';
import type { FdTable } from '../model/fdtable.js';
import { readStatus } from '../proc/process.js';
import { restartProcess, type RestartResult } from '../restart/restart.js';
import { checkPaths, checkUid } from '../replay/check.js';
import { restoreFresh } from '../restore/fresh.js';
import { restoreInto } from '../restore/into.js';
import type { RestoreReport } from '../restore/report.js';
import { HeldSignals, runSignalHandlers, waitChild } from '../restore/supervise.js';
import { isRunning } from '../proc/process.js';
import { SyscallError } from '../../bridge/errno.js';
import { imageAuthor, type Author } from '../trust/author.js';
import { checkHeadTrust } from '../trust/head.js';
import { printable, terminalSafe } from '../printable.js';

export const command = defineCommand({
  name: 'restore',
  summary: 'Restart a dumped process, or give an fd table to a new or a running process.',
  usage: [
    'restore IMAGE [--detach] [--pidfile FILE] [--same-pid] [--timings] [--log FILE] [--allow-uid-change]',
    'restore IMAGE [--detach] [--pidfile FILE] [--timings] [--log FILE] [--allow-uid-change] -- CMD [ARGS...]',
    'restore IMAGE --into PID [--exact] [--timings] [--log FILE] [--allow-uid-change]',
  ],
  operands: [{ name: 'IMAGE', help: 'a whole-process image (restarted), or for -- CMD and --into any image or a JSON fd table; - reads it from stdin' }],
  command: 'CMD',
  flags: {
    into: { value: 'PID', help: 'install the image\'s fds in this running process instead of starting one' },
    exact: { help: 'with --into: close the process\'s other fds too' },
    detach: { help: 'print the new process\'s pid and exit instead of waiting for it' },
    pidfile: { value: 'FILE', help: 'write the new process\'s pid to FILE' },
    'same-pid': { help: 'restart with the pid it had when dumped, or fail if that pid is taken' },
    timings: { help: 'print how long each phase took, on stderr' },
    log: { value: 'FILE', help: 'write every system call cr runs inside the process to FILE: arguments, result, time' },
    'allow-uid-change': { help: 'allow restoring one user\'s image as another user\'s process' },
  },
  examples: ['restore app.img --detach', 'restore - --detach < app.img', 'restore fds.img -- python3 server.py', 'restore fds.img --into 4242'],
});

function parse(args: string[]) {
  const parsed = parseCommand(command, args);
  if (parsed === undefined) return undefined;
  const { values, operands, command: argv } = parsed;
  const dashes = argv !== undefined;
  if (values.into !== undefined) {
    if (dashes) badInput('--into and -- CMD exclude each other: restore into a running process or start a new one');
    if (values.detach || values.pidfile !== undefined) badInput('--detach and --pidfile are for a new process, not --into');
    if (!/^[1-9][0-9]{0,9}$/.test(values.into)) badInput(`--into: ${JSON.stringify(values.into)} is not a pid`);
  } else if (values.exact) {
    badInput('--exact is for --into (a new process always gets exactly the image\'s fds)');
  }
  if (values['same-pid'] && (values.into !== undefined || dashes)) badInput('--same-pid is for restarting a whole process (restore IMAGE alone)');
  const mode = values.into !== undefined ? 'into' : dashes ? 'command' : 'process';
  return { image: operands[0]!, command: argv ?? [], mode, ...values };
}

type Options = NonNullable<ReturnType<typeof parse>>;

function summary(table: FdTable): string {
  const bytes = table.pipes.reduce((n, p) => n + Buffer.byteLength(p.data, 'base64'), 0);
  const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
  return `${plural(table.fds.length, 'fd')}, ${plural(table.descs.length, 'description')}, ${plural(table.pipes.length, 'pipe')} holding ${plural(bytes, 'byte')}`;
}

function timings(outcome: RestoreReport): string {
  const total = outcome.phases.reduce((n, [, ms]) => n + ms, 0);
  return (
    `timings: ${outcome.phases.map(([name, ms]) => `${name} ${ms.toFixed(2)}`).join(', ')}, total ${total.toFixed(2)} ms; ` +
    `${outcome.plan.ops.length} ops, ${outcome.stats.syscalls} syscalls in ${outcome.stats.batches} batches (${outcome.stats.batchMs.toFixed(2)} ms)`
  );
}

/** Restore, then print, detach or wait as asked; returns cr's exit status. */
async function restoreAndGo(opts: Options, table: FdTable, author: Author, held: HeldSignals, pidfile: OutputFile | null): Promise<number> {
  let outcome: RestoreReport;
  try {
    // Traced to --log from before the process is touched to the end of the restore, not while cr waits for it.
    const title = `cr restore ${opts.into !== undefined ? `--into ${opts.into}` : `-- ${printable(opts.command.join(' '))}`}`;
    outcome = await CallLog.around(opts.log, title, async () =>
      opts.into !== undefined ? restoreInto(table, Number(opts.into), opts.exact, author) : restoreFresh(table, opts.command, author),
    );
  } catch (err) {
    // A target that exits mid-restore makes ptrace and /proc fail in many ways; say why once.
    const gone = !isRunning(Number(opts.into)) || (err instanceof SyscallError && err.code === 'ESRCH');
    if (opts.into === undefined || err instanceof CrError || !gone) throw err;
    throw new CrError(`pid ${opts.into} ended during the restore (${(err as Error).message.split('\n')[0]})`);
  } finally {
    await runSignalHandlers();
  }
  for (const warning of outcome.plan.warnings) console.error(`cr restore: warning: ${terminalSafe(warning)}`);
  if (opts.timings) console.error(timings(outcome));
  if (opts.into !== undefined) {
    console.log(`restored ${summary(table)} into pid ${outcome.pid}${opts.exact ? ', its other fds closed' : ''}`);
    return 0;
  }
  return goOn(opts, outcome.pid, held, pidfile);
}

/** A new process, restored and running: wait for it, or print its pid and return (--detach). */
async function goOn(opts: Options, pid: number, held: HeldSignals, pidfile: OutputFile | null): Promise<number> {
  // Signals cr got during the restore go to the new process, --detach or not: an interrupted
  // restore must not leave it running behind the user's back.
  held.forwardTo(pid);
  if (pidfile !== null) {
    try {
      pidfile.write([Buffer.from(`${pid}\n`)]);
      pidfile.commit();
    } catch (err) {
      killAndReap(pid);
      throw new CrError(`${(err as Error).message}; pid ${pid} was killed`, err instanceof CrError ? err.code : 1);
    }
  }
  if (!opts.detach) return waitChild(pid);
  console.log(String(pid));
  return 0;
}

/**
 * Which process image this is, refusing anything else (an fd table alone cannot be run), and
 * refusing, before anything starts, paths into /proc, what its author could not have given the
 * process (src/trust/head.ts) and a change of user not asked for.
 */
function processImageIdentity(opts: Options, input: Input): ProcessImage {
  if (input.process === undefined) {
    badInput(`${input.file.path} holds an fd table only (dump --fds-only): restore it with -- CMD or --into PID; restore IMAGE alone needs a whole-process image`);
  }
  const { head, fdImage } = input.process;
  checkPaths(fdImage.table);
  checkHeadTrust(head, imageAuthor(input.file));
  // The restart takes on the image's credentials, except that all-root ones are left as the
  // husk's (src/restart/process-attributes.ts setCreds): cr's own. The user it ends up as is compared with the
  // user the image says the process ran as.
  const { uid, gid, groups } = head.creds;
  const runsAs = [...uid, ...gid, ...groups].every((id) => id === 0) ? process.getuid!() : uid[0]!;
  checkUid(head.process.uid, runsAs, 'the restarted process (cr\'s uid, as the image\'s credentials are root\'s)', opts['allow-uid-change']);
  return input.process;
}

/** The checks on an fd table and its image before a restore -- CMD or --into touches any process. */
function checkTableInput(opts: Options, table: FdTable, image: Image | undefined): void {
  checkPaths(table);
  if (image === undefined) return;
  if (opts.into === undefined) {
    checkUid(image.process.uid, process.getuid!(), `CMD (as cr's uid)`, opts['allow-uid-change']);
    return;
  }
  let targetUid: number;
  try {
    targetUid = readStatus(Number(opts.into)).uid;
  } catch {
    return; // no such process: restoreInto says so
  }
  checkUid(image.process.uid, targetUid, `pid ${opts.into}`, opts['allow-uid-change']);
}

/** Restart a whole-process image, then wait for it or detach as asked. */
async function restartAndGo(opts: Options, image: ProcessImage, held: HeldSignals, pidfile: OutputFile | null): Promise<number> {
  const was = image.head.process;
  // --same-pid is a promise: a pid in use fails the restart before anything starts (and the
  // husk's clone3 refuses one taken meanwhile), never a quiet fallback to another pid.
  if (opts['same-pid'] && existsSync(`/proc/${was.pid}`)) throw new CrError(`--same-pid: pid ${was.pid} is in use; nothing was started`);
  let result: RestartResult;
  try {
    result = await CallLog.around(opts.log, `cr restore (restart of pid ${was.pid})`, async () => restartProcess(image, { samePid: opts['same-pid'] }));
  } finally {
    await runSignalHandlers();
  }
  for (const warning of result.warnings) console.error(`cr restore: warning: ${terminalSafe(warning)}`);
  if (opts.timings) {
    const total = result.phases.reduce((n, [, ms]) => n + ms, 0);
    console.error(`timings: ${result.phases.map(([name, ms]) => `${name} ${ms.toFixed(2)}`).join(', ')}, total ${total.toFixed(2)} ms; ${result.pages} pages written`);
  }
  const which =
    result.pid === was.pid
      ? `the pid it had when dumped`
      : `a new pid (it was ${was.pid} when dumped)`;
  console.error(`cr restore: ${printable(was.comm)} restarted as pid ${result.pid}, ${which}`);
  return goOn(opts, result.pid, held, pidfile);
}

export async function run(args: string[]): Promise<number> {
  const opts = parse(args);
  if (opts === undefined) return 0;
  // IMAGE is read here, once; everything below works from this one Input.
  const input = loadInput(opts.image);
  let image: ProcessImage | null = null;
  let author: Author | null = null;
  if (opts.mode === 'process') image = processImageIdentity(opts, input);
  else {
    author = imageAuthor(input.file);
    checkTableInput(opts, input.table, input.image);
  }
  // The pidfile's path is judged, and its file made (unnamed) in its directory, before anything starts.
  const pidfile = opts.pidfile === undefined ? null : OutputFile.create(opts.pidfile, { force: true, mode: 0o644, label: `the pidfile ${opts.pidfile}` });
  try {
    if (image !== null) {
      const restart = image;
      return await supervised((held) => restartAndGo(opts, restart, held, pidfile));
    }
    const dropped = input.image?.dropped ?? [];
    if (dropped.length > 0) {
      console.error(`cr restore: warning: the image left out ${dropped.map((d) => `fd ${d.fd} (${printable(d.kind)})`).join(', ')}; the restored process will not have them`);
    }
    const tableAuthor = author!;
    return await supervised((held) => restoreAndGo(opts, input.table, tableAuthor, held, pidfile));
  } finally {
    pidfile?.abort();
  }
}

/** Run a restore with the signals cr gets held (src/restore/supervise.ts); returns cr's exit status. */
async function supervised(restore: (held: HeldSignals) => Promise<number>): Promise<number> {
  const held = new HeldSignals();
  let code: number;
  let signal: number | null;
  try {
    code = await restore(held);
  } finally {
    signal = held.release();
  }
  // A signal that came during the restore, and went to no new process, ends cr now that it is done.
  return signal === null ? code : 128 + signal;
}
