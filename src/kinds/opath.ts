// An O_PATH fd: a place in the file system that opens nothing (no ->open, no position, F_GETFL is
// O_PATH plus O_DIRECTORY and O_NOFOLLOW as given). Recognised by O_PATH in fdinfo's flags,
// whatever it names; opened again by its path with the same flags (CLASS_PATH), and judged after
// the open: what it names must be of the type it named at the dump.
import { CLASS_PATH } from '../abi.js';
import { badInput } from '../errors.js';
import { O_DIRECTORY, O_NOFOLLOW, O_PATH, type PathType } from '../model/fdtable.js';
import { get, parsePath } from '../model/json.js';
import { no, pathProblem, quoted } from './common.js';
import type { KindModule, NodeType } from './kind.js';
import { printable } from '../printable.js';

const OPATH_FLAGS = O_PATH | O_DIRECTORY | O_NOFOLLOW;

/** Types an O_PATH fd can name and cr can reopen, and the simulator's node for each. */
const TYPES: Record<PathType, NodeType> = {
  'regular file': 'file',
  directory: 'dir',
  'character device': 'chr',
  'block device': 'blk',
  FIFO: 'fifo',
  symlink: 'symlink',
};

export const opath: KindModule<'opath'> = {
  kind: 'opath',
  recognise(e) {
    if ((e.flags & O_PATH) === 0) return null;
    const st = e.stat;
    const type: PathType | null = st.isFile() ? 'regular file' : st.isDirectory() ? 'directory' : st.isCharacterDevice() ? 'character device'
      : st.isBlockDevice() ? 'block device' : st.isFIFO() ? 'FIFO' : null;
    // A symlink itself (O_PATH|O_NOFOLLOW) is not followed by the stat that checks its path: not yet.
    if (type === null) return no(e, 'O_PATH fd', `${printable(e.link)}: an O_PATH fd on a ${st.isSocket() ? 'socket' : 'symlink or unknown file'} is not supported`);
    if ((e.flags & ~OPATH_FLAGS) !== 0) return no(e, 'O_PATH fd', `${printable(e.link)}: flags 0o${((e.flags & ~OPATH_FLAGS) >>> 0).toString(8)} cannot be recreated`);
    if (st.nlink === 0 && type !== 'directory') return no(e, 'O_PATH fd', `${printable(e.link)}: what it names was deleted`);
    const problem = pathProblem(e);
    if (problem) return no(e, 'O_PATH fd', problem);
    return { kind: 'opath', describe: (id) => ({ id, kind: 'opath', flags: e.flags, path: e.link, type }) };
  },
  flagBits: O_PATH | O_DIRECTORY,
  fields: ['path', 'type'],
  parse(obj, where, id, flags) {
    if ((flags & O_PATH) === 0 || (flags & ~OPATH_FLAGS) !== 0) badInput(`${where}.flags: an O_PATH fd has O_PATH, and at most O_DIRECTORY and O_NOFOLLOW`);
    const type = get(obj, 'type');
    if (typeof type !== 'string' || !Object.hasOwn(TYPES, type)) badInput(`${where}.type: expected one of ${Object.keys(TYPES).join(', ')}`);
    if ((flags & O_DIRECTORY) !== 0 && type !== 'directory') badInput(`${where}.type: O_DIRECTORY names a directory, not a ${type}`);
    return { id, kind: 'opath', flags, path: parsePath(get(obj, 'path'), `${where}.path`), type: type as PathType };
  },
  // open() with O_PATH keeps only O_PATH, O_DIRECTORY and O_NOFOLLOW: F_GETFL is what it was given.
  creation: (d) => ({ cls: CLASS_PATH, seek: false, callFlags: d.flags, after: d.flags }),
  opens: (d) => ({ type: d.type }),
  node: (d) => ({ path: d.path, type: TYPES[d.type] }),
  simCheck: () => null,
  detail: (d) => `${printable(d.path)} (${d.type})`,
  diff(a, b) {
    const out: string[] = [];
    if (a.path !== b.path) out.push(`path ${quoted(a.path)} in A, ${quoted(b.path)} in B`);
    if (a.type !== b.type) out.push(`a ${a.type} in A, a ${b.type} in B`);
    return out;
  },
};
