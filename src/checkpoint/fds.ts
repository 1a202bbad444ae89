// The fd table of a process frozen by the whole-process checkpoint, as the fd-table image holds
// it: src/dump's gather, then each pipe's bytes copied without consuming them.
import { release } from 'node:os';
import { gather } from '../dump/gather.js';
import { copyPipes } from '../dump/checkpoint.js';
import { CrError } from '../errors.js';
import { IMAGE_FORMAT_VERSION, IMAGE_MAGIC, toolVersion, type Image } from '../image/format.js';
import { parseTable } from '../model/validate.js';
import type { ProcessIdentity } from '../proc/process.js';

export function captureFdTable(pid: number, identity: ProcessIdentity): Image {
  const gathered = gather(pid, { skipUnsupported: false });
  copyPipes(pid, gathered);
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
