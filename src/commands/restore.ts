// `cr restore IMAGE [--detach] [--pidfile F] [--same-pid] [--timings]`: bring a whole-process
// image back as a new process that carries on where it was stopped (docs/restart.md).
// `cr restore IMAGE [--detach] [--pidfile F] [--timings] -- CMD [ARGS...]`: start CMD with exactly
// the image's fd table. `cr restore IMAGE --into PID [--exact] [--timings]`: install the image's
// fds in a running process. For those two IMAGE may be either kind of image, or a JSON fd table
// (docs/fd-table.md). An image of one user's process restored as another's needs --allow-uid-change.
import { constants } from 'node:os';
import { killAndReap } from '../../bridge/spawn.js';
import { describeCounts } from '../api/counts.js';
import { prepareRestore, waitExit, type RestoreOptions, type RestoreResult } from '../api/restore.js';
import { defineCommand, parseCommand } from '../command-line.js';
import { badInput, CrError } from '../errors.js';
import { viewOf, type FdTable } from '../model/fdtable.js';
import { CallLog } from '../inject/trace.js';
import { OutputFile } from '../output-file.js';
import { HeldSignals, runSignalHandlers } from '../restore/supervise.js';
import type { ShellJob } from '../restore/shell-job.js';
import { printable, terminalSafe } from '../printable.js';
import { terminalProgress } from '../progress.js';

export const command = defineCommand({
  name: 'restore',
  summary: 'Restart a dumped process, or give an fd table to a new or a running process.',
  usage: [
    'restore IMAGE [--detach [--setsid]] [--pidfile FILE] [--same-pid | --new-pid] [--timings] [--log FILE] [--allow-uid-change] [--map-path OLD=NEW] [--resume] [--quiet]',
    'restore IMAGE --shell-job [--pidfile FILE] [--same-pid | --new-pid] [--timings] [--log FILE] [--allow-uid-change] [--map-path OLD=NEW] [--resume] [--quiet]',
    'restore IMAGE [--detach [--setsid]] [--pidfile FILE] [--timings] [--log FILE] [--allow-uid-change] [--map-path OLD=NEW] -- CMD [ARGS...]',
    'restore IMAGE --into PID [--exact] [--timings] [--log FILE] [--allow-uid-change] [--map-path OLD=NEW]',
  ],
  operands: [{ name: 'IMAGE', help: 'a whole-process image (restarted), or for -- CMD and --into any image or a JSON fd table; - reads it from stdin' }],
  command: 'CMD',
  flags: {
    into: { value: 'PID', help: 'install the image\'s fds in this running process instead of starting one' },
    exact: { help: 'with --into: close the process\'s other fds too' },
    detach: { help: 'print the new process\'s pid and exit instead of waiting for it' },
    setsid: { help: 'start the new process in a session of its own, so that a signal to cr\'s process group (Ctrl-C) does not reach it' },
    pidfile: { value: 'FILE', help: 'write the new process\'s pid to FILE' },
    'same-pid': { help: 'restart with the pids it had when dumped, or fail if one is taken (by default they are kept when cr can keep them all)' },
    'new-pid': { help: 'restart with new pids even where the dumped ones could be kept' },
    timings: { help: 'print how long each phase took, on stderr' },
    log: { value: 'FILE', help: 'write every system call cr runs inside the process to FILE: arguments, result, time' },
    'allow-uid-change': { help: 'allow restoring one user\'s image as another user\'s process' },
    'map-path': { value: 'OLD=NEW', repeatable: true, help: 'open the image\'s paths at or under OLD at NEW instead (a file or FIFO moved since the dump)' },
    resume: { help: 'a process that was stopped (kill -STOP, Ctrl-Z) when dumped comes back stopped: let it run instead' },
    'shell-job': { help: 'restart it as a job of the terminal cr runs on: its terminal fds opened on cr\'s, the foreground with its terminal settings, Ctrl-Z and fg as for any job (docs/restore.md)' },
    quiet: { help: 'no progress line (a restart writing over 100 MB of memory shows one on a terminal)' },
  },
  examples: ['restore app.img --detach --setsid', 'restore repl.img --shell-job', 'restore - --detach < app.img', 'restore fds.img -- python3 server.py', 'restore fds.img --into 4242'],
});

function parse(args: string[]) {
  const parsed = parseCommand(command, args);
  if (parsed === undefined) return undefined;
  const { values, operands, command: argv } = parsed;
  if (values.into !== undefined) {
    if (argv !== undefined) badInput('--into and -- CMD exclude each other: restore into a running process or start a new one');
    if (values.detach || values.pidfile !== undefined) badInput('--detach and --pidfile are for a new process, not --into');
    if (!/^[1-9][0-9]{0,9}$/.test(values.into)) badInput(`--into: ${JSON.stringify(values.into)} is not a pid`);
  }
  const options: RestoreOptions = {
    ...(values.into !== undefined ? { into: Number(values.into) } : {}),
    ...(argv !== undefined ? { command: argv } : {}),
    exact: values.exact,
    samePid: values['same-pid'],
    newPid: values['new-pid'],
    allowUidChange: values['allow-uid-change'],
    mapPaths: values['map-path'],
    setsid: values.setsid,
    detach: values.detach,
    resume: values.resume,
    shellJob: values['shell-job'],
  };
  return { image: operands[0]!, options, ...values };
}

type Options = NonNullable<ReturnType<typeof parse>>;

function timings(r: RestoreResult): string {
  const total = r.phases.reduce((n, [, ms]) => n + ms, 0);
  const phases = `timings: ${r.phases.map(([name, ms]) => `${name} ${ms.toFixed(2)}`).join(', ')}, total ${total.toFixed(2)} ms; `;
  if (r.mode === 'process') return `${phases}${r.pages} pages written`;
  return `${phases}${r.plan!.length} ops, ${r.stats!.syscalls} syscalls in ${r.stats!.batches} batches (${r.stats!.batchMs.toFixed(2)} ms)`;
}

/** Restored: print what the user needs to know, then detach or wait as asked; returns cr's exit status. */
async function report(opts: Options, r: RestoreResult, held: HeldSignals, pidfile: OutputFile | null, table: FdTable): Promise<number> {
  for (const warning of r.warnings) console.error(`cr restore: warning: ${terminalSafe(warning)}`);
  if (opts.timings) console.error(timings(r));
  switch (r.mode) {
    case 'into':
      console.log(`restored ${describeCounts(r.counts)} into pid ${r.pid}${opts.exact ? ', its other fds closed' : ''}`);
      return 0;
    case 'process': {
      const which = r.pid === r.dumpedPid ? 'the pid it had when dumped' : `a new pid (it was ${r.dumpedPid} when dumped)`;
      const tree = r.members === undefined ? '' : `, the root of a tree of ${r.members.length} processes (${r.members.map((m) => (m.was === m.now ? `${m.now}` : `${m.was}->${m.now}`)).join(' ')})`;
      console.error(`cr restore: ${printable(r.comm!)} restarted as pid ${r.pid}, ${which}${tree}`);
      return goOn(opts, r.pid, held, pidfile, `${printable(r.comm!)} (pid ${r.pid})`, table, r.job, r.group);
    }
    case 'command':
      return goOn(opts, r.pid, held, pidfile, `${printable(opts.options.command![0]!)} (pid ${r.pid})`, table);
    default: {
      const never: never = r.mode;
      throw new Error(`unknown restore mode ${String(never)}`);
    }
  }
}

/**
 * How a process cr waited for ended, when not well: said on cr's stderr, since the process's own
 * stderr is the image's fd 2 (often a file the user is not looking at), named when it is one.
 */
function failure(what: string, code: number, table: FdTable): string {
  const fd2 = table.fds.find((f) => f.fd === 2);
  const desc = fd2 === undefined ? undefined : table.descs.find((d) => d.id === fd2.desc);
  const where = desc === undefined ? '; it has no fd 2' : 'path' in desc ? `; its stderr (fd 2) is ${printable(desc.path)}` : '';
  const how = code > 128 ? `was killed by signal ${code - 128}${signalName(code - 128)}` : `exited with status ${code}`;
  return `cr restore: ${what} ${how}${where}`;
}

const signalName = (n: number): string => {
  const name = Object.entries(constants.signals).find(([, v]) => v === n)?.[0];
  return name ? ` (${name})` : '';
};

/** A new process, restored and running: wait for it, or print its pid and return (--detach). */
async function goOn(opts: Options, pid: number, held: HeldSignals, pidfile: OutputFile | null, what: string, table: FdTable, job?: ShellJob, group?: number): Promise<number> {
  // Signals cr got during the restore go to the new process, --detach or not: an interrupted
  // restore must not leave it running behind the user's back. A tree whose root leads its group
  // gets them as a shell's job does, every process of the group (a pipeline's stages too).
  held.forwardTo(group === undefined ? pid : -group);
  if (pidfile !== null) {
    try {
      pidfile.write([Buffer.from(`${pid}\n`)]);
      pidfile.commit();
    } catch (err) {
      job?.end();
      killAndReap(pid);
      throw new CrError(`${(err as Error).message}; pid ${pid} was killed`, err instanceof CrError ? err.code : 1);
    }
  }
  if (!opts.detach) {
    // A shell job is waited for as its shell would: stops and continues followed, the terminal given back.
    const code = job !== undefined ? await job.wait(pid) : await waitExit(pid);
    if (code !== 0) console.error(failure(what, code, table));
    return code;
  }
  console.log(String(pid));
  return 0;
}

export async function run(args: string[]): Promise<number> {
  const opts = parse(args);
  if (opts === undefined) return 0;
  // IMAGE is read and judged here, once (src/api.ts); nothing has started yet.
  const progress = opts.quiet ? undefined : terminalProgress('restoring');
  const prepared = prepareRestore(opts.image, { ...opts.options, onProgress: progress?.onProgress });
  // The pidfile's path is judged, and its file made (unnamed) in its directory, before anything
  // starts. Not fsync'd: a crash of the machine ends the process it names too.
  const pidfile = opts.pidfile === undefined ? null : OutputFile.create(opts.pidfile, { force: true, mode: 0o644, label: `the pidfile ${opts.pidfile}`, sync: false });
  try {
    // Traced to --log from before the process is touched to the end of the restore, not while cr waits for it.
    const title = `cr restore ${opts.into !== undefined ? `--into ${opts.into}` : opts.options.command ? `-- ${printable(opts.options.command.join(' '))}` : '(restart)'}`;
    const start = async () => {
      try {
        return await CallLog.around(opts.log, title, () => prepared.start());
      } finally {
        progress?.end();
      }
    };
    return await supervised(async (held) => report(opts, await start(), held, pidfile, viewOf(prepared.image.table, 0)));
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
    // Signals that came while cr printed the pid or wrote its pidfile are dispatched before the
    // handlers go: one still undispatched then is dropped (cr would end 0, the detached process
    // running on: seen at load 20).
    await runSignalHandlers();
    signal = held.release();
  }
  // A signal that came during the restore, and went to no new process, ends cr now that it is done.
  return signal === null ? code : 128 + signal;
}
