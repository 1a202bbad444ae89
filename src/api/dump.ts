// dump (src/api.ts): checkpoint a process, whole or its fd table only. Its own module, so the
// commands that never dump load none of checkpoint/.
import { unlinkSync } from 'node:fs';
import { constants } from 'node:os';
import { kill, SIGCONT, SIGKILL } from '../../bridge/signal.js';
import { checkpointProcess } from '../checkpoint/checkpoint.js';
import type { HeldConnections } from '../dump/connections.js';
import { dumpFdTable } from '../dump/fd-dump.js';
import { badInput, CrError } from '../errors.js';
import { encodeImageParts, type Image } from '../image/format.js';
import { openImageOutput, STDOUT_PATH } from '../output-file.js';
import type { TreeMember } from '../model/tree.js';
import { isRunning, readStatus, refuseThreadId } from '../proc/process.js';
import { runSignalHandlers } from '../restore/supervise.js';
import type { OnProgress } from '../progress.js';
import type { Phases } from '../timing.js';
import { tableCounts, isPid, type TableCounts } from './counts.js';
import { now } from '../../bridge/clock.js';

export interface DumpOptions {
  /** the image file to write (mode 0600), or `-` for stdout (not a terminal) */
  output: string;
  /** only the fd table, pipes' bytes included (for restore with `command` or `into`) */
  fdsOnly?: boolean;
  /** with fdsOnly: leave out the fds cr cannot dump (listed in `dropped`) instead of refusing */
  skipUnsupported?: boolean;
  /** bytes of a deleted file's or memfd's data the image may carry, per file (default 64 MiB); above it the dump is refused */
  maxDeletedSize?: number;
  /** replace a file or symlink at output */
  force?: boolean;
  /** leave the process stopped afterwards */
  leaveStopped?: boolean;
  /** kill the process once the image is complete (to move it); a failed dump kills nothing */
  kill?: boolean;
  /** fsync the image before it is given its name; always done with kill (the image is then all there is of the process) */
  sync?: boolean;
  /**
   * established TCP connections are not carried by TCP repair but recorded to be restored as
   * reset by their peer (without it, a connection cr cannot lock is refused)
   */
  tcpClose?: boolean;
  /**
   * Abort the dump (Ctrl-C). A dump is never cut short while it holds the process frozen; an
   * abort that came meanwhile is seen once its work is done, before `kill`: the image is
   * removed, the process left as it was, and the promise rejects with a CrError whose code is
   * the abort's reason when that is a number (the CLI gives 128 + the signal), else 130.
   */
  signal?: AbortSignal;
  /** a whole-process dump: told as pages are copied, bytes done of about how many (docs/api.md) */
  onProgress?: OnProgress;
}

export interface DumpResult {
  pid: number;
  /** the process's name (comm) */
  comm: string;
  /** false for fdsOnly */
  whole: boolean;
  output: string;
  /** what became of the process */
  afterwards: 'runs on' | 'left stopped' | 'killed';
  counts: TableCounts;
  /** fds left out (skipUnsupported) */
  dropped: Array<{ fd: number; kind: string; reason: string }>;
  /** whole process only: mappings, pages written, all-zero pages left out, image size */
  mappings?: number;
  pages?: number;
  zeroPages?: number;
  bytes?: number;
  /** whole process only: the tree dumped (pid and its descendants, zombies included), root first */
  tree?: TreeMember[];
  /** whole process only: milliseconds the processes were held (freeze to thaw), their downtime */
  frozenMs?: number;
  /** milliseconds per phase, in order */
  phases: Phases;
}

/** Checkpoint process pid to opts.output (docs/dump.md, docs/restart.md). */
export async function dump(pid: number, given: DumpOptions): Promise<DumpResult> {
  checkDump(pid, given);
  const opts = { ...given, sync: (given.sync ?? false) || (given.kill ?? false) };
  if (opts.signal === undefined) return dumpNow(pid, opts);
  if (opts.signal.aborted) throw interrupted(opts.signal, 'nothing was done');
  let wasStopped = false;
  try {
    wasStopped = readStatus(pid).state === 'T';
  } catch {
    // no such process: the dump says so
  }
  // With kill asked for, the process is held stopped until the abort has been looked at.
  // Its TCP connections stay locked until then too: killed, the process goes without a FIN.
  const r = dumpNow(pid, { ...opts, kill: false, leaveStopped: (opts.leaveStopped ?? false) || (opts.kill ?? false) }, opts.kill ?? false);
  // Signals that came during the synchronous dump have their handlers run now.
  await runSignalHandlers();
  if (opts.signal.aborted) {
    let what = 'the image was sent to stdout already';
    if (opts.output !== STDOUT_PATH) {
      unlinkSync(opts.output);
      what = `${opts.output} was removed`;
    }
    r.connections?.release();
    const held = opts.kill && !opts.leaveStopped;
    // Every live member of a tree was held like its root; each that ran before runs again.
    const others = (r.tree ?? []).slice(1).filter((m) => m.zombie === null);
    if (held && !wasStopped) kill(pid, SIGCONT);
    if (held) for (const m of others) if (!m.stopped) kill(m.pid, SIGCONT);
    const how = others.length === 0
      ? `pid ${pid} ${opts.leaveStopped || wasStopped ? 'is left stopped' : 'runs on'}`
      : `pid ${pid} and its ${others.length} live descendant${others.length === 1 ? '' : 's'} ${opts.leaveStopped ? 'are left stopped' : 'run on (a stopped one stays stopped)'}`;
    throw interrupted(opts.signal, `${what}; ${how}${opts.kill ? ', not killed' : ''}`);
  }
  if (opts.kill) for (const p of [pid, ...(r.tree ?? []).slice(1).filter((m) => m.zombie === null).map((m) => m.pid)]) kill(p, SIGKILL);
  r.connections?.handOver();
  const { connections: _held, ...result } = r;
  return { ...result, afterwards: opts.kill ? 'killed' : r.afterwards };
}

export const interrupted = (signal: AbortSignal, what: string): CrError => {
  const reason: unknown = signal.reason;
  const code = typeof reason === 'number' ? reason : 130;
  const name = code > 128 ? Object.entries(constants.signals).find(([, n]) => n === code - 128)?.[0] : undefined;
  return new CrError(`interrupted${name ? ` by ${name}` : ''}: ${what}`, code);
};

/** What a dump refuses before it touches anything. */
function checkDump(pid: number, opts: DumpOptions): void {
  if (!isPid(pid)) badInput(`pid: ${JSON.stringify(pid)} is not a pid`);
  if (opts.kill && opts.leaveStopped) badInput('--kill and --leave-stopped exclude each other');
  if (opts.skipUnsupported && !opts.fdsOnly) {
    badInput('--skip-unsupported is for --fds-only: a whole-process dump refuses what it cannot restore, since the restarted program would find it missing');
  }
  refuseThreadId(pid);
}

/** `keepConnections`: the TCP connections stay locked, for the caller to kill the process (handOver) or let it go (release). */
function dumpNow(pid: number, opts: DumpOptions, keepConnections = false): DumpResult & { connections?: HeldConnections } {
  const afterwards = opts.kill ? 'killed' : opts.leaveStopped ? 'left stopped' : 'runs on';
  try {
    if (opts.fdsOnly) {
      const { image, phases } = dumpFds(pid, opts);
      return { pid, comm: image.process.comm, whole: false, output: opts.output, afterwards, counts: tableCounts(image.table), dropped: image.dropped, phases };
    }
    const r = checkpointProcess(pid, opts.output, {
      ...(opts.maxDeletedSize === undefined ? {} : { maxContents: opts.maxDeletedSize }), force: opts.force ?? false, sync: opts.sync ?? false, leaveStopped: opts.leaveStopped ?? false, kill: opts.kill ?? false,
      onProgress: opts.onProgress, tcpClose: opts.tcpClose ?? false, keepConnections,
    });
    const image = r.fdImage;
    return {
      pid, comm: image.process.comm, whole: true, output: opts.output, afterwards, counts: tableCounts(image.table), dropped: image.dropped,
      mappings: r.mappings, pages: r.pages, zeroPages: r.zeroPages, bytes: r.bytes, tree: r.tree, frozenMs: r.frozenMs, phases: r.phases,
      ...(r.connections ? { connections: r.connections } : {}),
    };
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

/** The fd table only. */
function dumpFds(pid: number, opts: DumpOptions): { image: Image; phases: Phases } {
  // Created before the process is touched: a path cr may not write fails here, not after the freeze.
  const out = openImageOutput(opts.output, { force: opts.force ?? false, sync: opts.sync ?? false });
  try {
    // A process stopped by job control stays stopped whatever becomes of the dump.
    let wasStopped = false;
    try {
      wasStopped = readStatus(pid).state === 'T';
    } catch {
      // no such process: the dump says so
    }
    // kill: left stopped until the image is complete, so it runs nothing the image lacks.
    const holdStopped = (opts.leaveStopped ?? false) || (opts.kill ?? false);
    const { image, phases } = dumpFdTable(pid, { skipUnsupported: opts.skipUnsupported ?? false, leaveStopped: holdStopped, tcpClose: opts.tcpClose ?? false, ...(opts.maxDeletedSize === undefined ? {} : { maxContents: opts.maxDeletedSize }) });
    const t = now();
    try {
      out.write(encodeImageParts(image));
      out.commit();
    } catch (err) {
      // Left stopped for a restore that now has no image: let it run again, if it ran before.
      if (!holdStopped || wasStopped) throw err;
      kill(pid, SIGCONT);
      throw new CrError(`${(err as Error).message}; pid ${pid} was not left stopped`, err instanceof CrError ? err.code : 1);
    }
    if (opts.kill) kill(pid, SIGKILL);
    phases.push(['write', now() - t]);
    return { image, phases };
  } finally {
    out.abort();
  }
}

