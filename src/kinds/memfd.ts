// A memfd: an anonymous file in memory (memfd_create). Recognised by its link
// `/memfd:NAME (deleted)` on a regular file with no link. Its name, size, contents (read
// sparse-aware through /proc/PID/fd/N, the same inode, up to --max-deleted-size), seals
// (F_GET_SEALS), permission bits (the exec bit is MFD_EXEC's or MFD_NOEXEC_SEAL's) and the
// description's position and flags. Made again by memfd_create, fchmod, ftruncate, pwrite64 of
// its data, F_ADD_SEALS last (a write seal would stop the data), and lseek.
// One description per memfd: a memfd reopened through /proc (a second description of the same
// file) and a hugetlb memfd are refused at dump. A memfd the process also maps shared is mapped
// again from its fd by a restart, its seals added after the mappings (src/restart/unnamed-files.ts;
// a private mapping is carried as anonymous memory, docs/restart.md).
import { closeSync, constants as fs, openSync } from 'node:fs';
import { getSeals } from '../../bridge/seek.js';
import { CLASS_SINGLE } from '../abi.js';
import { badInput } from '../errors.js';
import { O_ACCMODE, O_APPEND, O_LARGEFILE, O_NOATIME, O_NONBLOCK, O_RDWR, type MemfdDesc } from '../model/fdtable.js';
import { get, integer, show } from '../model/json.js';
import { printable } from '../printable.js';
import { carried, chunksOf, parseExtents, readContents, sameRuns, writeExtents } from './contents.js';
import { no, oddFlags } from './common.js';
import type { KindModule } from './kind.js';

const MEMFD_FLAGS = O_RDWR | O_LARGEFILE | O_NONBLOCK | O_APPEND | O_NOATIME;
const MFD_CLOEXEC = 1;
const MFD_ALLOW_SEALING = 2;
const MFD_NOEXEC_SEAL = 8;
const MFD_EXEC = 0x10;
/** F_SEAL_SEAL, SHRINK, GROW, WRITE, FUTURE_WRITE, EXEC */
const SEALS = 0x3f;
const F_SEAL_EXEC = 0x20;
const F_ADD_SEALS = 1033n;
/** memfd_create's name limit (MFD_NAME_MAX_LEN), bytes. */
const MAX_NAME = 249;
const PREFIX = '/memfd:';
const SUFFIX = ' (deleted)';

const SEAL_NAMES: Array<[number, string]> = [[1, 'seal'], [2, 'shrink'], [4, 'grow'], [8, 'write'], [0x10, 'future-write'], [0x20, 'exec']];
const sealNames = (seals: number): string => SEAL_NAMES.filter(([b]) => seals & b).map(([, n]) => n).join(',') || 'none';

/**
 * The memfd as a restart that maps it shared makes it first: without its seals, but the exec seal
 * MFD_NOEXEC_SEAL gives (src/restart/unnamed-files.ts adds the rest once it is mapped).
 */
export const unsealed = (d: MemfdDesc): MemfdDesc => ({ ...d, seals: d.seals & F_SEAL_EXEC });

/** How memfd_create makes it: MFD_EXEC or MFD_NOEXEC_SEAL as its exec bit and seals say; the seals that leaves. */
export function createFlags(d: { mode: number; seals: number }, cloexec: boolean): { flags: number; seals: number; mode: number } {
  const noexecSeal = (d.mode & 0o111) === 0 && (d.seals & F_SEAL_EXEC) !== 0;
  return {
    flags: MFD_ALLOW_SEALING | (noexecSeal ? MFD_NOEXEC_SEAL : MFD_EXEC) | (cloexec ? MFD_CLOEXEC : 0),
    seals: noexecSeal ? F_SEAL_EXEC : 0,
    mode: noexecSeal ? 0o666 : 0o777,
  };
}

export const memfd: KindModule<'memfd'> = {
  kind: 'memfd',
  recognise(e) {
    if (!e.link.startsWith(PREFIX) || !e.link.endsWith(SUFFIX) || !e.stat.isFile() || e.stat.nlink !== 0) return null;
    const name = e.link.slice(PREFIX.length, -SUFFIX.length);
    if ((e.flags & O_ACCMODE) !== O_RDWR) return no(e, 'memfd', `${printable(e.link)}: opened ${(e.flags & O_ACCMODE) === 0 ? 'read-only' : 'write-only'}, a second description of it (reopened through /proc), which cr does not make yet`);
    const odd = oddFlags(e, MEMFD_FLAGS, 'memfd');
    if (odd) return odd;
    if (e.stat.blksize > 4096) return no(e, 'memfd', `${printable(e.link)}: a hugetlb memfd (pages of ${e.stat.blksize} bytes), which cr does not carry`);
    if (Buffer.byteLength(name) > MAX_NAME) return no(e, 'memfd', `${printable(e.link)}: a name longer than memfd_create takes`);
    return {
      kind: 'memfd',
      describe: (id) => ({ id, kind: 'memfd', flags: e.flags, name, size: e.stat.size, offset: e.pos, mode: e.stat.mode & 0o7777, seals: 0, extents: [] }),
      resolve(d, { pid, fds, maxContents }) {
        if (d.kind !== 'memfd') return null;
        const others = fds.filter((f) => f.proc.ino === e.ino && f.proc.stat.dev === e.stat.dev && f.desc !== d.id);
        if (others.length > 0) return no(e, 'memfd', `${printable(e.link)}: also open as another description at fd ${others[0]!.proc.fd} (reopened through /proc), which cr does not make yet`);
        const path = `/proc/${pid}/fd/${e.fd}`;
        const fd = openSync(path, fs.O_RDONLY | 0o2000000);
        try {
          d.seals = getSeals(fd);
        } finally {
          closeSync(fd);
        }
        const got = readContents(path, d.size, maxContents);
        if (!Array.isArray(got)) return no(e, 'memfd', `${printable(e.link)}: ${got.tooBig} bytes of data, above --max-deleted-size ${maxContents}`);
        d.extents = got;
        return null;
      },
    };
  },
  fields: ['name', 'size', 'offset', 'mode', 'seals', 'extents'],
  binary: ['extents[].data'],
  parse(obj, where, id, flags) {
    if ((flags & O_ACCMODE) !== O_RDWR || (flags & ~MEMFD_FLAGS) !== 0) badInput(`${where}.flags: a memfd is O_RDWR with at most O_LARGEFILE, O_NONBLOCK, O_APPEND and O_NOATIME`);
    const name = get(obj, 'name');
    if (typeof name !== 'string' || Buffer.byteLength(name) > MAX_NAME || name.includes('\0')) badInput(`${where}.name: expected a name of at most ${MAX_NAME} bytes without NUL, got ${show(name)}`);
    const size = integer(get(obj, 'size'), `${where}.size`, 0, Number.MAX_SAFE_INTEGER);
    const offset = integer(get(obj, 'offset'), `${where}.offset`, 0, Number.MAX_SAFE_INTEGER);
    const mode = integer(get(obj, 'mode'), `${where}.mode`, 0, 0o7777);
    const seals = integer(get(obj, 'seals'), `${where}.seals`, 0, SEALS);
    return { id, kind: 'memfd', flags, name, size, offset, mode, seals, extents: parseExtents(obj, where, size) };
  },
  creation: () => ({ cls: CLASS_SINGLE, seek: true, callFlags: 0, after: O_RDWR | O_LARGEFILE }),
  create(d, cloexec, fd, q) {
    const c = createFlags(d, cloexec);
    q.call('memfd_create', [q.put(Buffer.from(`${d.name}\0`)), BigInt(c.flags)], BigInt(fd), `memfd_create("${printable(d.name, '"')}", ${c.flags})`);
    if (d.mode !== c.mode) q.call('fchmod', [BigInt(fd), BigInt(d.mode)], 0n, `fchmod(${fd}, 0${d.mode.toString(8)})`);
    if (d.size > 0) q.call('ftruncate', [BigInt(fd), BigInt(d.size)], 0n, `ftruncate(${fd}, ${d.size})`);
    writeExtents(fd, d.extents, q);
    if ((d.seals & ~c.seals) !== 0) q.call('fcntl', [BigInt(fd), F_ADD_SEALS, BigInt(d.seals)], 0n, `fcntl(${fd}, F_ADD_SEALS, ${sealNames(d.seals)})`);
  },
  createText: (d, cloexec) =>
    `memfd_create("${printable(d.name, '"')}", ${createFlags(d, cloexec).flags}) + ${d.size} bytes (${carried(d.extents)} of data)${d.seals ? `, seals ${sealNames(d.seals)}` : ''}`,
  simCreate(proc, d, cloexec) {
    const c = createFlags(d, cloexec);
    const fd = proc.memfdCreate(d.name, c.flags);
    if (d.mode !== c.mode) proc.fchmod(fd, d.mode);
    if (d.size > 0) proc.ftruncate(fd, d.size);
    for (const chunk of chunksOf(d.extents)) proc.pwrite(fd, chunk.bytes, chunk.offset);
    if ((d.seals & ~c.seals) !== 0) proc.addSeals(fd, d.seals);
    return fd;
  },
  simCheck(d, sim) {
    const m = sim.memfd;
    if (m === null) return 'is no memfd';
    const got = `name ${JSON.stringify(m.name)}, size ${m.size}, mode 0${m.mode.toString(8)}, seals ${sealNames(m.seals)}, offset ${sim.offset}`;
    const want = `name ${JSON.stringify(d.name)}, size ${d.size}, mode 0${d.mode.toString(8)}, seals ${sealNames(d.seals)}, offset ${d.offset}`;
    if (got !== want) return `has ${got}, the image says ${want}`;
    return sameRuns(m.writes, chunksOf(d.extents)) ? null : 'holds other bytes than the image';
  },
  detail: (d) => `memfd "${printable(d.name, '"')}", ${d.size} B (${carried(d.extents)} B of data) @ ${d.offset}${d.seals ? `, seals ${sealNames(d.seals)}` : ''}, mode 0${d.mode.toString(8)}`,
  diff(a, b) {
    const out: string[] = [];
    if (a.name !== b.name) out.push(`name "${printable(a.name, '"')}" in A, "${printable(b.name, '"')}" in B`);
    if (a.size !== b.size) out.push(`size ${a.size} in A, ${b.size} in B`);
    if (a.offset !== b.offset) out.push(`position ${a.offset} in A, ${b.offset} in B`);
    if (a.mode !== b.mode) out.push(`mode 0${a.mode.toString(8)} in A, 0${b.mode.toString(8)} in B`);
    if (a.seals !== b.seals) out.push(`seals ${sealNames(a.seals)} in A, ${sealNames(b.seals)} in B`);
    if (!sameRuns(chunksOf(a.extents), chunksOf(b.extents))) out.push('contents differ');
    return out;
  },
};
