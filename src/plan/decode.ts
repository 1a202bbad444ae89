// The planner's output words (layout: assembly/emit.ts) as Op records, with the
// paths, offsets and byte counts the words only point at.

import {
  OP_CLOSE, OP_COMMIT, OP_CREATE, OP_DUP2, OP_DUPFD, OP_LSEEK, OP_OPEN, OP_PIPE2, OP_PRLIMIT, OP_SETFD, OP_SETFL,
  OP_SETPIPESZ, OP_WRITE, OP_SOCKETPAIR,
} from '../abi.js';
import { kindOf } from '../kinds/registry.js';
import { pathOf, type Desc, type FdTable } from '../model/fdtable.js';
import type { Op } from './ops.js';
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
        const path = via >= 0 ? `/proc/self/fd/${via}` : (pathOf(table.descs[pathDesc]!) ?? '');
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
        ops.push({ op: 'lseek', fd, offset: positionOf(table.descs[desc]!) });
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
      case OP_CREATE: {
        const desc = words[p++], cloexec = words[p++] !== 0, fd = words[p++];
        const d = table.descs[desc]!;
        ops.push({ op: 'create', desc: enc.descIds[desc]!, cloexec, fd, call: kindOf(d).createText?.(d, cloexec) ?? `create ${d.kind}` });
        break;
      }
      case OP_SOCKETPAIR: {
        const cloexec = words[p++] !== 0, fd0 = words[p++], fd1 = words[p++], d0 = words[p++], d1 = words[p++];
        const ends = [d0, d1].map((d) => (d >= 0 ? table.descs[d] : undefined)) as [Desc | undefined, Desc | undefined];
        const kind = kindOf((ends[0] ?? ends[1])!);
        ops.push({
          op: 'socketpair', cloexec, fds: [fd0, fd1], descs: [d0 >= 0 ? enc.descIds[d0]! : -1, d1 >= 0 ? enc.descIds[d1]! : -1],
          call: kind.pairText?.(ends as never, cloexec) ?? 'socketpair',
        });
        break;
      }
      case OP_COMMIT:
        ops.push({ op: 'commit' });
        break;
      default:
        throw new Error(`planner output: unknown op code ${code} at word ${p - 1}`);
    }
  }
  return ops;
}
