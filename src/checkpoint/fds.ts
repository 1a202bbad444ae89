// The fd tables of processes frozen by the whole-process checkpoint (one, or a tree's live
// members), as the fd-table image holds them: src/dump's gather across them, then each pipe's
// bytes copied once without consuming them.
import { copyPipes, imageOf } from '../dump/fd-dump.js';
import { gatherTree } from '../dump/gather.js';
import type { Image } from '../image/format.js';
import type { ProcFd } from '../proc/fds.js';
import type { ProcessIdentity } from '../proc/process.js';

/**
 * `root` is the identity the image's envelope names; procs the live members, parents first, with
 * their fds as read once (`fds`). The image is not checked yet (checkGathered, after the thaw).
 */
export function captureFdTables(root: ProcessIdentity, procs: Array<{ pid: number; parent?: number }>, fds: ReadonlyArray<readonly ProcFd[]>, maxContents?: number): Image {
  const gathered = gatherTree(procs, fds, undefined, maxContents);
  copyPipes(gathered.tables.pipes, gathered.pipeEnds);
  return imageOf(root, gathered.tables);
}
