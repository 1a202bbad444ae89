// The planner's output words (layout: assembly/emit.ts), which are a plan's words (src/plan/ops.ts)
// but for the ids and texts (paths, offsets, kinds' calls) the planner's words only point at.

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
 * The planner's `count` ops from word `start` of `words`: they are a plan's words already
 * (assembly/emit.ts), copied out of the planner's memory in one piece. What the planner cannot
 * write is put in after, in one pass, and only for a table that needs it: ids where the table's
 * are not its indices, and texts (a path, an offset, a kind's call) where a description has one.
 */
export function decodeOps(words: Int32Array, start: number, count: number, table: FdTable, enc: Encoded): OpWords {
  const ops = new OpWords(0);
  ops.words = words.slice(start, start + count * STRIDE);
  ops.length = count;
  if (enc.idsAreIndices && !enc.anyText) return ops;
  const w = ops.words;
  const texts = ops.texts;
  const { descIds, pipeIds } = enc;
  const descId = (desc: number) => (desc >= 0 ? descIds[desc]! : -1);
  const text = (b: number, t: string) => {
    w[b + TEXT] = texts.length;
    texts.push(t);
  };
  for (let b = 0, end = count * STRIDE; b < end; b += STRIDE) {
    const kind = w[b]!;
    switch (kind) {
      case K_PIPE2:
        w[b + 4] = pipeIds[w[b + 4]!]!;
        break;
      case K_OPEN: {
        w[b + 1] = descId(w[b + 1]!);
        if (w[b + 2]! < 0) {
          // By path: the planner left the description whose path it is in the last field.
          text(b, pathOf(table.descs[w[b + 5]!]!) ?? '');
          w[b + 5] = 0;
        }
        break;
      }
      case K_LSEEK:
        text(b, positionOf(table.descs[w[b + 2]!]!));
        w[b + 2] = 0;
        break;
      case K_WRITE:
        w[b + 2] = pipeIds[w[b + 2]!]!;
        break;
      case K_CREATE: {
        const desc = w[b + 1]!;
        const d = table.descs[desc]!;
        const cloexec = w[b + 2] !== 0;
        w[b + 1] = descIds[desc]!;
        text(b, kindOf(d).createText?.(d, cloexec) ?? `create ${d.kind}`);
        break;
      }
      case K_SOCKETPAIR: {
        const cloexec = w[b + 1] !== 0, d0 = w[b + 4]!, d1 = w[b + 5]!;
        const ends = [d0, d1].map((d) => (d >= 0 ? table.descs[d] : undefined)) as [Desc | undefined, Desc | undefined];
        const kind = kindOf((ends[0] ?? ends[1])!);
        w[b + 4] = descId(d0);
        w[b + 5] = descId(d1);
        text(b, kind.pairText?.(ends as never, cloexec) ?? 'socketpair');
        break;
      }
      case K_DUP2:
      case K_DUPFD:
      case K_CLOSE:
      case K_SETFL:
      case K_SETFD:
      case K_SETPIPESZ:
      case K_PRLIMIT:
      case K_COMMIT:
        break;
      default:
        throw new Error(`planner output: unknown op kind ${kind} at op ${b / STRIDE}`);
    }
  }
  return ops;
}
