// The planner's output words (layout: assembly/emit.ts) as a plan's words (src/plan/ops.ts), with
// the ids, paths, offsets and byte counts the planner's words only point at.

import {
  OP_CLOSE, OP_COMMIT, OP_CREATE, OP_DUP2, OP_DUPFD, OP_LSEEK, OP_OPEN, OP_PIPE2, OP_PRLIMIT, OP_SETFD, OP_SETFL,
  OP_SETPIPESZ, OP_WRITE, OP_SOCKETPAIR,
} from '../abi.js';
import { kindOf } from '../kinds/registry.js';
import { pathOf, type Desc, type FdTable } from '../model/fdtable.js';
import { K_CLOSE, K_COMMIT, K_CREATE, K_DUP2, K_DUPFD, K_LSEEK, K_OPEN, K_PIPE2, K_PRLIMIT, K_SETFD, K_SETFL, K_SETPIPESZ, K_SOCKETPAIR, K_WRITE, OpWords, STRIDE, TEXT } from './ops.js';
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
 * planner's indices, the texts the words only point at. No object per op; each op's words written
 * in place (the array is made at its final size, zeroed: a field an op lacks stays 0).
 */
export function decodeOps(words: Int32Array, start: number, count: number, table: FdTable, enc: Encoded): OpWords {
  const ops = new OpWords(count);
  const w = ops.words;
  const texts = ops.texts;
  const { descIds, pipeIds, dataLength } = enc;
  const descId = (desc: number) => (desc >= 0 ? descIds[desc]! : -1);
  let p = start;
  for (let b = 0, end = count * STRIDE; b < end; b += STRIDE) {
    const code = words[p++]!;
    w[b + TEXT] = -1;
    switch (code) {
      case OP_PIPE2:
        w[b] = K_PIPE2;
        w[b + 1] = words[p]!;
        w[b + 2] = words[p + 1]!;
        w[b + 3] = words[p + 2]!;
        w[b + 4] = pipeIds[words[p + 3]!]!;
        p += 4;
        break;
      case OP_OPEN: {
        const pathDesc = words[p + 1]!, via = words[p + 2]!;
        w[b] = K_OPEN;
        w[b + 1] = descId(words[p]!);
        w[b + 2] = via;
        w[b + 3] = words[p + 3]!;
        w[b + 4] = words[p + 4]!;
        if (via < 0) {
          w[b + TEXT] = texts.length;
          texts.push(pathOf(table.descs[pathDesc]!) ?? '');
        }
        p += 5;
        break;
      }
      case OP_DUP2:
        w[b] = K_DUP2;
        w[b + 1] = words[p]!;
        w[b + 2] = words[p + 1]!;
        w[b + 3] = words[p + 2] !== 0 ? 1 : 0;
        p += 3;
        break;
      case OP_DUPFD:
        w[b] = K_DUPFD;
        w[b + 1] = words[p]!;
        w[b + 2] = words[p + 1]!;
        w[b + 3] = words[p + 2] !== 0 ? 1 : 0;
        w[b + 4] = words[p + 3]!;
        p += 4;
        break;
      case OP_CLOSE:
        w[b] = K_CLOSE;
        w[b + 1] = words[p++]!;
        break;
      case OP_SETFL:
        w[b] = K_SETFL;
        w[b + 1] = words[p]!;
        w[b + 2] = words[p + 1]!;
        p += 2;
        break;
      case OP_SETFD:
        w[b] = K_SETFD;
        w[b + 1] = words[p]!;
        w[b + 2] = words[p + 1] !== 0 ? 1 : 0;
        p += 2;
        break;
      case OP_SETPIPESZ:
        w[b] = K_SETPIPESZ;
        w[b + 1] = words[p]!;
        w[b + 2] = words[p + 1]!;
        p += 2;
        break;
      case OP_LSEEK:
        w[b] = K_LSEEK;
        w[b + 1] = words[p]!;
        w[b + TEXT] = texts.length;
        texts.push(positionOf(table.descs[words[p + 1]!]!));
        p += 2;
        break;
      case OP_WRITE: {
        const pipe = words[p + 1]!;
        w[b] = K_WRITE;
        w[b + 1] = words[p]!;
        w[b + 2] = pipeIds[pipe]!;
        w[b + 3] = dataLength[pipe]!;
        p += 2;
        break;
      }
      case OP_PRLIMIT:
        w[b] = K_PRLIMIT;
        w[b + 1] = words[p]!;
        w[b + 2] = words[p + 1]!;
        p += 2;
        break;
      case OP_CREATE: {
        const desc = words[p]!, cloexec = words[p + 1] !== 0;
        const d = table.descs[desc]!;
        w[b] = K_CREATE;
        w[b + 1] = descIds[desc]!;
        w[b + 2] = cloexec ? 1 : 0;
        w[b + 3] = words[p + 2]!;
        w[b + TEXT] = texts.length;
        texts.push(kindOf(d).createText?.(d, cloexec) ?? `create ${d.kind}`);
        p += 3;
        break;
      }
      case OP_SOCKETPAIR: {
        const cloexec = words[p] !== 0, d0 = words[p + 3]!, d1 = words[p + 4]!;
        const ends = [d0, d1].map((d) => (d >= 0 ? table.descs[d] : undefined)) as [Desc | undefined, Desc | undefined];
        const kind = kindOf((ends[0] ?? ends[1])!);
        w[b] = K_SOCKETPAIR;
        w[b + 1] = cloexec ? 1 : 0;
        w[b + 2] = words[p + 1]!;
        w[b + 3] = words[p + 2]!;
        w[b + 4] = descId(d0);
        w[b + 5] = descId(d1);
        w[b + TEXT] = texts.length;
        texts.push(kind.pairText?.(ends as never, cloexec) ?? 'socketpair');
        p += 5;
        break;
      }
      case OP_COMMIT:
        w[b] = K_COMMIT;
        break;
      default:
        throw new Error(`planner output: unknown op code ${code} at word ${p - 1}`);
    }
  }
  ops.length = count;
  return ops;
}
