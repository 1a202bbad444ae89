// The planner's output words (layout: assembly/emit.ts) as a plan's words (src/plan/ops.ts), with
// the ids, paths, offsets and byte counts the planner's words only point at.

import {
  OP_CLOSE, OP_COMMIT, OP_CREATE, OP_DUP2, OP_DUPFD, OP_LSEEK, OP_OPEN, OP_PIPE2, OP_PRLIMIT, OP_SETFD, OP_SETFL,
  OP_SETPIPESZ, OP_WRITE, OP_SOCKETPAIR,
} from '../abi.js';
import { kindOf } from '../kinds/registry.js';
import { pathOf, type Desc, type FdTable } from '../model/fdtable.js';
import { K_CLOSE, K_COMMIT, K_CREATE, K_DUP2, K_DUPFD, K_LSEEK, K_OPEN, K_PIPE2, K_PRLIMIT, K_SETFD, K_SETFL, K_SETPIPESZ, K_SOCKETPAIR, K_WRITE, OpWords } from './ops.js';
import type { Encoded } from './encode.js';

/** Where lseek puts a description: its position (a directory's cookie may pass 2^53), as decimal text. */
function positionOf(d: Desc): string {
  switch (d.kind) {
    case 'file':
    case 'chr':
    case 'memfd':
    case 'deleted':
      return String(d.offset ?? 0);
    case 'dir':
      return d.offset;
    case 'pipe':
    case 'fifo':
    case 'eventfd':
    case 'epoll':
    case 'timerfd':
    case 'signalfd':
    case 'inotify':
    case 'pidfd':
    case 'opath':
    case 'ptmx':
    case 'pts':
    case 'unix':
    case 'inet':
      return '0';
    default: {
      const never: never = d;
      throw new Error(`no position for ${JSON.stringify(never)}`);
    }
  }
}

/**
 * The planner's `count` ops from word `start` of `words` as a plan's words: ids in place of the
 * planner's indices, the texts the words only point at. No object per op.
 */
export function decodeOps(words: Int32Array, start: number, count: number, table: FdTable, enc: Encoded): OpWords {
  const ops = new OpWords(count);
  let p = start;
  for (let i = 0; i < count; i++) {
    const code = words[p++];
    switch (code) {
      case OP_PIPE2: {
        const b = ops.push(K_PIPE2);
        const w = ops.words;
        w[b + 1] = words[p++]!;
        w[b + 2] = words[p++]!;
        w[b + 3] = words[p++]!;
        w[b + 4] = enc.pipeIds[words[p++]!]!;
        break;
      }
      case OP_OPEN: {
        const desc = words[p++]!, pathDesc = words[p++]!, via = words[p++]!, flags = words[p++]!, fd = words[p++]!;
        const b = ops.push(K_OPEN, via >= 0 ? undefined : (pathOf(table.descs[pathDesc]!) ?? ''));
        const w = ops.words;
        w[b + 1] = desc >= 0 ? enc.descIds[desc]! : -1;
        w[b + 2] = via;
        w[b + 3] = flags;
        w[b + 4] = fd;
        break;
      }
      case OP_DUP2: {
        const b = ops.push(K_DUP2);
        const w = ops.words;
        w[b + 1] = words[p++]!;
        w[b + 2] = words[p++]!;
        w[b + 3] = words[p++] !== 0 ? 1 : 0;
        break;
      }
      case OP_DUPFD: {
        const b = ops.push(K_DUPFD);
        const w = ops.words;
        w[b + 1] = words[p++]!;
        w[b + 2] = words[p++]!;
        w[b + 3] = words[p++] !== 0 ? 1 : 0;
        w[b + 4] = words[p++]!;
        break;
      }
      case OP_CLOSE: {
        const b = ops.push(K_CLOSE);
        ops.words[b + 1] = words[p++]!;
        break;
      }
      case OP_SETFL: {
        const b = ops.push(K_SETFL);
        const w = ops.words;
        w[b + 1] = words[p++]!;
        w[b + 2] = words[p++]!;
        break;
      }
      case OP_SETFD: {
        const b = ops.push(K_SETFD);
        const w = ops.words;
        w[b + 1] = words[p++]!;
        w[b + 2] = words[p++] !== 0 ? 1 : 0;
        break;
      }
      case OP_SETPIPESZ: {
        const b = ops.push(K_SETPIPESZ);
        const w = ops.words;
        w[b + 1] = words[p++]!;
        w[b + 2] = words[p++]!;
        break;
      }
      case OP_LSEEK: {
        const fd = words[p++]!, desc = words[p++]!;
        const b = ops.push(K_LSEEK, positionOf(table.descs[desc]!));
        ops.words[b + 1] = fd;
        break;
      }
      case OP_WRITE: {
        const fd = words[p++]!, pipe = words[p++]!;
        const b = ops.push(K_WRITE);
        const w = ops.words;
        w[b + 1] = fd;
        w[b + 2] = enc.pipeIds[pipe]!;
        w[b + 3] = enc.dataLength[pipe]!;
        break;
      }
      case OP_PRLIMIT: {
        const b = ops.push(K_PRLIMIT);
        const w = ops.words;
        w[b + 1] = words[p++]!;
        w[b + 2] = words[p++]!;
        break;
      }
      case OP_CREATE: {
        const desc = words[p++]!, cloexec = words[p++] !== 0, fd = words[p++]!;
        const d = table.descs[desc]!;
        const b = ops.push(K_CREATE, kindOf(d).createText?.(d, cloexec) ?? `create ${d.kind}`);
        const w = ops.words;
        w[b + 1] = enc.descIds[desc]!;
        w[b + 2] = cloexec ? 1 : 0;
        w[b + 3] = fd;
        break;
      }
      case OP_SOCKETPAIR: {
        const cloexec = words[p++] !== 0, fd0 = words[p++]!, fd1 = words[p++]!, d0 = words[p++]!, d1 = words[p++]!;
        const ends = [d0, d1].map((d) => (d >= 0 ? table.descs[d] : undefined)) as [Desc | undefined, Desc | undefined];
        const kind = kindOf((ends[0] ?? ends[1])!);
        const b = ops.push(K_SOCKETPAIR, kind.pairText?.(ends as never, cloexec) ?? 'socketpair');
        const w = ops.words;
        w[b + 1] = cloexec ? 1 : 0;
        w[b + 2] = fd0;
        w[b + 3] = fd1;
        w[b + 4] = d0 >= 0 ? enc.descIds[d0]! : -1;
        w[b + 5] = d1 >= 0 ? enc.descIds[d1]! : -1;
        break;
      }
      case OP_COMMIT:
        ops.push(K_COMMIT);
        break;
      default:
        throw new Error(`planner output: unknown op code ${code} at word ${p - 1}`);
    }
  }
  return ops;
}
