// An open named FIFO: a pipe with a path. Recognised by a FIFO inode whose link is a path that
// still names it; ends on one inode are one Pipe. Opened by its path at restore
// (CLASS_RENDEZVOUS: readers first, a temporary reader or writer where the image has none).
import { CLASS_RENDEZVOUS } from '../abi.js';
import { O_ACCMODE, O_ASYNC, O_DIRECT, O_LARGEFILE, O_NONBLOCK, O_RDWR } from '../model/fdtable.js';
import { get, integer, parsePath } from '../model/json.js';
import { afterOpen, byPathFlags, inodeKey, no, oddFlags, pathProblem, quoted, RESTORABLE_FLAGS } from './common.js';
import type { KindModule } from './kind.js';
import { printable } from '../printable.js';

const MAX_ID = 2 ** 31 - 1;

export const fifo: KindModule<'fifo'> = {
  kind: 'fifo',
  recognise(e) {
    if (!e.stat.isFIFO() || e.link.startsWith('pipe:')) return null;
    const odd = oddFlags(e, RESTORABLE_FLAGS, 'fifo');
    if (odd) return odd;
    if (e.stat.nlink === 0) return no(e, 'deleted FIFO', `${printable(e.link)}: the FIFO was deleted, so it cannot be reopened by path`);
    const problem = pathProblem(e);
    if (problem) return no(e, 'fifo', problem);
    // A FIFO with several hard links: one path (the first seen) opens the same pipe.
    return { kind: 'fifo', pipeKey: inodeKey(e), describe: (id, p) => ({ id, kind: 'fifo', flags: e.flags, pipe: p!.id, path: p!.path ?? e.link }) };
  },
  fields: ['pipe', 'path'],
  parse(obj, where, id, flags) {
    // open() adds O_LARGEFILE on x86_64, so a description opened by path always has it.
    flags = (flags | O_LARGEFILE) >>> 0;
    const pipe = integer(get(obj, 'pipe'), `${where}.pipe`, 0, MAX_ID);
    return { id, kind: 'fifo', flags, pipe, path: parsePath(get(obj, 'path'), `${where}.path`) };
  },
  creation(d) {
    // fifo_open() refuses O_DIRECT and open() gives O_ASYNC without the fasync list: both by
    // F_SETFL later. A one-way end is opened O_NONBLOCK so it never waits for a partner.
    let callFlags = byPathFlags(d.flags) & ~(O_DIRECT | O_ASYNC);
    if ((d.flags & O_ACCMODE) !== O_RDWR) callFlags |= O_NONBLOCK;
    return { cls: CLASS_RENDEZVOUS, seek: false, callFlags: callFlags >>> 0, after: afterOpen(callFlags) };
  },
  opens: () => ({ type: 'FIFO' }),
  node: (d) => ({ path: d.path, type: 'fifo' }),
  simCheck: () => null,
  detail: (d) => printable(d.path),
  diff: (a, b) => (a.path !== b.path ? [`path ${quoted(a.path)} in A, ${quoted(b.path)} in B`] : []),
};
