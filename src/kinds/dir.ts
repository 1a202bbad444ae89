// A directory open for reading (opendir, open(O_DIRECTORY)), with its getdents position: a cookie
// of the file system (ext4: a 63-bit hash; tmpfs: an index), kept as decimal text. Opened by its
// path at restore (CLASS_PATH, as the image's author, judged a directory after the open), then
// lseek'd to the cookie, which the same file system takes back.
import { CLASS_PATH } from '../abi.js';
import { badInput } from '../errors.js';
import { O_ACCMODE, O_APPEND, O_DIRECTORY, O_LARGEFILE, O_NOATIME, O_NOFOLLOW, O_NONBLOCK, O_RDONLY } from '../model/fdtable.js';
import { get, parsePath } from '../model/json.js';
import { afterOpen, byPathFlags, no, oddFlags, parseCookie, pathProblem, quoted } from './common.js';
import type { KindModule } from './kind.js';
import { printable } from '../printable.js';

/** What F_GETFL can show on a directory cr restores: read-only, O_DIRECTORY or not. */
export const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_LARGEFILE | O_NONBLOCK | O_NOATIME | O_NOFOLLOW | O_APPEND;

export const dir: KindModule<'dir'> = {
  kind: 'dir',
  recognise(e) {
    if (!e.stat.isDirectory() || (e.flags & 0o10000000) !== 0) return null;
    const odd = oddFlags(e, DIR_FLAGS, 'directory');
    if (odd) return odd;
    const problem = pathProblem(e);
    if (problem) return no(e, 'directory', problem);
    return { kind: 'dir', describe: (id) => ({ id, kind: 'dir', flags: e.flags, path: e.link, offset: e.posText }) };
  },
  flagBits: O_DIRECTORY,
  fields: ['path', 'offset'],
  parse(obj, where, id, flags) {
    // open() adds O_LARGEFILE on x86_64, so a description opened by path always has it.
    flags = (flags | O_LARGEFILE) >>> 0;
    if ((flags & O_ACCMODE) !== O_RDONLY || (flags & ~DIR_FLAGS) !== 0) badInput(`${where}.flags: a directory is O_RDONLY, with at most O_DIRECTORY, O_NONBLOCK, O_NOATIME, O_NOFOLLOW, O_APPEND`);
    return { id, kind: 'dir', flags, path: parsePath(get(obj, 'path'), `${where}.path`), offset: parseCookie(get(obj, 'offset'), `${where}.offset`) };
  },
  creation(d) {
    const callFlags = byPathFlags(d.flags);
    return { cls: CLASS_PATH, seek: d.offset !== '0', callFlags, after: afterOpen(callFlags) };
  },
  opens: () => ({ type: 'directory' }),
  node: (d) => ({ path: d.path, type: 'dir' }),
  simCheck: (d, sim) => (sim.offset !== BigInt(d.offset) ? `is at position ${sim.offset}, the image says ${d.offset}` : null),
  detail: (d) => `${printable(d.path)} @ ${d.offset}`,
  diff(a, b) {
    const out: string[] = [];
    if (a.path !== b.path) out.push(`path ${quoted(a.path)} in A, ${quoted(b.path)} in B`);
    if (a.offset !== b.offset) out.push(`position ${a.offset} in A, ${b.offset} in B`);
    return out;
  },
};
