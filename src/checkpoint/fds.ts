// The fd table of a process frozen by the whole-process checkpoint, as the fd-table image holds
// it: src/dump's gather, then each pipe's bytes copied without consuming them.
import { copyPipes, imageOf } from '../dump/fd-dump.js';
import { gather } from '../dump/gather.js';
import type { Image } from '../image/format.js';
import type { ProcessIdentity } from '../proc/process.js';

export function captureFdTable(pid: number, identity: ProcessIdentity): Image {
  const gathered = gather(pid, { skipUnsupported: false, offerSkip: false });
  copyPipes(pid, gathered);
  return imageOf(identity, gathered);
}
