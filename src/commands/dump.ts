// `cr dump --pid PID -o IMAGE [--force] [--sync] [--leave-stopped | --kill] [--timings]`: the whole process
// (docs/restart.md), for `restore IMAGE`. With `--fds-only [--skip-unsupported]`: its fd table
// only (docs/dump.md), for `restore IMAGE -- CMD` and `--into`.
import { constants } from 'node:os';
import { describeCounts, type TableCounts } from '../api/counts.js';
import { dump, type DumpResult } from '../api/dump.js';
import { defineCommand, parseCommand } from '../command-line.js';
import { badInput } from '../errors.js';
import { CallLog } from '../inject/trace.js';
import { STDOUT_PATH } from '../output-file.js';
import { printable } from '../printable.js';
import { terminalProgress } from '../progress.js';

export const command = defineCommand({
  name: 'dump',
  summary: 'Checkpoint a running process: the whole of it, or its fd table only (--fds-only).',
  usage: [
    'dump --pid PID -o IMAGE [--max-deleted-size BYTES] [--force] [--sync] [--leave-stopped | --kill] [--tcp-close] [--timings] [--log FILE] [--quiet]',
    'dump --pid PID -o IMAGE --fds-only [--skip-unsupported] [--max-deleted-size BYTES] [--force] [--sync] [--leave-stopped | --kill] [--tcp-close] [--timings] [--log FILE]',
  ],
  operands: [],
  flags: {
    pid: { value: 'PID', required: true, help: 'the process to checkpoint, with all its descendants (they run on afterwards)' },
    output: { short: 'o', value: 'IMAGE', required: true, help: 'the image file to write (mode 0600); - for stdout (a pipe, not a terminal)' },
    'fds-only': { help: 'only the fd table, pipes\' bytes included: for restore -- CMD and --into' },
    'skip-unsupported': { help: 'with --fds-only: leave out (and list) the fds cr cannot dump instead of refusing' },
    'max-deleted-size': { value: 'BYTES', help: 'most data of one memfd the image may carry (default 64 MiB); a larger one is refused' },
    force: { help: 'replace IMAGE if it exists (a symlink is replaced, never followed)' },
    sync: { help: 'fsync IMAGE before it is given its name, so that it survives a crash of the machine (always done with --kill)' },
    'leave-stopped': { help: 'leave the process stopped after the dump' },
    kill: { help: 'kill the process once the image is complete (to move it); a failed dump lets it run on. Its TCP connections end silently (no FIN, no RST): a restore takes them over' },
    'tcp-close': { help: 'do not carry established TCP connections (TCP repair, CAP_NET_ADMIN): restore each as reset by its peer (the next read sees ECONNRESET)' },
    timings: { help: 'print how long each phase took, on stderr, and how long the process was frozen' },
    log: { value: 'FILE', help: 'write every system call cr runs inside the process to FILE: arguments, result, time' },
    quiet: { help: 'no progress line (a dump copying over 100 MB of memory shows one on a terminal)' },
  },
  examples: ['dump --pid 1234 -o app.img', 'dump --pid 1234 -o - --kill | gzip > app.img.gz', 'dump --pid 1234 -o fds.img --fds-only --skip-unsupported'],
});

/** The signals that interrupt a dump. */
const INTERRUPTS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The summary line: on stdout, unless the image goes there (-o -). */
const say = (output: string, line: string): void => (output === STDOUT_PATH ? console.error(line) : console.log(line));

/** `N fds, N descriptions, N pipes holding N bytes`, as fd-table dumps always said them (plural throughout). */
const fdCounts = (c: TableCounts): string => `${c.fds} fds, ${c.descriptions} descriptions, ${c.pipes} pipes holding ${c.pipeBytes} bytes`;

/** The one summary line of a dump. */
function summary(r: DumpResult): string {
  const to = r.output === STDOUT_PATH ? 'stdout' : r.output;
  const afterwards = r.afterwards === 'runs on' ? '(the process runs on)' : `(process ${r.afterwards})`;
  if (!r.whole) {
    const dropped = r.dropped.length ? `, ${r.dropped.length} dropped (${r.dropped.map((d) => `fd ${d.fd} ${printable(d.kind)}`).join(', ')})` : '';
    return `dumped pid ${r.pid} (${printable(r.comm)}): ${fdCounts(r.counts)}${dropped} -> ${to} (fd table only) ${afterwards}`;
  }
  const bytes = r.bytes!;
  const size = bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
  const tree = r.tree ?? [];
  if (tree.length > 1) {
    const zombies = tree.filter((m) => m.zombie !== null).length;
    const whose = `${plural(tree.length - 1, 'descendant')}${zombies ? ` (${zombies} ${zombies === 1 ? 'a zombie' : 'zombies'})` : ''}`;
    const after = r.afterwards === 'runs on' ? '(the processes run on)' : `(processes ${r.afterwards})`;
    return (
      `dumped pid ${r.pid} (${printable(r.comm)}) and its ${whose}, the whole tree: ${plural(r.mappings!, 'mapping')}, ${plural(r.pages!, 'page')} of memory ` +
      `(${r.zeroPages} all-zero left out), ${describeCounts(r.counts)} -> ${to} (${size}) ${after}`
    );
  }
  return (
    `dumped pid ${r.pid} (${printable(r.comm)}), the whole process: ${plural(r.mappings!, 'mapping')}, ${plural(r.pages!, 'page')} of memory ` +
    `(${r.zeroPages} all-zero left out), ${describeCounts(r.counts)} -> ${to} (${size}) ${afterwards}`
  );
}

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommand(command, args);
  if (parsed === undefined) return 0;
  const opts = parsed.values;
  if (!/^[1-9][0-9]{0,9}$/.test(opts.pid)) badInput(`--pid: ${JSON.stringify(opts.pid)} is not a pid`);
  // Ctrl-C, or a SIGTERM or SIGHUP, during the dump: the dump is finished (it holds the process
  // frozen), then undone: its image removed, the process left as it was (src/api.ts).
  const interrupt = new AbortController();
  const handlers = INTERRUPTS.map((name) => [name, () => interrupt.abort(128 + constants.signals[name])] as const);
  for (const [name, handler] of handlers) process.on(name, handler);
  const pid = Number(opts.pid);
  const maxText = opts['max-deleted-size'];
  if (maxText !== undefined && !/^(0|[1-9][0-9]{0,14})$/.test(maxText)) badInput(`--max-deleted-size: ${JSON.stringify(maxText)} is not a number of bytes`);
  let r: DumpResult;
  const progress = opts.quiet || opts['fds-only'] ? undefined : terminalProgress('dumping');
  try {
    // The log's path is judged (and its file made) before the process is touched.
    r = await CallLog.around(opts.log, `cr dump --pid ${pid}`, () =>
      dump(pid, {
        output: opts.output, fdsOnly: opts['fds-only'], skipUnsupported: opts['skip-unsupported'], force: opts.force, sync: opts.sync,
        ...(maxText === undefined ? {} : { maxDeletedSize: Number(maxText) }),
        leaveStopped: opts['leave-stopped'], kill: opts.kill, tcpClose: opts['tcp-close'], signal: interrupt.signal, onProgress: progress?.onProgress,
      }),
    );
  } finally {
    progress?.end();
    for (const [name, handler] of handlers) process.off(name, handler);
  }
  say(opts.output, summary(r));
  if (opts.timings) {
    const total = r.phases.reduce((n, [, ms]) => n + ms, 0);
    const frozen = r.frozenMs !== undefined ? `; frozen ${r.frozenMs.toFixed(2)} ms` : '';
    console.error(`timings: ${r.phases.map(([name, ms]) => `${name} ${ms.toFixed(2)}`).join(', ')}, total ${total.toFixed(2)} ms${frozen}`);
  }
  return 0;
}
