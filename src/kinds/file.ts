// A regular file opened by a path that still names it, with its position. Opened by that path at
// restore (CLASS_PATH, as the image's author), then lseek'd.
import { CLASS_PATH } from '../abi.js';
import { O_LARGEFILE } from '../model/fdtable.js';
import { get, integer, parsePath } from '../model/json.js';
import { afterOpen, byPathFlags, no, oddFlags, pathProblem, quoted, RESTORABLE_FLAGS } from './common.js';
import type { KindModule } from './kind.js';
import { printable } from '../printable.js';

export const file: KindModule<'file'> = {
  kind: 'file',
  recognise(e) {
    if (!e.stat.isFile() || (e.flags & 0o10000000) !== 0) return null;
    const odd = oddFlags(e, RESTORABLE_FLAGS, 'file');
    if (odd) return odd;
    if (e.stat.nlink === 0) {
      const kind = e.link.startsWith('/memfd:') ? 'memfd' : 'deleted file';
      return no(e, kind, `${printable(e.link)}: deleted files are not supported yet (there is no path to reopen)`);
    }
    if (!Number.isSafeInteger(e.pos)) return no(e, 'file', `${printable(e.link)}: offset ${e.posText} is beyond 2^53`);
    const problem = pathProblem(e);
    if (problem) return no(e, 'file', problem);
    return { kind: 'file', describe: (id) => ({ id, kind: 'file', flags: e.flags, path: e.link, offset: e.pos }) };
  },
  fields: ['path', 'offset'],
  parse(obj, where, id, flags) {
    // open() adds O_LARGEFILE on x86_64, so a description opened by path always has it.
    flags = (flags | O_LARGEFILE) >>> 0;
    const path = parsePath(get(obj, 'path'), `${where}.path`);
    return { id, kind: 'file', flags, path, offset: integer(get(obj, 'offset'), `${where}.offset`, 0, Number.MAX_SAFE_INTEGER) };
  },
  creation(d) {
    const callFlags = byPathFlags(d.flags);
    return { cls: CLASS_PATH, seek: d.offset !== 0, callFlags, after: afterOpen(callFlags) };
  },
  opens: () => ({ type: 'regular file' }),
  node: (d) => ({ path: d.path, type: 'file' }),
  simCheck: (d, sim) => (sim.offset !== BigInt(d.offset) ? `is at offset ${sim.offset}, the image says ${d.offset}` : null),
  detail: (d) => `${printable(d.path)} @ ${d.offset}`,
  diff(a, b) {
    const out: string[] = [];
    if (a.path !== b.path) out.push(`path ${quoted(a.path)} in A, ${quoted(b.path)} in B`);
    if (a.offset !== b.offset) out.push(`offset ${a.offset} in A, ${b.offset} in B`);
    return out;
  },
};
