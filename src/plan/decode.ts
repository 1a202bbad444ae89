// The planner's output words (layout: assembly/emit.ts) as Op records, with the
// paths, offsets and byte counts the words only point at.

import type { FdTable } from '../model/fdtable.js';
import type { Op } from './ops.js';
import type { Encoded } from './encode.js';

const OP_PIPE2 = 1, OP_OPEN = 2, OP_DUP2 = 3, OP_DUPFD = 4, OP_CLOSE = 5, OP_SETFL = 6, OP_SETFD = 7;
const OP_SETPIPESZ = 8, OP_LSEEK = 9, OP_WRITE = 10, OP_PRLIMIT = 11, OP_COMMIT = 12;

export function decodeOps(words: Int32Array, start: number, count: number, table: FdTable, enc: Encoded): Op[] {
  const ops: Op[] = [];
  let p = start;
  for (let i = 0; i < count; i++) {
    const code = words[p++];
    switch (code) {
      case OP_PIPE2: {
        const flags = words[p++], r = words[p++], w = words[p++], pipe = words[p++];
        ops.push({ op: 'pipe2', flags, fds: [r, w], pipe: enc.pipeIds[pipe] });
        break;
      }
      case OP_OPEN: {
        const desc = words[p++], pathDesc = words[p++], via = words[p++], flags = words[p++], fd = words[p++];
        const path = via >= 0 ? `/proc/self/fd/${via}` : (table.descs[pathDesc].path ?? '');
        ops.push({ op: 'open', desc: desc >= 0 ? enc.descIds[desc] : -1, path, via, flags, fd });
        break;
      }
      case OP_DUP2:
        ops.push({ op: 'dup2', from: words[p++], to: words[p++], cloexec: words[p++] !== 0 });
        break;
      case OP_DUPFD:
        ops.push({ op: 'dupfd', from: words[p++], min: words[p++], cloexec: words[p++] !== 0, fd: words[p++] });
        break;
      case OP_CLOSE:
        ops.push({ op: 'close', fd: words[p++] });
        break;
      case OP_SETFL:
        ops.push({ op: 'setfl', fd: words[p++], flags: words[p++] });
        break;
      case OP_SETFD:
        ops.push({ op: 'setfd', fd: words[p++], cloexec: words[p++] !== 0 });
        break;
      case OP_SETPIPESZ:
        ops.push({ op: 'setpipesz', fd: words[p++], size: words[p++] });
        break;
      case OP_LSEEK: {
        const fd = words[p++], desc = words[p++];
        ops.push({ op: 'lseek', fd, offset: table.descs[desc].offset ?? 0 });
        break;
      }
      case OP_WRITE: {
        const fd = words[p++], pipe = words[p++];
        ops.push({ op: 'write', fd, pipe: enc.pipeIds[pipe], bytes: enc.dataLength[pipe] });
        break;
      }
      case OP_PRLIMIT:
        ops.push({ op: 'prlimit', soft: words[p++], hard: words[p++] });
        break;
      case OP_COMMIT:
        ops.push({ op: 'commit' });
        break;
      default:
        throw new Error(`planner output: unknown op code ${code} at word ${p - 1}`);
    }
  }
  return ops;
}
