// A character device opened by a path that still names it (/dev/null, a tty), with its device
// number and, when it keeps one, its position. Opened by that path at restore (CLASS_PATH); a path
// that then opens another device is refused.
import { CLASS_PATH } from '../abi.js';
import { devName, O_LARGEFILE } from '../model/fdtable.js';
import { get, integer, parsePath } from '../model/json.js';
import { afterOpen, byPathFlags, no, oddFlags, optionalOffset, pathProblem, quoted, RESTORABLE_FLAGS } from './common.js';
import type { KindModule } from './kind.js';
import { printable } from '../printable.js';

export const chr: KindModule<'chr'> = {
  kind: 'chr',
  recognise(e) {
    if (!e.stat.isCharacterDevice() || (e.flags & 0o10000000) !== 0) return null;
    const odd = oddFlags(e, RESTORABLE_FLAGS, 'chr');
    if (odd) return odd;
    const problem = pathProblem(e);
    if (problem) return no(e, 'chr', problem);
    return {
      kind: 'chr',
      describe: (id) => ({ id, kind: 'chr', flags: e.flags, path: e.link, ...(e.pos !== 0 ? { offset: e.pos } : {}), rdev: e.stat.rdev }),
    };
  },
  fields: ['path', 'offset', 'rdev'],
  parse(obj, where, id, flags) {
    // open() adds O_LARGEFILE on x86_64, so a description opened by path always has it.
    flags = (flags | O_LARGEFILE) >>> 0;
    const desc: ReturnType<KindModule<'chr'>['parse']> = { id, kind: 'chr', flags, path: parsePath(get(obj, 'path'), `${where}.path`) };
    const offset = optionalOffset(obj, where);
    if (offset !== undefined) desc.offset = offset;
    const rdev = get(obj, 'rdev');
    if (rdev !== undefined) desc.rdev = integer(rdev, `${where}.rdev`, 0, Number.MAX_SAFE_INTEGER);
    return desc;
  },
  creation(d) {
    const callFlags = byPathFlags(d.flags);
    return { cls: CLASS_PATH, seek: (d.offset ?? 0) !== 0, callFlags, after: afterOpen(callFlags) };
  },
  opens: (d) => ({ type: 'character device', rdev: d.rdev }),
  node: (d) => ({ path: d.path, type: 'chr' }),
  simCheck: (d, sim) => (d.offset !== undefined && sim.offset !== BigInt(d.offset) ? `is at offset ${sim.offset}, the image says ${d.offset}` : null),
  detail: (d) => (d.offset === undefined ? printable(d.path) : `${printable(d.path)} @ ${d.offset}`),
  diff(a, b) {
    const out: string[] = [];
    if (a.path !== b.path) out.push(`path ${quoted(a.path)} in A, ${quoted(b.path)} in B`);
    if (a.offset !== b.offset) out.push(`offset ${a.offset ?? 'none'} in A, ${b.offset ?? 'none'} in B`);
    // An image written before cr recorded device numbers has none: not a difference.
    if (a.rdev !== undefined && b.rdev !== undefined && a.rdev !== b.rdev) out.push(`device ${devName(a.rdev)} in A, ${devName(b.rdev)} in B`);
    return out;
  },
};
