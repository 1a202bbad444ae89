// A frozen process's mappings from /proc/PID/smaps: address, protection, backing and VmFlags,
// classified into what restart can recreate (anonymous memory, shared anonymous memory, named or
// not, no process outside the dumped tree maps, private or shared file mappings that still name their file, private
// mappings of files that do not (saved whole), aio rings (aio.ts judges them), the vdso and its
// data pages). Anything else is refused with a one-line reason.
import { closeSync, constants as fs, fstatSync, openSync, readdirSync, statSync, type Stats } from 'node:fs';
import { getSeals } from '../../bridge/seek.js';
import { readContents } from '../kinds/contents.js';
import { O_LARGEFILE, O_RDWR, type DeletedDesc, type MemfdDesc } from '../model/fdtable.js';
import { CrError } from '../errors.js';
import type { Mapping, MappingKind, SysvSegment } from '../image/process-head.js';
import { printable } from '../printable.js';
import { aioRefusals, isAioRing } from './aio.js';
import { vmflagRefusal } from './inventory.js';
import { parseSmaps, type RawMapping } from '../proc/smaps.js';
import { readProc } from '../proc/read.js';

const SPECIAL: Record<string, MappingKind> = { '[vdso]': 'vdso', '[vvar]': 'vvar', '[vvar_vclock]': 'vvar_vclock' };
/** VmFlags only the kernel's special mappings ([vdso], [vvar]) have among those cr carries. */
const KERNEL_ONLY = ['de', 'pf', 'io'];
const PROT_READ = 1;
const PROT_WRITE = 2;
const PROT_EXEC = 4;

const protOf = (perms: string): number =>
  (perms[0] === 'r' ? PROT_READ : 0) | (perms[1] === 'w' ? PROT_WRITE : 0) | (perms[2] === 'x' ? PROT_EXEC : 0);

const range = (r: RawMapping): string => `${r.start.toString(16)}-${r.end.toString(16)}`;

const SYSV_NAME = /^\/SYSV[0-9a-f]{8} \(deleted\)$/;
/** How /proc names a mapping of shared anonymous memory given a name with PR_SET_VMA_ANON_NAME. */
const SHMEM_NAMED = '[anon_shmem:';
/** A shared mapping's name that says shared anonymous memory: unnamed (/dev/zero (deleted)) or named. */
const isSharedAnon = (name: string): boolean => name === '/dev/zero (deleted)' || (name.startsWith(SHMEM_NAMED) && name.endsWith(']'));
/** SHM_DEST in a segment's mode: marked for removal (IPC_RMID) while still attached. */
const SHM_DEST = 0o1000;

/**
 * Segment `id` as /proc/sysvipc/shm lists it (key, perms, size, owner) and how many mappings
 * of it there are in all processes (nattch). Read at every mapping that needs it: a dump meets
 * few segments.
 */
function sysvListing(id: number): { segment: SysvSegment; attached: number } {
  const table = readProc('/proc/sysvipc/shm').split('\n');
  const head = table[0]!.trim().split(/\s+/);
  for (const line of table.slice(1)) {
    const cols = line.trim().split(/\s+/);
    const at = (name: string): number => Number(cols[head.indexOf(name)]);
    if (cols.length !== head.length || at('shmid') !== id) continue;
    const perms = parseInt(cols[head.indexOf('perms')]!, 8);
    const segment = { key: at('key'), id, size: at('size'), mode: perms & 0o777, uid: at('uid'), gid: at('gid'), removed: (perms & SHM_DEST) !== 0 };
    return { segment, attached: at('nattch') };
  }
  throw new CrError(`System V shared memory segment ${id}: /proc/sysvipc/shm does not list it (another IPC namespace?)`);
}

/** What restart recreates for one mapping, and whether the image must carry all of its pages. */
export interface Classified {
  mapping: Mapping;
  /**
   * Every page saved, not only those anonymous or copied on write: a private mapping of a file
   * that cannot be mapped again (deleted, replaced, a memfd, out of cr's reach) comes back as
   * anonymous memory holding what the process saw.
   */
  whole: boolean;
  /** a shared-unnamed mapping's file, `dev:ino`: the description of it is found among the process's fds once they are gathered */
  inode?: { key: string; name: string };
}

/**
 * Which pages of a mapping the image carries: none (the file has them, the kernel makes them, or
 * the mapping has nothing in memory or swap: a reservation), those the process changed, or all.
 */
export type PagePolicy = 'none' | 'changed' | 'all' | 'resident';

/**
 * How restart recreates a mapping, or null for one it leaves alone ([vsyscall]); throws for the
 * rest. `statOf`: stat(2) of a mapped file's path (readMaps asks once per path).
 */
export function classify(r: RawMapping, statOf: (path: string) => Stats = statSync): Classified | null {
  const refuse = (why: string): never => {
    throw new CrError(`mapping ${range(r)} ${printable(r.name) || '(anonymous)'}: ${why}`);
  };
  const shared = r.perms[3] === 's';
  // Guard regions are not in smaps: guards.ts finds them.
  const base = { start: r.start, end: r.end, prot: protOf(r.perms), name: '', file: null, shm: null, unnamed: null, vmflags: r.vmflags, guards: [] };
  const keep = (mapping: Mapping): Classified => ({ mapping, whole: false });
  if (r.name === '[vsyscall]') return null;
  const special = SPECIAL[r.name];
  if (special) return keep({ ...base, kind: special, name: r.name });
  const aio = isAioRing(r);
  // Every flag is carried, follows from the mapping, or stands in the way (inventory.ts); the
  // kernel's own flags of the vdso pages only there, and of an aio ring its VM_DONTEXPAND.
  for (const code of r.vmflags) {
    const why = vmflagRefusal(code) ?? (KERNEL_ONLY.includes(code) && !(aio && code === 'de') ? `VmFlags "${code}" (the kernel's own mappings have it) is not supported` : null);
    if (why) refuse(why);
  }
  // An aio context's ring: made again by io_setup and moved here (src/restart/aio.ts); its
  // pages are the kernel's (aio.ts refuses a ring holding events).
  if (aio) return keep({ ...base, kind: 'aio', name: r.name });
  // Shared anonymous memory (MAP_SHARED|MAP_ANONYMOUS, or a MAP_SHARED mapping of /dev/zero)
  // lives in a shmem inode the kernel names /dev/zero (deleted); its inode tells which mappings
  // share it (numbered by readMappings). Named with PR_SET_VMA_ANON_NAME it is [anon_shmem:NAME]
  // (the name is the mapping's, not the object's: restart names each mapping again).
  if (shared && isSharedAnon(r.name)) return keep({ ...base, kind: 'shared-anon', name: r.name.startsWith(SHMEM_NAMED) ? r.name : '', shm: { object: r.ino, offset: r.offset, sysv: null } });
  // A System V segment attached with shmat: /SYSV<key> (deleted), its inode the segment's id.
  if (shared && SYSV_NAME.test(r.name)) return keep({ ...base, kind: 'shared-anon', shm: { object: r.ino, offset: r.offset, sysv: sysvListing(r.ino).segment } });
  if (shared && r.ino === 0) refuse('a shared mapping with no file behind it is not supported');
  if (r.ino === 0) {
    if (r.name === '' || r.name === '[stack]' || r.name === '[heap]' || r.name.startsWith('[anon:')) {
      return keep({ ...base, kind: 'anon', name: r.name });
    }
    return refuse(`${printable(r.name)} mappings are not supported`);
  }
  const gone = (why: string): Classified => {
    if (shared) refuse(`a shared mapping of a file that ${why} is not supported (there is no file to share it through)`);
    return { mapping: { ...base, kind: 'anon' }, whole: true };
  };
  if (!r.name.startsWith('/')) return gone('cr cannot name');
  // A memfd (/memfd:NAME (deleted)) or a deleted file mapped shared: mapped again from the
  // description of it the process holds (its contents in the fd table), found once the fds are
  // gathered (resolveUnnamed); the mapping names it, no page of it is saved.
  if (shared && r.name.endsWith(' (deleted)')) return { mapping: { ...base, kind: 'shared-unnamed', unnamed: { desc: -1, offset: r.offset } }, whole: false, inode: { key: `${r.dev}:${r.ino}`, name: r.name } };
  if (r.name.endsWith(' (deleted)')) return gone('was deleted');
  let st;
  try {
    st = statOf(r.name);
  } catch {
    return gone('cr cannot reach by path');
  }
  if (st.dev !== r.dev || st.ino !== r.ino) return gone('was replaced');
  if (!st.isFile()) refuse(`${printable(r.name)} is not a regular file`);
  const file = { path: r.name, offset: r.offset, dev: r.dev, ino: r.ino, size: st.size, mtimeMs: st.mtimeMs };
  return keep({ ...base, kind: shared ? 'shared-file' : 'file', file });
}

/**
 * The shared anonymous objects of pid that a process outside the dumped tree (`members`) maps too:
 * restarted, the tree would share nothing with it any more. Members sharing one (a parent and the
 * workers it forked) are carried. Only the processes cr may read the maps of are seen
 * (docs/state.md).
 */
function sharedElsewhere(pid: number, raw: readonly RawMapping[], members: ReadonlySet<number>): string[] {
  // Shared anonymous memory, and the memfds and deleted files mapped shared (shared-unnamed): a
  // restart makes each again, which no process outside the tree would share.
  const unnamed = (r: RawMapping): boolean => r.perms[3] === 's' && ((r.name.startsWith('/') && r.name.endsWith(' (deleted)') && !SYSV_NAME.test(r.name) && !isAioRing(r)) || isSharedAnon(r.name));
  const ours = new Map<string, RawMapping>();
  for (const r of raw) if (unnamed(r)) ours.set(`${r.dev}:${r.ino}`, r);
  if (ours.size === 0) return [];
  const found = new Map<string, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || members.has(Number(entry)) || Number(entry) === pid) continue;
    let maps: string;
    try {
      maps = readProc(`/proc/${entry}/maps`);
    } catch {
      continue; // gone, or not cr's to read
    }
    if (!maps.includes(' (deleted)') && !maps.includes(SHMEM_NAMED)) continue;
    for (const r of parseSmaps(maps)) {
      const key = `${r.dev}:${r.ino}`;
      if ((r.name.endsWith(' (deleted)') || isSharedAnon(r.name)) && ours.has(key)) found.set(key, [...new Set([...(found.get(key) ?? []), Number(entry)])]);
    }
  }
  return [...found].map(([key, pids]) => {
    const r = ours.get(key)!;
    const what = isSharedAnon(r.name) ? 'shared anonymous memory' : 'a memfd or deleted file mapped shared';
    return `mapping ${range(r)} ${printable(r.name)}: ${what} shared with ${pids.map((p) => `pid ${p}`).join(', ')}, which cr cannot carry over`;
  });
}

/** How many of `pid`'s mappings are of System V segment `id`. */
function sysvMappingsOf(pid: number, id: number): number {
  try {
    return parseSmaps(readProc(`/proc/${pid}/maps`)).filter((r) => r.ino === id && SYSV_NAME.test(r.name)).length;
  } catch {
    return 0; // gone, or not cr's to read
  }
}

/**
 * System V segments marked for removal that processes outside the dumped tree (`members`) map
 * too: restart makes a new segment (the old one cannot be attached by key, and goes with its last
 * mapping), which they would not share. One the tree's members share is made once for them all. A
 * segment still listed under its key, or private but not removed, is attached again by restart if
 * it is still there, shared as before (docs/state.md).
 */
function sysvSharedElsewhere(pid: number, raw: readonly RawMapping[], members: ReadonlySet<number>): string[] {
  const ours = new Set<number>();
  for (const r of raw) if (r.perms[3] === 's' && SYSV_NAME.test(r.name)) ours.add(r.ino);
  const reasons: string[] = [];
  for (const id of ours) {
    const { segment, attached } = sysvListing(id);
    // nattch counts mappings: the tree's own account for some of them.
    const inTree = [...new Set([pid, ...members])].reduce((n, p) => n + sysvMappingsOf(p, id), 0);
    if (!segment.removed || attached <= inTree) continue;
    const others: number[] = [];
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry) || Number(entry) === pid || members.has(Number(entry))) continue;
      if (sysvMappingsOf(Number(entry), id) > 0) others.push(Number(entry));
    }
    const who = others.length > 0 ? others.map((p) => `pid ${p}`).join(', ') : `${attached - inTree} mappings cr cannot see`;
    reasons.push(`System V shared memory segment ${id}: marked for removal and shared with ${who}, which cr cannot carry over`);
  }
  return reasons;
}

/**
 * A frozen process's mappings as /proc/PID/smaps shows them (read once: the kernel walks every
 * page table for it), each classified once: what restart makes of it, null for one it leaves
 * alone, or why it cannot. A file mapped several times (a library's segments) is stat'ed once.
 */
export interface Maps {
  raw: RawMapping[];
  classes: Array<Classified | null | CrError>;
}

/** What stat said of mapped files' paths, by path (an Error where it failed): fileStats. */
export type FileStats = Map<string, Stats | Error>;

/**
 * stat of every file pid maps, by path, from /proc/PID/maps: taken before a dump freezes it, so
 * that readMaps, while it is frozen, stats only files mapped since. The file system is no part of
 * what the freeze holds still: a file may be replaced under its path at any time, before or after.
 */
export function fileStats(pid: number): FileStats {
  const stats: FileStats = new Map();
  try {
    for (const r of parseSmaps(readProc(`/proc/${pid}/maps`, 'utf8'))) {
      if (!r.name.startsWith('/') || r.name.endsWith(' (deleted)') || stats.has(r.name)) continue;
      try {
        stats.set(r.name, statSync(r.name));
      } catch (err) {
        stats.set(r.name, err as Error);
      }
    }
  } catch {
    // no such process: the freeze says so
  }
  return stats;
}

export function readMaps(pid: number, known: FileStats = new Map()): Maps {
  const raw = parseSmaps(readProc(`/proc/${pid}/smaps`, 'utf8'));
  const stats: FileStats = new Map(known);
  const statOf = (path: string): Stats => {
    let st = stats.get(path);
    if (st === undefined) {
      try {
        st = statSync(path);
      } catch (err) {
        st = err as Error;
      }
      stats.set(path, st);
    }
    if (st instanceof Error) throw st;
    return st;
  };
  const classes = raw.map((r) => {
    try {
      return classify(r, statOf);
    } catch (err) {
      if (!(err instanceof CrError)) throw err;
      return err;
    }
  });
  return { raw, classes };
}

/**
 * Why restart cannot recreate each mapping of pid it cannot: every one, for a refusal that lists
 * them all. `members`: the tree dumped with it, whose sharing is carried.
 */
export function unsupportedMappings(pid: number, members: readonly number[] = [], maps: Maps = readMaps(pid)): string[] {
  const tree = new Set(members);
  const { raw } = maps;
  const refused = maps.classes.flatMap((c) => (c instanceof CrError ? [c.message] : []));
  return [...sharedElsewhere(pid, raw, tree), ...sysvSharedElsewhere(pid, raw, tree), ...aioRefusals(pid, raw), ...refused];
}

/**
 * The shared objects met so far in a dump, across the members of its tree: their numbers in the
 * image, and the ranges of each whose pages a mapping already saves (each page of an object is in
 * the image once, whoever maps it).
 */
export interface SharedObjectsSeen {
  numbers: Map<string, number>;
  saved: Map<number, Array<{ start: number; end: number }>>;
}

export const noObjectsSeen = (): SharedObjectsSeen => ({ numbers: new Map(), saved: new Map() });

/**
 * pid's mappings and which pages of each the image carries. `seen` numbers the shared objects
 * across a tree's members (the same object, one number), read in tree order.
 */
export function readMappings(pid: number, seen: SharedObjectsSeen = noObjectsSeen(), maps: Maps = readMaps(pid)): { mappings: Mapping[]; policies: PagePolicy[]; unnamed: Map<Mapping, { key: string; name: string }> } {
  const mappings: Mapping[] = [];
  const policies: PagePolicy[] = [];
  const unnamed = new Map<Mapping, { key: string; name: string }>();
  const objects = seen.numbers;
  for (const [i, r] of maps.raw.entries()) {
    const c = maps.classes[i]!;
    if (c instanceof CrError) throw c;
    if (!c) continue;
    const kind = c.mapping.kind;
    const shm = c.mapping.shm;
    if (shm) {
      // Objects numbered in the order met: the image keeps no inode numbers.
      // A segment's id and a shmem inode number are counted apart: one could equal the other.
      const key = shm.sysv ? `sysv:${shm.object}` : `shmem:${r.dev}:${shm.object}`;
      if (!objects.has(key)) objects.set(key, objects.size);
      shm.object = objects.get(key)!;
    }
    mappings.push(c.mapping);
    if (c.inode !== undefined) unnamed.set(c.mapping, c.inode);
    // Rss 0 and Swap 0: no page to look for (a 64 GiB PROT_NONE reservation costs nothing).
    const empty = r.rssKb === 0 && r.swapKb === 0;
    // A shared object may hold pages no mapping has in its page tables (dropped there with
    // MADV_DONTNEED, say): what is resident comes from mincore, and with any swapped out (smaps
    // counts the object's swap) every page is read.
    if (kind === 'shared-anon') policies.push(r.swapKb > 0 ? 'all' : 'resident');
    else policies.push(c.whole ? 'all' : (kind === 'anon' || kind === 'file') && !empty ? 'changed' : 'none');
  }
  return { mappings, policies, unnamed };
}

/** What resolveUnnamed needs beyond the process: fresh description ids, the contents limit, the unheld files earlier members map. */
export interface UnheldContext {
  nextId: () => number;
  maxContents: number;
  /** inode -> the pid of the member whose head holds it unheld */
  seen: Map<string, number>;
}

/**
 * Name the description each shared-unnamed mapping of process `pid` maps: one of `held` (the
 * memfds and deleted files among its fds, by fd: desc id) on the same inode, where restart maps it
 * again from; else a description of its own (returned, for the head's `unheld`), read through
 * /proc/PID/map_files (CAP_CHECKPOINT_RESTORE) as a file fd would be.
 */
export function resolveUnnamed(pid: number, unnamed: Map<Mapping, { key: string; name: string }>, held: Array<{ fd: number; desc: number }>, ctx: UnheldContext): Array<MemfdDesc | DeletedDesc> {
  if (unnamed.size === 0) return [];
  const byInode = new Map<string, number>();
  for (const h of held) {
    const st = statSync(`/proc/${pid}/fd/${h.fd}`);
    byInode.set(`${st.dev}:${st.ino}`, h.desc);
  }
  const unheld: Array<MemfdDesc | DeletedDesc> = [];
  // (withGuards copies each mapping but not its `unnamed` record: the head's mapping gets the desc)
  for (const [m, inode] of unnamed) {
    let desc = byInode.get(inode.key);
    if (desc === undefined) {
      const made = unheldFile(pid, m, inode, ctx);
      unheld.push(made);
      byInode.set(inode.key, (desc = made.id));
    }
    m.unnamed!.desc = desc;
  }
  // Their data goes in the head, which a reader takes up to 64 MiB of.
  const bytes = unheld.reduce((n, u) => n + u.extents.reduce((k, e) => k + e.data.length, 0), 0);
  if (bytes > UNHELD_MAX) throw new CrError(`process ${pid}: ${bytes} bytes of memfds and deleted files mapped shared with no fd of them left, more than cr carries (${UNHELD_MAX})`);
  return unheld;
}

/** Bytes of data the head of one process may carry for its unheld files (the head is read whole, up to 64 MiB). */
const UNHELD_MAX = 48 << 20;

/** The file of mapping m, which the process holds no fd of, as a description of the head's own. */
function unheldFile(pid: number, m: Mapping, inode: { key: string; name: string }, ctx: UnheldContext): MemfdDesc | DeletedDesc {
  const where = `mapping ${m.start.toString(16)}-${m.end.toString(16)} ${printable(inode.name)}`;
  const other = ctx.seen.get(inode.key);
  if (other !== undefined) throw new CrError(`${where}: a memfd or deleted file that process ${other} of the tree maps too and neither holds an fd of, which cr does not carry yet`);
  ctx.seen.set(inode.key, pid);
  const path = `/proc/${pid}/map_files/${m.start.toString(16)}-${m.end.toString(16)}`;
  let fd: number;
  try {
    fd = openSync(path, fs.O_RDONLY | fs.O_NONBLOCK | 0o2000000);
  } catch (err) {
    throw new CrError(`${where}: mapped shared with no fd of it left, and cr cannot open it through ${path} (${(err as NodeJS.ErrnoException).code}: it takes CAP_CHECKPOINT_RESTORE)`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new CrError(`${where}: not a regular file`);
    const memfd = inode.name.startsWith('/memfd:');
    if (memfd && st.blksize > 4096) throw new CrError(`${where}: a hugetlb memfd, which cr does not carry`);
    const got = readContents(path, st.size, ctx.maxContents);
    if (!Array.isArray(got)) throw new CrError(`${where}: ${got.tooBig} bytes of data, above --max-deleted-size ${ctx.maxContents}`);
    const base = { id: ctx.nextId(), flags: O_RDWR | O_LARGEFILE, size: st.size, offset: 0, mode: st.mode & 0o7777, extents: got };
    const name = inode.name.slice(0, -' (deleted)'.length);
    if (memfd) return { ...base, kind: 'memfd', name: name.slice('/memfd:'.length), seals: getSeals(fd) };
    return { ...base, kind: 'deleted', path: name };
  } finally {
    closeSync(fd);
  }
}

/**
 * Each page of a shared object is in the image once, whoever maps it: a mapping of an object
 * whose part an earlier mapping (this process's or an earlier member's) saves already saves
 * nothing (`policies` changed in place). A mapping with guard regions neither counts nor is
 * skipped: a guard belongs to the mapping, not to the object, so its pages are another's to save.
 */
export function skipSavedShared(mappings: Mapping[], policies: PagePolicy[], seen: SharedObjectsSeen): void {
  mappings.forEach((m, i) => {
    if (!m.shm) return;
    const part = { start: m.shm.offset, end: m.shm.offset + (m.end - m.start) };
    const saved = seen.saved.get(m.shm.object) ?? [];
    seen.saved.set(m.shm.object, saved);
    if (saved.some((s) => s.start <= part.start && s.end >= part.end)) policies[i] = 'none';
    else if (m.guards.length === 0) saved.push(part);
  });
}
