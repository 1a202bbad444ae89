// The System V semaphore sets and message queues an image's processes used (head sysvIpc,
// src/checkpoint/sysv-ipc.ts), found again before anything starts. They are keyed objects that
// outlive their processes, like files: the restarted process uses the same one, by its key or
// its id, in the state it has now (other processes may have used it meanwhile, as they could
// while it ran). The image holds no values or messages: one that is gone, or whose key another
// object holds now, is refused in one line rather than let the program find it missing.
import { readFileSync } from 'node:fs';
import { CrError, EXIT_BAD_INPUT } from '../errors.js';
import type { ProcessHead, SysvIpcObject } from '../image/process-head.js';

const NAMES = { sem: { file: 'sem', id: 'semid', what: 'semaphore set', remove: 's' }, msg: { file: 'msg', id: 'msqid', what: 'message queue', remove: 'q' } } as const;
const hexKey = (key: number): string => `0x${(key >>> 0).toString(16).padStart(8, '0')}`;

/** kind's objects as /proc/sysvipc lists them now: key and id. */
function live(kind: SysvIpcObject['kind']): Array<{ key: number; id: number }> {
  const lines = readFileSync(`/proc/sysvipc/${NAMES[kind].file}`, 'latin1').split('\n');
  const head = lines[0]!.trim().split(/\s+/);
  return lines
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((cols) => cols.length === head.length)
    .map((cols) => ({ key: Number(cols[head.indexOf('key')]), id: Number(cols[head.indexOf(NAMES[kind].id)]) }));
}

/** Throws, naming the first, when an object a head says its process used is not there as it was. */
export function checkSysvIpc(heads: readonly ProcessHead[]): void {
  const now = { sem: live('sem'), msg: live('msg') };
  for (const h of heads) {
    for (const o of h.sysvIpc) {
      const n = NAMES[o.kind];
      const where = `System V ${n.what} ${o.id}${o.key !== 0 ? ` (key ${hexKey(o.key)})` : ''}, which process ${h.process.pid} used`;
      if (now[o.kind].some((x) => x.id === o.id && x.key === o.key)) continue;
      const holder = o.key !== 0 ? now[o.kind].find((x) => x.key === o.key) : undefined;
      if (holder) {
        throw new CrError(`${where}: its key is now ${n.what} ${holder.id}, another one; cr does not carry its contents (ipcrm -${n.remove} ${holder.id} and make it again, or restore where it is)`, EXIT_BAD_INPUT);
      }
      throw new CrError(`${where}: it is gone, and cr does not carry its contents (a restart finds it where it was, as it finds a file)`, EXIT_BAD_INPUT);
    }
  }
}
