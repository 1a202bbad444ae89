// The fd table of a process frozen by the whole-process checkpoint, as the fd-table image holds
// it: src/dump's gather, then each pipe's bytes copied without consuming them. (This repeats the
// private copyPipes of src/dump/checkpoint.ts, which freezes and thaws on its own; once that
// exports a capture of an already frozen process, this file goes.)
import { release } from 'node:os';
import { closeFd } from '../../bridge/file.js';
import { pidfdOpen } from '../../bridge/pidfd.js';
import { gather } from '../dump/gather.js';
import { copyPipe, readSideOf } from '../dump/pipes.js';
import { CrError } from '../errors.js';
import { IMAGE_FORMAT_VERSION, IMAGE_MAGIC, toolVersion, type Image } from '../image/format.js';
import { parseTable } from '../model/validate.js';
import type { ProcessIdentity } from '../proc/process.js';

export function captureFdTable(pid: number, identity: ProcessIdentity): Image {
  const gathered = gather(pid, { skipUnsupported: false });
  if (gathered.table.pipes.length > 0) {
    const pidfd = pidfdOpen(pid);
    try {
      for (const pipe of gathered.table.pipes) {
        const ends = gathered.pipeEnds.get(pipe.id)!;
        const fd = readSideOf(pid, pidfd, ends);
        try {
          const bytes = copyPipe(fd, `the pipe at ${ends.map((e) => `fd ${e.fd}`).join(', ')}`);
          pipe.capacity = bytes.capacity;
          pipe.data = bytes.data.toString('base64');
          if (bytes.packets) pipe.packets = bytes.packets;
        } finally {
          closeFd(fd);
        }
      }
    } finally {
      closeFd(pidfd);
    }
  }
  try {
    parseTable(gathered.table);
  } catch (err) {
    throw new CrError(`the gathered table does not validate: ${(err as Error).message}`);
  }
  return {
    magic: IMAGE_MAGIC,
    formatVersion: IMAGE_FORMAT_VERSION,
    toolVersion: toolVersion(),
    kernel: release(),
    process: identity,
    table: gathered.table,
    dropped: [],
  };
}
