// A regular file open after its last name was removed (a temp file, a rotated log): link
// `/path (deleted)`, link count 0. There is no path to reopen, so its contents go in the image
// (sparse-aware, through /proc/PID/fd/N: the same inode, a description of cr's own; at most
// --max-deleted-size). Restored as an unlinked file on the file system of its old directory:
// open(DIR, O_TMPFILE) as the image's author, fchmod, ftruncate, pwrite64 of the data, then the
// planner's lseek and F_SETFL. The description made by O_TMPFILE keeps O_TMPFILE in its flags
// (F_GETFL shows it, F_SETFL cannot clear it) and needs write access, so the program's description
// is opened again with the image's access mode, at the same number and with no second one: the
// file is given a temporary name (linkat of /proc/self/fd/N, which never replaces a name), its
// O_TMPFILE fd closed, the name opened (the lowest free number: the one just closed, as the
// planner predicted for the first open) and unlinked at once, all in one batch.
import { dirname } from 'node:path';
import { CLASS_SINGLE } from '../abi.js';
import { badInput } from '../errors.js';
import { O_ACCMODE, O_CLOEXEC, O_DSYNC, O_LARGEFILE, O_RDWR, O_SYNC } from '../model/fdtable.js';
import { get, integer, parsePath } from '../model/json.js';
import { printable } from '../printable.js';
import { randomHex } from '../random-name.js';
import { carried, chunksOf, parseExtents, readContents, sameRuns, writeExtents } from './contents.js';
import { no, oddFlags, quoted, RESTORABLE_FLAGS } from './common.js';
import type { KindModule } from './kind.js';

const SUFFIX = ' (deleted)';
/** O_TMPFILE (__O_TMPFILE | O_DIRECTORY) */
const O_TMPFILE = 0o20200000;
/** What open(O_TMPFILE) takes of the image's flags: the sync ones, which F_SETFL cannot set. */
const OPEN_KEEPS = O_DSYNC | O_SYNC;
const AT_FDCWD = -100n;
const AT_SYMLINK_FOLLOW = 0x400n;


export const deleted: KindModule<'deleted'> = {
  kind: 'deleted',
  recognise(e) {
    if (!e.stat.isFile() || e.stat.nlink !== 0 || (e.flags & 0o10000000) !== 0 || !e.link.endsWith(SUFFIX) || !e.link.startsWith('/')) return null;
    const odd = oddFlags(e, RESTORABLE_FLAGS, 'deleted file');
    if (odd) return odd;
    if (!Number.isSafeInteger(e.pos)) return no(e, 'deleted file', `${printable(e.link)}: offset ${e.posText} is beyond 2^53`);
    const path = e.link.slice(0, -SUFFIX.length);
    return {
      kind: 'deleted',
      describe: (id) => ({ id, kind: 'deleted', flags: e.flags, path, size: e.stat.size, offset: e.pos, mode: e.stat.mode & 0o7777, extents: [] }),
      resolve(d, { pid, fds, maxContents }) {
        if (d.kind !== 'deleted') return null;
        const others = fds.filter((f) => f.proc.ino === e.ino && f.proc.stat.dev === e.stat.dev && f.desc !== d.id);
        if (others.length > 0) return no(e, 'deleted file', `${printable(e.link)}: also open as another description at fd ${others[0]!.proc.fd}, which cr does not make yet (one deleted file, one description)`);
        const got = readContents(`/proc/${pid}/fd/${e.fd}`, d.size, maxContents);
        if (!Array.isArray(got)) return no(e, 'deleted file', `${printable(e.link)}: ${got.tooBig} bytes of data, above --max-deleted-size ${maxContents}`);
        d.extents = got;
        return null;
      },
    };
  },
  fields: ['path', 'size', 'offset', 'mode', 'extents'],
  binary: ['extents[].data'],
  parse(obj, where, id, flags) {
    flags = (flags | O_LARGEFILE) >>> 0;
    if ((flags & ~RESTORABLE_FLAGS) !== 0) badInput(`${where}.flags: a deleted file's flags are those of a file opened by path`);
    const path = parsePath(get(obj, 'path'), `${where}.path`);
    if (path === '/') badInput(`${where}.path: / has no directory to make the file in`);
    const size = integer(get(obj, 'size'), `${where}.size`, 0, Number.MAX_SAFE_INTEGER);
    const offset = integer(get(obj, 'offset'), `${where}.offset`, 0, Number.MAX_SAFE_INTEGER);
    const mode = integer(get(obj, 'mode'), `${where}.mode`, 0, 0o7777);
    return { id, kind: 'deleted', flags, path, size, offset, mode, extents: parseExtents(obj, where, size) };
  },
  creation: (d) => ({ cls: CLASS_SINGLE, seek: d.offset !== 0, callFlags: d.flags & OPEN_KEEPS, after: (d.flags & (O_ACCMODE | OPEN_KEEPS)) | O_LARGEFILE }),
  create(d, cloexec, fd, q) {
    const dir = dirname(d.path);
    const open = (O_RDWR | O_TMPFILE | O_CLOEXEC) >>> 0;
    q.call('openat', [AT_FDCWD, q.put(Buffer.from(`${dir}\0`)), BigInt(open), BigInt(d.mode & 0o777)], BigInt(fd), `openat(${quoted(dir)}, O_TMPFILE)`);
    // The mode open() gave is masked by the umask: the image's, exactly.
    q.call('fchmod', [BigInt(fd), BigInt(d.mode)], 0n, `fchmod(${fd}, 0${d.mode.toString(8)})`);
    if (d.size > 0) q.call('ftruncate', [BigInt(fd), BigInt(d.size)], 0n, `ftruncate(${fd}, ${d.size})`);
    writeExtents(fd, d.extents, q);
    // The program's description, at the same number, with the image's access mode.
    const name = `${dir === '/' ? '' : dir}/.cr-restore-${randomHex(8)}`;
    const tmp = q.put(Buffer.from(`${name}\0`));
    q.call('linkat', [AT_FDCWD, q.put(Buffer.from(`/proc/self/fd/${fd}\0`)), AT_FDCWD, tmp, AT_SYMLINK_FOLLOW], 0n, `linkat("/proc/self/fd/${fd}", ${quoted(name)})`);
    q.call('close', [BigInt(fd)], 0n, `close(${fd})`);
    const again = (d.flags & (O_ACCMODE | OPEN_KEEPS)) | (cloexec ? O_CLOEXEC : 0);
    q.call('openat', [AT_FDCWD, tmp, BigInt(again), 0n], BigInt(fd), `openat(${quoted(name)}, ${again})`);
    q.call('unlinkat', [AT_FDCWD, tmp, 0n], 0n, `unlinkat(${quoted(name)})`);
  },
  createText: (d) => `openat(${quoted(dirname(d.path))}, O_TMPFILE) + ${d.size} bytes (${carried(d.extents)} of data), opened again by a temporary name`,
  simCreate(proc, d, cloexec) {
    const fd = proc.tmpfile(dirname(d.path), O_RDWR, true);
    proc.fchmod(fd, d.mode);
    if (d.size > 0) proc.ftruncate(fd, d.size);
    for (const chunk of chunksOf(d.extents)) proc.pwrite(fd, chunk.bytes, chunk.offset);
    return proc.reopenAfterClose(fd, d.flags & (O_ACCMODE | OPEN_KEEPS), cloexec);
  },
  simCheck(d, sim) {
    const m = sim.memfd;
    if (m === null) return 'is no file cr made';
    const got = `in ${m.name}, size ${m.size}, mode 0${m.mode.toString(8)}, offset ${sim.offset}`;
    const want = `in ${dirname(d.path)}, size ${d.size}, mode 0${d.mode.toString(8)}, offset ${d.offset}`;
    if (got !== want) return `has ${got}, the image says ${want}`;
    return sameRuns(m.writes, chunksOf(d.extents)) ? null : 'holds other bytes than the image';
  },
  detail: (d) => `${printable(d.path)} (deleted), ${d.size} B (${carried(d.extents)} B of data) @ ${d.offset}, mode 0${d.mode.toString(8)}`,
  diff(a, b) {
    const out: string[] = [];
    if (a.path !== b.path) out.push(`path ${quoted(a.path)} in A, ${quoted(b.path)} in B`);
    if (a.size !== b.size) out.push(`size ${a.size} in A, ${b.size} in B`);
    if (a.offset !== b.offset) out.push(`offset ${a.offset} in A, ${b.offset} in B`);
    if (a.mode !== b.mode) out.push(`mode 0${a.mode.toString(8)} in A, 0${b.mode.toString(8)} in B`);
    if (!sameRuns(chunksOf(a.extents), chunksOf(b.extents))) out.push('contents differ');
    return out;
  },
};
