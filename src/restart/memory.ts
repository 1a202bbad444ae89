// Rebuilding the image's address space inside the husk: everything of the husk's own is unmapped
// but its syscall area and the kernel's vdso pages; those ([vvar], [vvar_vclock], [vdso]) are
// moved with mremap to the addresses the image has them at (the kernel keeps its vdso bookkeeping
// right through mremap, and the three keep the layout the vdso code expects); then every image
// mapping is mapped again (anonymous, from its file, or as an alias of its shared anonymous object,
// made once per object) and the saved pages written in: into writable memory with
// process_vm_writev, elsewhere through /proc/PID/mem, which writes whatever the protection; both
// copy file pages on write as a store by the process would. Guard regions are installed again once the pages are in.
import { copyRanges } from '../../bridge/memory.js';
import { sha256 } from '../../bridge/sha256.js';
import type { OnProgress } from '../progress.js';
import { closeSync, openSync, readFileSync, readSync, statSync, writeSync } from 'node:fs';
import { CrError } from '../errors.js';
import { printable } from '../printable.js';
import { PAGE_SIZE, type PageRun } from '../image/process-format.js';
import type { Mapping, MappingKind } from '../image/process-head.js';
import { parseSmaps, type RawMapping } from '../proc/smaps.js';
import type { CallQueue, StagedData } from '../inject/batch.js';
import { mismatch, OPENED_SCRATCH_BYTES, openedFrom, STATFS_AT } from '../inject/opened.js';
import { O_CLOEXEC, O_NONBLOCK, O_RDONLY, O_RDWR } from '../model/fdtable.js';
import { listFds } from '../proc/fds.js';
import { AREA_BYTES, type Husk } from './husk.js';
import { PAGE_THREAD_MIN, PageThread } from './page-thread.js';
import {
  F_ADD_SEALS, MADV_GUARD_INSTALL, MAP_ANONYMOUS, PROT_READ, PROT_WRITE, MAP_FIXED_NOREPLACE, MAP_GROWSDOWN, MAP_NORESERVE, MAP_PRIVATE, MAP_SHARED, MLOCK_ONFAULT, MREMAP_FIXED, MREMAP_MAYMOVE,
  SYS, PR_SET_VMA, PR_SET_VMA_ANON_NAME, IPC_CREAT, IPC_EXCL, IPC_RMID, IPC_SET, SHMID_DS_BYTES, SHM_PERM_UID_AT, SHM_PERM_GID_AT, SHM_PERM_MODE_AT,
} from '../inject/syscalls.js';
import { askForId, type SegmentPlan } from './sysv-shm.js';
import { accessFor, makeUnheld, writeUnheld, type UnnamedFiles } from './unnamed-files.js';

const SPECIALS: MappingKind[] = ['vvar', 'vvar_vclock', 'vdso'];
const SPECIAL_NAMES: Record<string, MappingKind> = { '[vvar]': 'vvar', '[vvar_vclock]': 'vvar_vclock', '[vdso]': 'vdso' };
const isErrno = (r: bigint): boolean => r < 0n && r > -4096n;
/** Lowest address cr picks for its own areas: clear of the NULL-page guard and low fixed binaries. */
const LOW = 0x100000000;
/** The top of the x86_64 user address space (47 bits), less a guard. */
const HIGH = 0x7fff00000000;

// madvise advice for VmFlags the kernel only sets that way
const ADVICE: Record<string, number> = {
  dd: 16 /* DONTDUMP */, dc: 10 /* DONTFORK */, wf: 18 /* WIPEONFORK */, hg: 14 /* HUGEPAGE */, nh: 15 /* NOHUGEPAGE */, mg: 12 /* MERGEABLE */,
  sr: 2 /* SEQUENTIAL */, rr: 1 /* RANDOM */,
};

type Range = { start: number; end: number };

/** The lowest page-aligned range of `size` bytes at or above LOW that meets none of `taken` (a page of gap kept). */
export function freeRange(size: number, taken: Range[]): number {
  const sorted = [...taken].sort((a, b) => a.start - b.start);
  let at = LOW;
  for (const r of sorted) {
    if (r.end + PAGE_SIZE <= at) continue;
    if (r.start >= at + size + PAGE_SIZE) break;
    at = r.end + PAGE_SIZE;
  }
  if (at + size > HIGH) throw new CrError(`no free ${size}-byte range left in the address space for cr's own use`);
  return at;
}

/**
 * What checkVdso judges of an image: images with equal keys get the same verdict (the members of
 * one tree, dumped under one kernel, are checked once: reading cr's own maps and vdso is the cost).
 */
export function vdsoKey(image: Mapping[], vdsoSha256: Buffer | null): string {
  const sizes = SPECIALS.map((kind) => image.filter((m) => m.kind === kind).map((m) => m.end - m.start).join('+'));
  return `${sizes.join(',')}:${vdsoSha256?.toString('hex') ?? ''}`;
}

/**
 * pid's mappings, ranges and names only: /proc/PID/maps, whose lines are smaps' headers. Not smaps:
 * its per-mapping counts walk every page table (cr's own, read by checkVdso, cost 5-20 ms of a
 * restart; maps costs a tenth of a millisecond) and nothing here needs them. `maps`: that file's
 * text, when the caller has read it.
 */
export function huskMappings(pid: number, maps = huskMaps(pid)): RawMapping[] {
  return parseSmaps(maps);
}

/** pid's /proc/PID/maps as text. */
export const huskMaps = (pid: number): string => readFileSync(`/proc/${pid}/maps`, 'utf8');

/**
 * pid's [vdso] and [vvar] mappings. Only the lines whose name ends as one of theirs are parsed:
 * pid may be cr, whose maps are about a hundred lines (parsing them all: 0.8 ms CPU, cold).
 */
function specialMappings(pid: number): RawMapping[] {
  const lines = readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n');
  const named = lines.filter((line) => line.endsWith(']') && SPECIAL_NAMES[line.slice(line.lastIndexOf('['))] !== undefined);
  return parseSmaps(named.join('\n')).filter((m) => SPECIAL_NAMES[m.name]);
}

/**
 * The restarted process must get the image's vdso pages, the same size each and the same vdso
 * code: the program holds pointers into it. The kernel gives every process the same ones, so pid
 * may be any process of this kernel (cr itself, before a husk exists). Throws a one-line CrError
 * otherwise.
 */
export function checkVdso(pid: number, image: Mapping[], vdsoSha256: Buffer | null): void {
  const own = specialMappings(pid);
  for (const kind of SPECIALS) {
    const want = image.find((m) => m.kind === kind);
    const have = own.find((m) => SPECIAL_NAMES[m.name] === kind);
    if (!want) continue;
    if (!have) throw new CrError(`the image has a [${kind}] mapping and this kernel gives processes none`);
    if (have.end - have.start !== want.end - want.start) {
      throw new CrError(`[${kind}] is ${(have.end - have.start) / PAGE_SIZE} pages on this kernel, ${(want.end - want.start) / PAGE_SIZE} in the image: a different kernel`);
    }
  }
  if (vdsoSha256) {
    const vdso = own.find((m) => m.name === '[vdso]')!;
    const buf = Buffer.alloc(vdso.end - vdso.start);
    const fd = openSync(`/proc/${pid}/mem`, 'r');
    try {
      readSync(fd, buf, 0, buf.length, vdso.start);
    } finally {
      closeSync(fd);
    }
    if (!sha256(buf).equals(vdsoSha256)) {
      throw new CrError('the vdso of this kernel differs from the one the image was dumped under (the program holds pointers into it)');
    }
  }
}

/**
 * Unmap all of the husk but its syscall area, the vdso pages and the tree's shared objects it maps
 * (`carried`, inherited from the root husk), then put the vdso pages where the image has them: one
 * batch, each call with the result it must give.
 */
export function clearAndPlaceVdso(husk: Husk, image: Mapping[], carried: Carried = new Map()): void {
  const own = huskMappings(husk.pid);
  const area = Number(husk.area);
  const q = husk.queue();
  const unmap = (start: number, size: number): void => q.add('munmap', SYS.munmap, [BigInt(start), BigInt(size)], 0n);
  const keep = [...carried].filter(([object]) => image.some((m) => m.shm?.object === object)).map(([, c]) => ({ start: c.at, end: c.at + c.size }));
  for (const m of own) {
    if (m.start >= area && m.end <= area + AREA_BYTES) continue;
    if (keep.some((k) => m.start >= k.start && m.end <= k.end)) continue;
    if (SPECIAL_NAMES[m.name] || m.name === '[vsyscall]') continue;
    unmap(m.start, m.end - m.start);
  }
  const specials = own.filter((m) => SPECIAL_NAMES[m.name]);
  const wanted = image.filter((m) => SPECIALS.includes(m.kind));
  if (wanted.length === 0) {
    // The program unmapped its vdso (or never had one): so does its restart.
    for (const m of specials) unmap(m.start, m.end - m.start);
    q.run();
    return;
  }
  // Through a free stretch first, so that no move lands on a special mapping not yet moved.
  const lo = Math.min(...specials.map((m) => m.start));
  const span = Math.max(...specials.map((m) => m.end)) - lo;
  const hop = freeRange(span, [...image, ...specials, { start: area, end: area + AREA_BYTES }, ...keep]);
  const move = (from: number, size: number, to: number): void => {
    const flags = BigInt(MREMAP_MAYMOVE | MREMAP_FIXED);
    q.add('mremap', SYS.mremap, [BigInt(from), BigInt(size), BigInt(size), flags, BigInt(to)], BigInt(to));
  };
  for (const m of specials) move(m.start, m.end - m.start, hop + (m.start - lo));
  for (const m of specials) {
    const target = wanted.find((w) => w.kind === SPECIAL_NAMES[m.name]);
    const at = hop + (m.start - lo);
    if (target) move(at, m.end - m.start, target.start);
    else unmap(at, m.end - m.start);
  }
  q.run();
}

/** Refuse a file mapping whose file is gone or changed since the dump, before the husk exists. */
export function checkMappedFiles(image: Mapping[]): void {
  for (const m of image) {
    if (!m.file) continue;
    const f = m.file;
    let st;
    try {
      st = statSync(f.path);
    } catch {
      throw new CrError(`${printable(f.path)}, mapped at ${m.start.toString(16)}, is gone`);
    }
    // Only a regular file can have been mapped: the husk's open of a FIFO named here would wait
    // for a writer, of a device could act on it. Judged by the path, before the husk exists.
    if (!st.isFile()) throw new CrError(`${printable(f.path)}, mapped at ${m.start.toString(16)}, is not a regular file`, 2);
    if (st.dev !== f.dev || st.ino !== f.ino || st.size !== f.size || st.mtimeMs !== f.mtimeMs) {
      throw new CrError(`${printable(f.path)}, mapped at ${m.start.toString(16)}, changed since the dump`);
    }
  }
}

/** A file some mappings map, opened once (per access mode) in the husk. */
interface MapFile {
  /** the first mapping that needs it, for messages */
  first: Mapping;
  write: boolean;
  /** the fd it gets: the husk's lowest free ones, in order, as open(2) gives them */
  fd: number;
}

/**
 * Map every mapping of the image (but the vdso pages, in place already), empty or from its file.
 * checkMappedFiles looked at each file in cr's view before the husk existed; what the husk's open
 * gives is judged again, on the fd it maps from, so a file swapped in between is never mapped.
 * The opens, with the fstat and fstatfs that judge them, run in one batch (more if the paths do
 * not fit), judged before any mmap; then the mmaps, advice and names in another; then the closes.
 */
export function mapAll(husk: Husk, image: Mapping[], segments: Map<number, SegmentPlan>, carried: Carried = new Map(), unnamed: UnnamedFiles = new Map(), fds?: number[]): SharedObjects {
  const files = new Map<string, MapFile>();
  // The husk's fd numbers: as the caller checked them after the replay, else read (a dense
  // table's /proc/PID/fd is a thousand entries).
  const taken = new Set(fds ?? listFds(husk.pid));
  let next = 0;
  for (const m of image) {
    if (SPECIALS.includes(m.kind) || !m.file) continue;
    // A shared mapping may later be made writable only if its file was opened for writing ('mw').
    const write = m.kind === 'shared-file' && m.vmflags.includes('mw');
    const key = `${write ? 'w' : 'r'}:${m.file.path}`;
    if (files.has(key)) continue;
    while (taken.has(next)) next++;
    files.set(key, { first: m, write, fd: next++ });
  }
  // A memfd or deleted file mapped from a description with other access than the mapping had:
  // one of the right access opened through /proc/self/fd/N of the process's, once per file and access.
  const reopened = new Map<string, number>();
  // A file the process maps but holds no fd of: made at a number of its own (unnamed-files.ts).
  const made: number[] = [];
  for (const f of unnamed.values()) {
    if (!f.unheld) continue;
    while (taken.has(next)) next++;
    made.push((f.fd = next++));
  }
  for (const m of image) {
    if (!m.unnamed) continue;
    const f = unnamed.get(m.unnamed.desc)!;
    const key = `${m.unnamed.desc}:${accessFor(m)}`;
    if (f.access === accessFor(m) || reopened.has(key)) continue;
    while (taken.has(next)) next++;
    reopened.set(key, next++);
  }
  const opened: MapFile[] = [];
  const objects = sharedObjects(husk, image, segments, carried);
  try {
    openAll(husk, [...files.values()], opened);
    // System V segments made again first, one call at a time (the id shmget gives is the kernel's).
    for (const [object, o] of objects) if (o.sysv && !o.sysv.live && !o.carried) o.sysv.id = makeSegment(husk, segments.get(object)!);
    const q = husk.queue();
    // In the order their numbers were given: each call takes the lowest free one.
    for (const f of unnamed.values()) if (f.unheld) makeUnheld(f.unheld, f.fd, q, (call, r) => husk.failure(call, r));
    for (const [key, fd] of reopened) {
      const [desc, access] = key.split(':').map(Number) as [number, number];
      const from = `/proc/self/fd/${unnamed.get(desc)!.fd}`;
      const call = `open("${from}", ${access === O_RDWR ? 'O_RDWR' : 'O_RDONLY'})`;
      q.add('open', SYS.open, [q.put(from), BigInt(access | O_CLOEXEC), 0n], BigInt(fd), (r) =>
        isErrno(r) ? new CrError(`the file description ${desc} maps: ${husk.failure(call, r).message}`) : new Error(`${call} in the husk gave fd ${r}, not ${fd}`),
      );
    }
    // Each shared anonymous object made once, read-write, somewhere free (a System V segment
    // attached there whole), unless the tree's root made it for every member that maps it; every
    // mapping of it is then an alias made by mremap with old size 0 (a new mapping of the same
    // pages) at its offset.
    for (const o of objects.values()) {
      if (o.carried) continue;
      if (o.sysv) q.add('shmat', SYS.shmat, [BigInt(o.sysv.id), BigInt(o.at), 0n], BigInt(o.at));
      else q.add('mmap', SYS.mmap, [BigInt(o.at), BigInt(o.size), BigInt(PROT_READ | PROT_WRITE), BigInt(MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE), -1n, 0n], BigInt(o.at));
    }
    for (const m of image) {
      // aio rings: made after these, by io_setup (aio.ts)
      if (SPECIALS.includes(m.kind) || m.kind === 'aio') continue;
      const len = BigInt(m.end - m.start);
      if (m.shm) {
        const from = BigInt(objects.get(m.shm.object)!.at + m.shm.offset);
        const at = BigInt(m.start);
        // MREMAP_FIXED replaces what is there: nothing, as the image's mappings do not overlap.
        q.add('mremap', SYS.mremap, [from, 0n, len, BigInt(MREMAP_MAYMOVE | MREMAP_FIXED), at], at);
        if (m.prot !== (PROT_READ | PROT_WRITE)) q.add('mprotect', SYS.mprotect, [at, len, BigInt(m.prot)], 0n);
        addAdvice(q, m, at, len);
        continue;
      }
      let flags = MAP_FIXED_NOREPLACE | (m.vmflags.includes('nr') ? MAP_NORESERVE : 0);
      let fd = -1n;
      let offset = 0n;
      if (m.kind === 'anon') {
        flags |= MAP_PRIVATE | MAP_ANONYMOUS | (m.vmflags.includes('gd') ? MAP_GROWSDOWN : 0);
      } else if (m.unnamed) {
        const f = unnamed.get(m.unnamed.desc)!;
        flags |= MAP_SHARED;
        fd = BigInt(f.access === accessFor(m) ? f.fd : reopened.get(`${m.unnamed.desc}:${accessFor(m)}`)!);
        offset = BigInt(m.unnamed.offset);
      } else {
        const shared = m.kind === 'shared-file';
        flags |= shared ? MAP_SHARED : MAP_PRIVATE;
        fd = BigInt(files.get(`${shared && m.vmflags.includes('mw') ? 'w' : 'r'}:${m.file!.path}`)!.fd);
        offset = BigInt(m.file!.offset);
      }
      const at = BigInt(m.start);
      q.add('mmap', SYS.mmap, [at, len, BigInt(m.prot), BigInt(flags), fd, offset], at, (r) =>
        isErrno(r) ? husk.failure(`mmap(0x${m.start.toString(16)}, ${len})`, r) : new Error(`mmap at 0x${m.start.toString(16)} landed at 0x${r.toString(16)}`),
      );
      addAdvice(q, m, at, len);
    }
    q.run();
    for (const f of unnamed.values()) if (f.unheld) writeUnheld(husk.pid, f.fd, f.unheld);
    // Every mapping of each memfd exists, and its data: its seals now (unnamed-files.ts).
    const seal = husk.queue();
    for (const [desc, f] of unnamed) {
      if (f.seals !== 0) seal.add('fcntl(F_ADD_SEALS)', SYS.fcntl, [BigInt(f.fd), BigInt(F_ADD_SEALS), BigInt(f.seals)], 0n, (r) => husk.failure(`the seals of description ${desc}: fcntl(${f.fd}, F_ADD_SEALS, ${f.seals})`, r));
    }
    seal.run();
    return objects;
  } finally {
    const q = husk.queue();
    for (const f of opened) q.add('close', SYS.close, [BigInt(f.fd)], 0n);
    // Whatever of them was opened (a failed batch stops at its first failure): closed if there.
    const now = reopened.size + made.length > 0 ? new Set(listFds(husk.pid)) : new Set<number>();
    for (const fd of [...reopened.values(), ...made]) if (now.has(fd)) q.add('close', SYS.close, [BigInt(fd)], 0n);
    q.run();
  }
}

/** The madvise flags and the name of mapping m, queued. */
export function addAdvice(q: CallQueue, m: Mapping, at: bigint, len: bigint): void {
  for (const [flag, advice] of Object.entries(ADVICE)) {
    if (m.vmflags.includes(flag)) q.add('madvise', SYS.madvise, [at, len, BigInt(advice)], 0n);
  }
  const name = anonName(m);
  if (name !== null) q.add('prctl(PR_SET_VMA)', SYS.prctl, [BigInt(PR_SET_VMA), BigInt(PR_SET_VMA_ANON_NAME), at, len, q.put(name)], 0n);
}

/**
 * The name PR_SET_VMA_ANON_NAME gave mapping m, which restart gives it again once it is in place:
 * anonymous memory's [anon:NAME], shared anonymous memory's [anon_shmem:NAME] (the name is the
 * mapping's, not its object's: an alias is made unnamed). Null for any other.
 */
export function anonName(m: Mapping): string | null {
  const prefix = m.kind === 'anon' ? '[anon:' : m.kind === 'shared-anon' ? '[anon_shmem:' : null;
  return prefix !== null && m.name.startsWith(prefix) && m.name.endsWith(']') ? m.name.slice(prefix.length, -1) : null;
}

/**
 * The shared anonymous objects of the image, by number: each as large as its furthest mapping
 * reaches, first mapped read-write where nothing of the image is (clear of the area and of each
 * other). The pages are written through that first mapping (an alias may be read-only, and
 * /proc/PID/mem writes a read-only mapping only when it is private), which then goes (dropObjects).
 */
export type SharedObjects = Map<number, SharedObject>;

interface SharedObject {
  size: number;
  at: number;
  /** a System V segment: the live one attached again, or a new one (its id once made) */
  sysv: (SegmentPlan & { id: number }) | null;
  /** made by the tree's root husk and inherited (carryObjects), not made here */
  carried: boolean;
}

/**
 * The shared objects several members of a tree map, made once in the root husk before it forks
 * (carryObjects), so that every husk inherits them: where each is, how large, and for a System V
 * segment its id now.
 */
export type Carried = Map<number, { at: number; size: number; sysvId: number | null }>;

/** Each object's size: as far as its furthest mapping reaches, a System V segment whole (shmat attaches it so). */
function objectSizes(image: Mapping[], segments: Map<number, SegmentPlan>): Map<number, number> {
  const sizes = new Map<number, number>();
  for (const m of image) {
    if (!m.shm) continue;
    const plan = segments.get(m.shm.object);
    const whole = plan ? Math.ceil(plan.segment.size / PAGE_SIZE) * PAGE_SIZE : 0;
    sizes.set(m.shm.object, Math.max(sizes.get(m.shm.object) ?? 0, whole, m.shm.offset + (m.end - m.start)));
  }
  return sizes;
}

function sharedObjects(husk: Husk, image: Mapping[], segments: Map<number, SegmentPlan>, carried: Carried): SharedObjects {
  const objects = new Map<number, SharedObject>();
  const taken: Range[] = [...image, { start: Number(husk.area), end: Number(husk.area) + AREA_BYTES }];
  for (const c of carried.values()) taken.push({ start: c.at, end: c.at + c.size });
  for (const [object, size] of objectSizes(image, segments)) {
    const plan = segments.get(object);
    const c = carried.get(object);
    const sysv = plan ? { ...plan, id: c?.sysvId ?? plan.segment.id } : null;
    if (c) {
      objects.set(object, { size: c.size, at: c.at, sysv, carried: true });
      continue;
    }
    const at = freeRange(size, taken);
    taken.push({ start: at, end: at + size });
    objects.set(object, { size, at, sysv, carried: false });
  }
  return objects;
}

/**
 * In a tree's root husk, before it forks: make each shared object that several members map
 * (`members`: each live member's mappings), somewhere free in every member's image, in the husks
 * (`taken`) and apart from each other, so that each husk inherits it and its members map it from
 * there: one object, shared as before, and by any child they fork later. A System V segment is
 * attached (the live one, or one made again, then marked for removal if it was: the attachments
 * keep it). A member that does not map one unmaps it with the rest of the husk's own.
 */
export function carryObjects(husk: Husk, members: Mapping[][], segments: Map<number, SegmentPlan>, taken: Range[]): Carried {
  const holders = new Map<number, number>();
  for (const mappings of members) for (const object of new Set(mappings.flatMap((m) => (m.shm ? [m.shm.object] : [])))) holders.set(object, (holders.get(object) ?? 0) + 1);
  const sizes = objectSizes(members.flat(), segments);
  const carried: Carried = new Map();
  const used: Range[] = [...taken, { start: Number(husk.area), end: Number(husk.area) + AREA_BYTES }];
  for (const [object, size] of sizes) {
    if ((holders.get(object) ?? 0) < 2) continue;
    const at = freeRange(size, used);
    used.push({ start: at, end: at + size });
    const plan = segments.get(object);
    let sysvId: number | null = null;
    if (plan) {
      sysvId = plan.live ? plan.segment.id : makeSegment(husk, plan);
      husk.call('shmat', SYS.shmat, BigInt(sysvId), BigInt(at), 0n);
      if (!plan.live && plan.segment.removed) husk.call('shmctl(IPC_RMID)', SYS.shmctl, BigInt(sysvId), BigInt(IPC_RMID), 0n);
    } else {
      husk.call('mmap', SYS.mmap, BigInt(at), BigInt(size), BigInt(PROT_READ | PROT_WRITE), BigInt(MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE), -1n, 0n);
    }
    carried.set(object, { at, size, sysvId });
  }
  return carried;
}

/**
 * shmget in the husk for a segment made again (with its key, so nothing else takes it; the
 * image's id asked for as root), then its owner and mode as the image has them (the husk's ids
 * made it). Returns its id, also kept in the plan for a failed restart to remove (sysv-shm.ts
 * removeMadeSegments).
 */
function makeSegment(husk: Husk, plan: SegmentPlan): number {
  const s = plan.segment;
  askForId(s.id);
  const id = Number(husk.call('shmget', SYS.shmget, BigInt(s.key), BigInt(s.size), BigInt(IPC_CREAT | IPC_EXCL | s.mode)));
  plan.made = id;
  const ds = Buffer.alloc(SHMID_DS_BYTES);
  ds.writeUInt32LE(s.uid, SHM_PERM_UID_AT);
  ds.writeUInt32LE(s.gid, SHM_PERM_GID_AT);
  ds.writeUInt32LE(s.mode, SHM_PERM_MODE_AT);
  husk.call('shmctl(IPC_SET)', SYS.shmctl, BigInt(id), BigInt(IPC_SET), husk.put(ds));
  return id;
}

/** One line for each System V segment made again with another id than the image's. */
export function segmentNotes(objects: SharedObjects): string[] {
  return [...objects.values()].flatMap((o) =>
    o.sysv && !o.sysv.live && o.sysv.id !== o.sysv.segment.id
      ? [`System V shared memory segment ${o.sysv.segment.id} is now segment ${o.sysv.id} (a new one, with the image's contents): a program that kept the old id finds another segment, or none, under it`]
      : [],
  );
}

/**
 * Open the files in the husk, as few batches as their paths allow, and judge each on its fd; the
 * ones that opened are added to `opened` (for the caller to close), even when a later one fails.
 */
function openAll(husk: Husk, files: MapFile[], opened: MapFile[]): void {
  let q = husk.queue();
  let group: Array<{ f: MapFile; stat: bigint }> = [];
  const judge = (): void => {
    let data: StagedData | null = null;
    let whole = false;
    try {
      data = q.run({ readBack: true }).data;
      whole = true;
    } finally {
      // Whatever opened is closed by the caller, whether the batch failed or not: all of the
      // group when it ran whole, else what /proc shows of it (a batch stops at its first failure).
      const now = whole || group.length === 0 ? null : new Set(listFds(husk.pid));
      for (const { f } of group) if ((now === null || now.has(f.fd)) && !opened.includes(f)) opened.push(f);
    }
    for (const { f, stat } of group) {
      const file = f.first.file!;
      const why = mismatch(openedFrom(data!.slice(stat, OPENED_SCRATCH_BYTES)), { type: 'regular file', inode: { dev: file.dev, ino: file.ino } });
      if (why !== null) throw new CrError(`mapping at ${f.first.start.toString(16)}: "${printable(file.path, '"')}" now opens ${why}; refused`, 2);
    }
    q = husk.queue();
    group = [];
  };
  for (const f of files) {
    const file = f.first.file!;
    const room = Buffer.byteLength(file.path) + 1 + 15 + OPENED_SCRATCH_BYTES;
    if (!q.fits(room, 3)) judge();
    const path = q.put(file.path, 3);
    const stat = q.put(Buffer.alloc(OPENED_SCRATCH_BYTES), 2);
    const fd = BigInt(f.fd);
    // O_NONBLOCK: a path that became a FIFO must not hold the husk in its open.
    const call = `open("${printable(file.path, '"')}", ${f.write ? 'O_RDWR' : 'O_RDONLY'})`;
    const flags = BigInt((f.write ? O_RDWR : O_RDONLY) | O_NONBLOCK | O_CLOEXEC);
    q.add('open', SYS.open, [path, flags, 0n], fd, (r) =>
      isErrno(r) ? new CrError(`mapping at ${f.first.start.toString(16)}: ${husk.failure(call, r).message}`) : new Error(`${call} in the husk gave fd ${r}, not ${fd}`),
    );
    q.add('fstat', SYS.fstat, [fd, stat], 0n);
    q.add('fstatfs', SYS.fstatfs, [fd, stat + STATFS_AT], 0n);
    group.push({ f, stat });
  }
  judge();
}

/**
 * Write the image's page runs into the husk: a large image's in two threads (page-thread.ts),
 * each window of runs by one of them, in any order (the runs never overlap). Returns pages written.
 */
export function writePages(pid: number, runs: Iterable<PageRun>, image: Mapping[], objects: SharedObjects, progress?: { onProgress: OnProgress; total: number }): number {
  let mem = -1;
  const memFd = (): number => (mem >= 0 ? mem : (mem = openSync(`/proc/${pid}/mem`, 'r+')));
  const todo: Array<{ run: PageRun; addr: number; direct: boolean }> = [];
  /** every run, in file order, and whether it is written (todo's index) */
  const all: Array<{ run: PageRun; addr: number; todo: number }> = [];
  for (const run of runs) {
    const m = image[run.mapping]!;
    // A live System V segment attached again keeps the pages it has now (others may share it).
    if (m.shm && objects.get(m.shm.object)!.sysv?.live) {
      all.push({ run, addr: 0, todo: -1 });
      continue;
    }
    // A page of shared anonymous memory goes into its object, through the object's first mapping.
    const addr = m.shm ? objects.get(m.shm.object)!.at + m.shm.offset + (run.addr - m.start) : run.addr;
    // Writable memory (an object's first mapping always is) takes the bytes with one
    // process_vm_writev, one copy; the rest, and whatever it could not reach, through
    // /proc/PID/mem, which writes whatever the protection.
    all.push({ run, addr, todo: todo.length });
    todo.push({ run, addr, direct: m.shm !== undefined || (m.prot & PROT_WRITE) !== 0 });
  }
  const bytes = todo.reduce((n, t) => n + t.run.length, 0);
  // Told as each run is written: the bytes of the runs up to it (in two threads, those before it
  // have been taken, if not all written yet).
  let before = 0;
  const upTo = todo.map((t) => (before += t.run.length));
  const write = (i: number, data = todo[i]!.run.data): void => {
    const { addr, direct } = todo[i]!;
    let done = direct ? copyRanges(pid, [{ addr, data }], true) : 0;
    while (done < data.length) done += writeSync(memFd(), data, done, data.length - done, addr + done);
    progress?.onProgress(upTo[i]!, progress.total);
  };
  let thread: PageThread | null = null;
  const file = all[0]?.run.inFile?.pages;
  try {
    // A large image's runs, from its file, read once in windows shared with a second thread
    // (page-thread.ts), which also make its checksum where the restore left it to them.
    if (file && bytes >= PAGE_THREAD_MIN && all.every((a) => a.run.inFile?.pages === file)) {
      const jobs = all.map((a) => ({ offset: a.run.inFile!.offset, length: a.run.length, addr: a.addr, write: a.todo >= 0 }));
      thread = new PageThread(file, jobs, memFd());
      const last = jobs[jobs.length - 1]!;
      const hash = file.passHash(jobs[0]!.offset, last.offset + last.length);
      thread.run((j, data) => write(all[j]!.todo, data), hash ?? undefined);
      hash?.done();
      thread.finish();
      progress?.onProgress(bytes, progress.total);
    } else {
      todo.forEach((_, i) => write(i));
    }
    // A large image's checksum, made as the pages went in: checked before anything else is done
    // in the process (PagesInFile.verify; nothing if it was checked as it was read).
    file?.verify();
  } finally {
    thread?.end();
    if (mem >= 0) closeSync(mem);
  }
  return bytes / PAGE_SIZE;
}

/** Unmap each shared object's first mapping: the objects live on in their aliases. */
export function dropObjects(husk: Husk, objects: SharedObjects): void {
  const q = husk.queue();
  for (const o of objects.values()) {
    q.add('munmap', SYS.munmap, [BigInt(o.at), BigInt(o.size)], 0n);
    // The process's own mappings hold it now: marked for removal, it goes with the last of them.
    if (o.sysv && !o.sysv.live && !o.carried && o.sysv.segment.removed) q.add('shmctl(IPC_RMID)', SYS.shmctl, [BigInt(o.sysv.id), BigInt(IPC_RMID), 0n], 0n);
  }
  q.run();
}

/**
 * Install the image's guard regions on the same ranges: touching one faults again. After the
 * pages are written (installing one zaps whatever page is there) and before any mlock (the
 * kernel refuses guards in locked memory).
 */
export function installGuards(husk: Husk, image: Mapping[]): number {
  let pages = 0;
  const q = husk.queue();
  for (const m of image) {
    for (const g of m.guards) {
      q.add('madvise(MADV_GUARD_INSTALL)', SYS.madvise, [BigInt(g.start), BigInt(g.end - g.start), BigInt(MADV_GUARD_INSTALL)], 0n, (r) => {
        const code = isErrno(r) ? husk.failure('madvise', r).code : `result ${r}`;
        return new CrError(`mapping ${m.start.toString(16)}-${m.end.toString(16)}: its guard region ${g.start.toString(16)}-${g.end.toString(16)} cannot be installed again (madvise MADV_GUARD_INSTALL: ${code}; Linux 6.13+ has it)`);
      });
      pages += (g.end - g.start) / PAGE_SIZE;
    }
  }
  q.run();
  return pages;
}

/**
 * Lock what the process had locked (a failure, RLIMIT_MEMLOCK say, is a warning) and seal what
 * it had sealed; after the pages are in, since a seal forbids the changes restart makes.
 */
export function lockAndSeal(husk: Husk, image: Mapping[]): string[] {
  const warnings: string[] = [];
  for (const m of image) {
    const len = BigInt(m.end - m.start);
    if (m.vmflags.includes('lo')) {
      const r = husk.syscall(SYS.mlock2, BigInt(m.start), len, BigInt(m.vmflags.includes('lf') ? MLOCK_ONFAULT : 0));
      if (r < 0n) warnings.push(`mapping ${m.start.toString(16)}-${m.end.toString(16)} could not be locked in memory again (errno ${-r})`);
    }
    if (m.vmflags.includes('sl')) husk.call('mseal', SYS.mseal, BigInt(m.start), len, 0n);
  }
  return warnings;
}
