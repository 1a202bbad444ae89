// What a whole-process image may ask for, given its author (docs/trust.md): credentials the
// author has, and nothing an unprivileged author could not have done itself (memory below
// vm.mmap_min_addr, more locked memory than its RLIMIT_MEMLOCK, hard limits above cr's own).
// Checked before any process exists; a refusal is one line naming the field, exit 2.
import { readFileSync } from 'node:fs';
import { prlimit } from '../../bridge/rlimit.js';
import { badInput } from '../errors.js';
import type { ProcessHead } from '../image/process-head.js';
import { isRoot, type Author } from './author.js';

/** (uid_t)-1: "unchanged" to the set*id calls, never an id a process has. */
const NO_ID = 0xffffffff;
const RLIMIT_MEMLOCK = 8;
const ID_NAMES = ['real', 'effective', 'saved', 'filesystem'];

function who(author: Author): string {
  return `the image's author (uid ${author.uid}, ${author.source})`;
}

/**
 * The head's credentials: real ids, never -1; the process's uid and its credentials agreeing;
 * and, unless the author is root, every uid the author's and every gid and group one of its groups.
 */
export function checkCredentials(head: ProcessHead, author: Author): void {
  const { uid, gid, groups } = head.creds;
  const fields: Array<[string, number, 'uid' | 'gid']> = [
    ...uid.map((id, i): [string, number, 'uid'] => [`head.creds.uid[${i}] (${ID_NAMES[i]} uid)`, id, 'uid']),
    ...gid.map((id, i): [string, number, 'gid'] => [`head.creds.gid[${i}] (${ID_NAMES[i]} gid)`, id, 'gid']),
    ...groups.map((id, i): [string, number, 'gid'] => [`head.creds.groups[${i}]`, id, 'gid']),
  ];
  for (const [field, id] of fields) {
    if (id >= NO_ID) badInput(`${field} is ${id === NO_ID ? '-1 ("unchanged")' : id}, not an id a process can have`);
  }
  if (head.process.uid !== uid[0]) {
    badInput(`head.process.uid ${head.process.uid} and head.creds.uid[0] (real uid) ${uid[0]} disagree: the credentials are not the process's`);
  }
  if (isRoot(author)) return; // root may give a process any ids
  for (const [field, id, kind] of fields) {
    if (kind === 'uid' && id !== author.uid) badInput(`${field} is ${id}, which ${who(author)} could not have`);
    if (kind === 'gid' && !author.groups.includes(id)) {
      const has = author.gid === null ? `has no passwd entry and so no groups` : `is in groups ${author.groups.join(', ')} only`;
      badInput(`${field} is ${id}, a group ${who(author)} is not in (it ${has})`);
    }
  }
}

/** vm.mmap_min_addr: below it only CAP_SYS_RAWIO may map. */
function mmapMinAddr(): number {
  return Number(readFileSync('/proc/sys/vm/mmap_min_addr', 'latin1').trim());
}

const hex = (n: number): string => `0x${n.toString(16)}`;
const limitText = (v: number | null): string => (v === null || v === Infinity ? 'unlimited' : String(v));
/** null (unlimited) as Infinity, for comparisons. */
const finite = (v: number | null): number => (v === null ? Infinity : v);

/**
 * What only privilege allows, refused for an author that is not root: a mapping below
 * vm.mmap_min_addr; a hard resource limit above cr's own (an unprivileged process can only lower
 * its hard limits, and cr's are the ones its user got); more locked memory (VmLck) than the
 * image's own RLIMIT_MEMLOCK, itself within cr's hard limit, lets a process lock. The image
 * records no capabilities: a restarted process has what its ids give it (none unless uid 0).
 */
export function checkPrivileges(head: ProcessHead, author: Author): void {
  if (isRoot(author)) return;
  const minAddr = mmapMinAddr();
  head.mappings.forEach((m, i) => {
    if (m.start < minAddr) {
      badInput(`head.mappings[${i}] starts at ${hex(m.start)}, below vm.mmap_min_addr (${hex(minAddr)}), which ${who(author)} could not map`);
    }
  });
  for (const [i, r] of head.rlimits.entries()) {
    let own: number;
    try {
      own = prlimit(0, r.resource).hard;
    } catch {
      badInput(`head.rlimits[${i}] names resource ${r.resource}, which this kernel does not have`);
    }
    if (finite(r.hard) > own) {
      badInput(`head.rlimits[${i}] (resource ${r.resource}) has the hard limit ${limitText(r.hard)}, above cr's own ${limitText(own)}: ${who(author)} could not have raised it`);
    }
  }
  const locked = head.mappings.filter((m) => m.vmflags.includes('lo')).reduce((n, m) => n + (m.end - m.start), 0);
  if (locked === 0) return;
  const recorded = head.rlimits.find((r) => r.resource === RLIMIT_MEMLOCK);
  const allowed = Math.min(recorded ? finite(recorded.soft) : prlimit(0, RLIMIT_MEMLOCK).soft, prlimit(0, RLIMIT_MEMLOCK).hard);
  if (locked > allowed) {
    badInput(`head.mappings lock ${locked} bytes in memory (VmLck), beyond the ${limitText(allowed)} bytes RLIMIT_MEMLOCK lets ${who(author)} lock`);
  }
}

/** Everything a head is checked for against its author, before any process exists. */
export function checkHeadTrust(head: ProcessHead, author: Author): void {
  checkCredentials(head, author);
  checkPrivileges(head, author);
}
