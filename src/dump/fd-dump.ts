// A dump from start to end: freeze the process, gather its fd table, copy its pipes' bytes,
// let it go. Each phase is timed for `dump --timings`.
import { holdConnections } from './connections.js';
import { release } from 'node:os';
import { closeFd } from '../../bridge/file.js';
import { pidfdOpen } from '../../bridge/pidfd.js';
import { IMAGE_FORMAT_VERSION, IMAGE_MAGIC, toolVersion, type Image } from '../image/format.js';
import { CrError } from '../errors.js';
import { O_ACCMODE, O_RDONLY, O_RDWR, O_WRONLY, type FdTables, type Pipe } from '../model/fdtable.js';
import { parseTables } from '../image/validate.js';
import { oneProcess } from '../model/fdtable.js';
import { readIdentity, type ProcessIdentity } from '../proc/process.js';
import { freeze, thaw } from '../task/freeze.js';
import { gather, type Gathered, type PipeEnd } from './gather.js';
import { readProcFds } from '../proc/fds.js';
import { copyPipe, emptyPipeByWriteEnd, readSideOf, ScratchPipes } from './pipes.js';
import { stopwatch, type Phases } from '../timing.js';

export interface DumpOptions {
  skipUnsupported: boolean;
  /** bytes of a deleted file's or memfd's data the image may carry */
  maxContents?: number;
  /** leave the process stopped (SIGSTOP) for a later restore */
  leaveStopped: boolean;
  /** bound on waiting for each thread to stop */
  timeoutMs?: number;
  /** established TCP connections recorded to be restored as reset (else refused: an fd table alone cannot carry one) */
  tcpClose?: boolean;
}

/**
 * Fill in each pipe's capacity and bytes, reading them through fds of cr's own: taken once per
 * pipe, from whichever process holds a read end (tee, so nothing is consumed).
 */
export function copyPipes(pipes: Pipe[], pipeEnds: Map<number, PipeEnd[]>): void {
  if (pipes.length === 0) return;
  const pidfds = new Map<number, number>();
  const pidfdOf = (pid: number): number => {
    let fd = pidfds.get(pid);
    if (fd === undefined) {
      fd = pidfdOpen(pid);
      pidfds.set(pid, fd);
    }
    return fd;
  };
  const several = new Set([...pipeEnds.values()].flat().map((e) => e.pid)).size > 1;
  const scratch = new ScratchPipes();
  try {
    for (const pipe of pipes) {
      const ends = pipeEnds.get(pipe.id)!;
      const what = (): string => `the pipe at ${ends.map((e) => `${several ? `process ${e.pid} ` : ''}fd ${e.fd}${endName(e.flags)}`).join(', ')}`;
      const reader = ends.find((e) => (e.flags & O_ACCMODE) !== O_WRONLY) ?? ends[0]!;
      const fd = readSideOf(reader.pid, pidfdOf(reader.pid), ends.filter((e) => e.pid === reader.pid));
      try {
        const bytes = fd === null ? emptyPipeByWriteEnd(pidfdOf(ends[0]!.pid), ends[0]!.fd, what) : copyPipe(fd, what, scratch);
        pipe.capacity = bytes.capacity;
        pipe.data = bytes.data;
        if (bytes.packets) pipe.packets = bytes.packets;
      } finally {
        if (fd !== null) closeFd(fd);
      }
    }
  } finally {
    scratch.close();
    for (const fd of pidfds.values()) closeFd(fd);
  }
}

const endName = (flags: number): string => {
  const mode = flags & O_ACCMODE;
  return mode === O_RDONLY ? ' (read)' : mode === O_RDWR ? ' (read-write)' : ' (write)';
};

export function dumpFdTable(pid: number, opts: DumpOptions): { image: Image; phases: Phases } {
  const phases: Phases = [];
  const lap = stopwatch(phases);
  const frozen = freeze(pid, opts.timeoutMs);
  lap('freeze');
  let gathered: Gathered;
  let identity;
  try {
    identity = readIdentity(pid);
    // The fds read once, for the connections and the table.
    const fds = readProcFds(pid);
    const refused = holdConnections([{ pid, fds }], { tcpClose: opts.tcpClose ?? false, whole: false }).reasons;
    if (refused.length > 0) throw new CrError(refused.join('; '));
    gathered = gather(pid, fds, { skipUnsupported: opts.skipUnsupported, offerSkip: true, ...(opts.maxContents === undefined ? {} : { maxContents: opts.maxContents }) }, lap);
    copyPipes(gathered.table.pipes, gathered.pipeEnds);
    lap('pipes');
  } catch (err) {
    // A failed dump leaves the process running, --leave-stopped or not.
    thaw(frozen, { leaveStopped: false });
    throw err;
  }
  thaw(frozen, { leaveStopped: opts.leaveStopped });
  lap('thaw');
  const image = imageOf(identity, gathered);
  checkGathered(image);
  return { image, phases };
}

/**
 * The fd-table image of what was gathered (one process's table, or a tree's tables), not yet
 * checked: checkGathered, once the processes run again (the check is no part of their downtime).
 */
export function imageOf(identity: ProcessIdentity, gathered: Gathered | FdTables): Image {
  return {
    magic: IMAGE_MAGIC,
    formatVersion: IMAGE_FORMAT_VERSION,
    toolVersion: toolVersion(),
    kernel: release(),
    process: identity,
    table: 'processes' in gathered ? gathered : oneProcess(gathered.table, identity.pid),
    dropped: 'processes' in gathered ? [] : gathered.dropped.map((d) => ({ fd: d.fd, kind: d.kind, reason: d.reason })),
  };
}

/** Whatever dump gathered must load again: an image that cannot is a bug here, not bad input. */
export function checkGathered(image: Image): void {
  try {
    parseTables(image.table);
  } catch (err) {
    throw new CrError(`the gathered table does not validate: ${(err as Error).message}`);
  }
}
