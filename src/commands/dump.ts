// `cr dump --pid PID -o IMAGE [--force] [--leave-stopped | --kill] [--timings]`: the whole process
// (docs/restart.md), for `restore IMAGE`. With `--fds-only [--skip-unsupported]`: its fd table
// only (docs/dump.md), for `restore IMAGE -- CMD` and `--into`.
import { kill, SIGCONT, SIGKILL } from '../../bridge/signal.js';
import { checkpointProcess } from '../checkpoint/checkpoint.js';
import { dumpFdTable } from '../dump/fd-dump.js';
import type { Phases } from '../timing.js';
import { defineCommand, parseCommand, type Values } from '../command-line.js';
import { badInput, CrError } from '../errors.js';
import { encodeImage, type Image } from '../image/format.js';
import { CallLog } from '../inject/trace.js';
import { openImageOutput, STDOUT_PATH } from '../output-file.js';
import { isRunning, readStatus, refuseThreadId } from '../proc/process.js';
import { printable } from '../printable.js';

export const command = defineCommand({
  name: 'dump',
  summary: 'Checkpoint a running process: the whole of it, or its fd table only (--fds-only).',
  usage: [
    'dump --pid PID -o IMAGE [--force] [--leave-stopped | --kill] [--timings] [--log FILE]',
    'dump --pid PID -o IMAGE --fds-only [--skip-unsupported] [--force] [--leave-stopped | --kill] [--timings] [--log FILE]',
  ],
  operands: [],
  flags: {
    pid: { value: 'PID', required: true, help: 'the process to checkpoint (it runs on afterwards)' },
    output: { short: 'o', value: 'IMAGE', required: true, help: 'the image file to write (mode 0600); - for stdout (a pipe, not a terminal)' },
    'fds-only': { help: 'only the fd table, pipes\' bytes included: for restore -- CMD and --into' },
    'skip-unsupported': { help: 'with --fds-only: leave out (and list) the fds cr cannot dump instead of refusing' },
    force: { help: 'replace IMAGE if it exists (a symlink is replaced, never followed)' },
    'leave-stopped': { help: 'leave the process stopped after the dump' },
    kill: { help: 'kill the process once the image is complete (to move it); a failed dump lets it run on' },
    timings: { help: 'print how long each phase took, on stderr' },
    log: { value: 'FILE', help: 'write every system call cr runs inside the process to FILE: arguments, result, time' },
  },
  examples: ['dump --pid 1234 -o app.img', 'dump --pid 1234 -o - --kill | gzip > app.img.gz', 'dump --pid 1234 -o fds.img --fds-only --skip-unsupported'],
});

type Options = Values<typeof command.flags>;

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The summary line: on stdout, unless the image goes there (-o -). */
const say = (output: string, line: string): void => (output === STDOUT_PATH ? console.error(line) : console.log(line));

/** The image's name in the summary line. */
const named = (output: string): string => (output === STDOUT_PATH ? 'stdout' : output);

/** What became of the process, for the summary line. */
const afterwards = (opts: Options): string => (opts.kill ? ' (process killed)' : opts['leave-stopped'] ? ' (process left stopped)' : ' (the process runs on)');

/** `N fds, N descriptions, N pipes holding N bytes` (words as fd-table dumps always said them, or in the singular where it applies). */
function fdSummary(image: Image, count: (n: number, word: string) => string = (n, word) => `${n} ${word}s`): string {
  const { fds, descs, pipes } = image.table;
  const bytes = pipes.reduce((n, p) => n + Buffer.byteLength(p.data, 'base64'), 0);
  return `${count(fds.length, 'fd')}, ${count(descs.length, 'description')}, ${count(pipes.length, 'pipe')} holding ${count(bytes, 'byte')}`;
}

/** The fd table only, for `restore IMAGE -- CMD` and `--into`. */
function dumpFds(pid: number, output: string, opts: Options): Phases {
  // Created before the process is touched: a path cr may not write fails here, not after the freeze.
  const out = openImageOutput(output, { force: opts.force });
  let image: Image;
  let phases: Phases;
  try {
    // A process stopped by job control stays stopped whatever becomes of the dump.
    let wasStopped = false;
    try {
      wasStopped = readStatus(pid).state === 'T';
    } catch {
      // no such process: checkpoint says so
    }
    // --kill: left stopped until the image is complete, so it runs nothing the image lacks.
    const holdStopped = opts['leave-stopped'] || opts.kill;
    ({ image, phases } = dumpFdTable(pid, { skipUnsupported: opts['skip-unsupported'], leaveStopped: holdStopped }));
    const t = performance.now();
    try {
      out.write([encodeImage(image)]);
      out.commit();
    } catch (err) {
      // Left stopped for a restore that now has no image: let it run again, if it ran before.
      if (!holdStopped || wasStopped) throw err;
      kill(pid, SIGCONT);
      throw new CrError(`${(err as Error).message}; pid ${pid} was not left stopped`, err instanceof CrError ? err.code : 1);
    }
    if (opts.kill) kill(pid, SIGKILL);
    phases.push(['write', performance.now() - t]);
  } finally {
    out.abort();
  }
  const dropped = image.dropped.length ? `, ${image.dropped.length} dropped (${image.dropped.map((d) => `fd ${d.fd} ${printable(d.kind)}`).join(', ')})` : '';
  say(output, `dumped pid ${pid} (${printable(image.process.comm)}): ${fdSummary(image)}${dropped} -> ${named(output)} (fd table only)${afterwards(opts)}`);
  return phases;
}

/** The whole process: memory, registers, signals, fd table and the rest, for `restore IMAGE`. */
function dumpProcess(pid: number, output: string, opts: Options): Phases {
  const result = checkpointProcess(pid, output, { force: opts.force, leaveStopped: opts['leave-stopped'], kill: opts.kill });
  const image = result.fdImage;
  const size = result.bytes >= 1 << 20 ? `${(result.bytes / (1 << 20)).toFixed(1)} MiB` : `${(result.bytes / 1024).toFixed(1)} KiB`;
  say(
    output,
    `dumped pid ${pid} (${printable(image.process.comm)}), the whole process: ${plural(result.mappings, 'mapping')}, ${plural(result.pages, 'page')} of memory ` +
      `(${result.zeroPages} all-zero left out), ${fdSummary(image, plural)} -> ${named(output)} (${size})${afterwards(opts)}`,
  );
  return result.phases;
}

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommand(command, args);
  if (parsed === undefined) return 0;
  const opts = parsed.values;
  if (!/^[1-9][0-9]{0,9}$/.test(opts.pid)) badInput(`--pid: ${JSON.stringify(opts.pid)} is not a pid`);
  if (opts.kill && opts['leave-stopped']) badInput('--kill and --leave-stopped exclude each other');
  if (opts['skip-unsupported'] && !opts['fds-only']) {
    badInput('--skip-unsupported is for --fds-only: a whole-process dump refuses what it cannot restore, since the restarted program would find it missing');
  }
  const pid = Number(opts.pid);
  refuseThreadId(pid);
  // The log's path is judged (and its file made) before the process is touched.
  const phases = await CallLog.around(opts.log, `cr dump --pid ${pid}`, async () => dump(pid, opts));
  if (opts.timings) {
    const total = phases.reduce((n, [, ms]) => n + ms, 0);
    console.error(`timings: ${phases.map(([name, ms]) => `${name} ${ms.toFixed(2)}`).join(', ')}, total ${total.toFixed(2)} ms`);
  }
  return 0;
}

function dump(pid: number, opts: Options): Phases {
  try {
    return opts['fds-only'] ? dumpFds(pid, opts.output, opts) : dumpProcess(pid, opts.output, opts);
  } catch (err) {
    // A process that exits mid-dump makes /proc reads and ptrace fail in many ways; say why once.
    if (err instanceof CrError) throw err;
    const first = (err as Error).message.split('\n')[0];
    if (!isRunning(pid)) throw new CrError(`pid ${pid} ended during the dump; no image was written (${first})`);
    // Whatever cr was not allowed to read or trace is the user's to know, not a bug in cr.
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') throw new CrError(`not permitted: ${first}; no image was written`);
    throw err;
  }
}
