// Opening an image's paths with its author's rights (docs/trust.md): the process that opens them
// (the restart husk, CMD, the --into target) takes on the author's fs uid, fs gid and groups
// by injected setgroups/setfsgid/setfsuid first. Only those change: its real, effective and saved
// ids, and so its capabilities other than the file-system ones, stay; the target puts its own
// back afterwards. The file-system ids are what the kernel checks an open, chdir or mmap against.
import { readFileSync } from 'node:fs';
import { CrError, badInput } from '../errors.js';
import { SYS } from '../inject/syscalls.js';
import { isRoot, type Author } from './author.js';

/** What cr needs of an injector or a husk: run a call, place bytes, read them back. */
export interface SyscallRunner {
  readonly pid: number;
  syscall(nr: number, ...args: bigint[]): bigint;
  put(data: Buffer | string): bigint;
  read(addr: bigint, len: number): Buffer;
}

/** The ids a thread opens files with, and whether it may change them. */
export interface FsIdentity {
  fsuid: number;
  fsgid: number;
  groups: number[];
  /** CAP_SETUID and CAP_SETGID both in its effective set: it may take on any fs ids */
  maySwitch: boolean;
}

const CAP_SETGID = 6n;
const CAP_SETUID = 7n;
const PR_GET_DUMPABLE = 3n;
const PR_SET_DUMPABLE = 4n;
const PR_SET_PDEATHSIG = 1n;
const PR_GET_PDEATHSIG = 2n;
const NO_ID = 0xffffffffn; // setfsuid(-1) changes nothing and returns the current fs id

/** tid's file-system identity, from /proc/TID/status. */
export function fsIdentityOf(tid: number): FsIdentity {
  const lines = new Map<string, string>();
  for (const line of readFileSync(`/proc/${tid}/status`, 'latin1').split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) lines.set(line.slice(0, colon), line.slice(colon + 1).trim());
  }
  const ids = (name: string): number[] => (lines.get(name) ?? '').split(/\s+/).filter(Boolean).map(Number);
  const capEff = BigInt(`0x${lines.get('CapEff') ?? '0'}`);
  const has = (cap: bigint): boolean => ((capEff >> cap) & 1n) === 1n;
  return { fsuid: ids('Uid')[3]!, fsgid: ids('Gid')[3]!, groups: ids('Groups'), maySwitch: has(CAP_SETUID) && has(CAP_SETGID) };
}

/** The ids to open with: the author's uid, its primary group and its groups. */
export interface FsIds {
  fsuid: number;
  fsgid: number;
  groups: number[];
}

/** /proc/sys/kernel/overflowgid: the gid shown for ids that do not map; no file should be granted to it. */
const OVERFLOW_GID = (() => {
  try {
    return Number(readFileSync('/proc/sys/kernel/overflowgid', 'latin1').trim());
  } catch {
    return 65534;
  }
})();

/**
 * Whether `who` (whose identity is `opener`) must take on the author's fs ids to open the image's
 * paths: null when it opens as the author already, or the author is root (the common cases:
 * nothing is injected). A process of the author's opens with rights the author has: the author
 * could restore into it, or run CMD, itself, whatever groups it holds. Refuses (exit 2) when it
 * must switch but cannot (no CAP_SETUID/CAP_SETGID: an unprivileged --into target or cr).
 */
export function fsSwitchFor(author: Author, opener: FsIdentity, who: string): FsIds | null {
  if (isRoot(author) || opener.fsuid === author.uid) return null;
  if (!opener.maySwitch) {
    badInput(`${who} opens files as uid ${opener.fsuid} and cannot open them as the image's author (uid ${author.uid}, ${author.source}) instead`);
  }
  // A uid without a passwd entry has no group to open with: it gets the overflow gid, the one the
  // kernel shows for ids that map to nothing, which no file should be granted to (docs/trust.md).
  return { fsuid: author.uid, fsgid: author.gid ?? OVERFLOW_GID, groups: author.groups };
}

/** What becomeAuthor changed, for putBack. */
export interface SavedFsIds {
  fsuid: number;
  fsgid: number;
  groups: number[];
  /** PR_GET_DUMPABLE and PR_GET_PDEATHSIG: a change of fs id resets both (commit_creds) */
  dumpable: number;
  pdeathSignal: number;
}

function fail(r: SyscallRunner, what: string, result: bigint): never {
  throw new CrError(`${what} in pid ${r.pid} failed (${result})`);
}

function setGroups(r: SyscallRunner, groups: number[]): void {
  const list = Buffer.alloc(Math.max(4, groups.length * 4));
  groups.forEach((g, i) => list.writeUInt32LE(g, i * 4));
  const result = r.syscall(SYS.setgroups, BigInt(groups.length), r.put(list));
  if (result !== 0n) fail(r, `setgroups(${groups.join(', ')})`, result);
}

/** setfsuid/setfsgid report no error: ask for the id afterwards (with -1, which changes nothing). */
function setFsId(r: SyscallRunner, nr: number, name: string, id: number): void {
  r.syscall(nr, BigInt(id));
  const now = r.syscall(nr, NO_ID);
  if (now !== BigInt(id)) fail(r, `${name}(${id})`, now);
}

/**
 * Give the thread behind r the fs ids `ids` (groups first, the uid last: setgroups and setfsgid
 * need CAP_SETGID, which a change of fs uid leaves alone). Returns what putBack needs; `opener`
 * is the thread's identity as read before.
 */
export function becomeAuthor(r: SyscallRunner, ids: FsIds, opener: FsIdentity, onSaved?: (saved: SavedFsIds) => void): SavedFsIds {
  const word = r.put(Buffer.alloc(4));
  const dumpable = Number(r.syscall(SYS.prctl, PR_GET_DUMPABLE, 0n, 0n, 0n, 0n));
  const got = r.syscall(SYS.prctl, PR_GET_PDEATHSIG, word, 0n, 0n, 0n);
  if (got !== 0n || dumpable < 0) fail(r, 'prctl(PR_GET_DUMPABLE/PR_GET_PDEATHSIG)', got);
  const saved: SavedFsIds = { fsuid: opener.fsuid, fsgid: opener.fsgid, groups: opener.groups, dumpable, pdeathSignal: r.read(word, 4).readInt32LE(0) };
  // Known before the first change: a journal keeps it for `cr recover` (src/inject/journal.ts).
  onSaved?.(saved);
  try {
    setGroups(r, ids.groups);
    setFsId(r, SYS.setfsgid, 'setfsgid', ids.fsgid);
    setFsId(r, SYS.setfsuid, 'setfsuid', ids.fsuid);
  } catch (err) {
    // Half switched: the thread gets its own ids back before the error goes on.
    try {
      putBack(r, saved);
    } catch {
      // reported with the error below: the caller kills a new process, or says what failed
    }
    throw err;
  }
  return saved;
}

/** Put back what becomeAuthor changed: fs ids, groups, the dumpable flag and the parent-death signal. */
export function putBack(r: SyscallRunner, saved: SavedFsIds): void {
  setFsId(r, SYS.setfsuid, 'setfsuid', saved.fsuid);
  setFsId(r, SYS.setfsgid, 'setfsgid', saved.fsgid);
  setGroups(r, saved.groups);
  // prctl can set 0 or 1; 2 (suid_dumpable's "root only") is what the kernel set it to anyway.
  if (saved.dumpable === 0 || saved.dumpable === 1) {
    const result = r.syscall(SYS.prctl, PR_SET_DUMPABLE, BigInt(saved.dumpable), 0n, 0n, 0n);
    if (result !== 0n) fail(r, `prctl(PR_SET_DUMPABLE, ${saved.dumpable})`, result);
  }
  if (saved.pdeathSignal !== 0) {
    const result = r.syscall(SYS.prctl, PR_SET_PDEATHSIG, BigInt(saved.pdeathSignal), 0n, 0n, 0n);
    if (result !== 0n) fail(r, `prctl(PR_SET_PDEATHSIG, ${saved.pdeathSignal})`, result);
  }
}

/**
 * fn() run with the thread behind r holding the author's fs ids (when `ids` is not null), its own
 * put back afterwards whether fn threw or not. A failure to put them back is an error of its own,
 * reported even when fn failed first.
 */
export function asAuthor<T>(r: SyscallRunner, ids: FsIds | null, opener: FsIdentity, fn: () => T, onSaved?: (saved: SavedFsIds) => void): T {
  if (ids === null) return fn();
  const saved = becomeAuthor(r, ids, opener, onSaved);
  let result: T;
  try {
    result = fn();
  } catch (err) {
    try {
      putBack(r, saved);
    } catch (undo) {
      // The same error object, so that what it says about the failure (a replay's op) survives.
      if (err instanceof Error) err.message += `; and putting back pid ${r.pid}'s own file-system ids failed (${(undo as Error).message})`;
    }
    throw err;
  }
  putBack(r, saved);
  return result;
}
