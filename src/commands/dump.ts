// `cr dump --pid PID -o IMAGE [--force] [--skip-unsupported] [--leave-stopped] [--timings]`
import { lstatSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { kill, SIGCONT } from '../../bridge/signal.js';
import { checkpoint } from '../dump/checkpoint.js';
import { badInput, CrError } from '../errors.js';
import { writeImage } from '../image/format.js';

const USAGE = 'usage: cr dump --pid PID -o IMAGE [--force] [--skip-unsupported] [--leave-stopped] [--timings]';

function parse(args: string[]) {
  try {
    return parseArgs({
      args,
      options: {
        pid: { type: 'string' },
        output: { type: 'string', short: 'o' },
        force: { type: 'boolean', default: false },
        'skip-unsupported': { type: 'boolean', default: false },
        'leave-stopped': { type: 'boolean', default: false },
        timings: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    badInput(`${(err as Error).message.split('\n')[0]} (${USAGE})`);
  }
}

/** Refuse a bad IMAGE before the process is touched (writeImage checks again, atomically). */
function checkOutput(path: string, force: boolean): void {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (st.isDirectory()) badInput(`${path} is a directory`);
  if (!force) badInput(`${path} exists (use --force to replace it)`);
}

export async function run(args: string[]): Promise<number> {
  const opts = parse(args);
  if (opts.pid === undefined || opts.output === undefined) badInput(USAGE);
  if (!/^[1-9][0-9]{0,9}$/.test(opts.pid)) badInput(`--pid: ${JSON.stringify(opts.pid)} is not a pid`);
  const pid = Number(opts.pid);
  checkOutput(opts.output, opts.force);
  const { image, phases } = checkpoint(pid, { skipUnsupported: opts['skip-unsupported'], leaveStopped: opts['leave-stopped'] });
  const t = performance.now();
  try {
    writeImage(opts.output, image, { force: opts.force });
  } catch (err) {
    // Left stopped for a restore that now has no image: let it run again.
    if (!opts['leave-stopped']) throw err;
    kill(pid, SIGCONT);
    throw new CrError(`${(err as Error).message}; pid ${pid} was not left stopped`, err instanceof CrError ? err.code : 1);
  }
  phases.push(['write', performance.now() - t]);
  const { fds, descs, pipes } = image.table;
  const bytes = pipes.reduce((n, p) => n + Buffer.byteLength(p.data, 'base64'), 0);
  const dropped = image.dropped.length ? `, ${image.dropped.length} dropped (${image.dropped.map((d) => `fd ${d.fd} ${d.kind}`).join(', ')})` : '';
  console.log(
    `dumped pid ${pid} (${image.process.comm}): ${fds.length} fds, ${descs.length} descriptions, ${pipes.length} pipes holding ${bytes} bytes${dropped} -> ${opts.output}` +
      (opts['leave-stopped'] ? ' (process left stopped)' : ''),
  );
  if (opts.timings) {
    const total = phases.reduce((n, [, ms]) => n + ms, 0);
    console.error(`timings: ${phases.map(([name, ms]) => `${name} ${ms.toFixed(2)}`).join(', ')}, total ${total.toFixed(2)} ms`);
  }
  return 0;
}
