// The completeness rule (docs/state.md): every piece of process state the kernel shows cr is
// carried, refused, or knowingly not carried and documented. This module holds the inventory of
// what /proc/PID/status, the smaps VmFlags, the namespaces, the LSM label and the fds' locks
// (locks.ts) show, and judges a frozen process against it: anything carried or documented passes, anything
// cr cannot carry is a reason to refuse the dump, and anything the inventory does not know (a
// field or flag a newer kernel added) is refused by name, never dropped without a word.
// What only injected getters show is read and judged in attributes.ts and inside.ts.
import { readlinkSync } from 'node:fs';
import { getSyscallUserDispatch } from '../../bridge/ptrace.js';
import { readLocks } from './locks.js';
import type { ProcFd } from '../proc/fds.js';
import { readTimers } from './timers.js';
import { readProc } from '../proc/read.js';
import type { RawMapping } from '../proc/smaps.js';

/** How cr treats one item: carried, not carried (docs/state.md says why), or judged by its value. */
export type Verdict = 'carried' | 'not carried' | ((value: string, own: string, status: Map<string, string>) => string | null);

const same = (what: string) => (value: string, own: string): string | null =>
  value === own ? null : `${what} is "${value}" where cr's is "${own}", which cr does not carry`;
const zero = (what: string) => (value: string): string | null => (/^[0\s]*(kB)?$/.test(value) || /^0+$/.test(value) ? null : `${what} (${value}), which cr does not carry`);
const empty = (what: string) => (value: string): string | null => (value === '' ? null : `${what} (${value}), which cr does not carry`);

/** Every /proc/PID/status field of Linux 6.18 (fs/proc/array.c), and how cr treats it. */
export const STATUS_FIELDS: Record<string, Verdict> = {
  Name: 'carried',
  Umask: 'carried',
  State: 'not carried',
  Tgid: 'not carried',
  Ngid: 'not carried',
  Pid: 'not carried',
  PPid: 'not carried',
  TracerPid: 'not carried',
  Uid: 'carried',
  Gid: 'carried',
  FDSize: 'not carried',
  Groups: 'carried',
  NStgid: 'not carried',
  NSpid: 'not carried',
  NSpgid: 'not carried',
  NSsid: 'not carried',
  Kthread: 'not carried',
  VmPeak: 'not carried',
  VmSize: 'carried',
  VmLck: 'carried',
  VmPin: zero('pinned memory (VmPin)'),
  VmHWM: 'not carried',
  VmRSS: 'carried',
  RssAnon: 'carried',
  RssFile: 'carried',
  RssShmem: 'carried',
  VmData: 'carried',
  VmStk: 'carried',
  VmExe: 'carried',
  VmLib: 'carried',
  VmPTE: 'not carried',
  VmSwap: 'carried',
  HugetlbPages: zero('hugetlb pages'),
  CoreDumping: 'not carried',
  THP_enabled: 'carried',
  untag_mask: same('the address tag mask (LAM)'),
  x86_Thread_features: empty('x86 thread features (shadow stack)'),
  x86_Thread_features_locked: empty('locked x86 thread features'),
  Threads: 'carried', // more than one is refused by refuse.ts
  SigQ: 'carried',
  SigPnd: 'carried',
  ShdPnd: 'carried',
  SigBlk: 'carried',
  SigIgn: 'carried',
  SigCgt: 'carried',
  CapInh: zero('inheritable capabilities'),
  CapPrm: capabilities('permitted'),
  CapEff: capabilities('effective'),
  CapBnd: same('the capability bounding set'),
  CapAmb: zero('ambient capabilities'),
  NoNewPrivs: 'carried',
  Seccomp: 'carried', // a filter is refused by refuse.ts
  Seccomp_filters: 'carried',
  Speculation_Store_Bypass: same('the speculative store bypass mitigation'),
  SpeculationIndirectBranch: same('the indirect branch speculation mitigation'),
  Cpus_allowed: 'carried',
  Cpus_allowed_list: 'carried',
  Mems_allowed: same('the memory nodes allowed (cpuset)'),
  Mems_allowed_list: same('the memory nodes allowed (cpuset)'),
  voluntary_ctxt_switches: 'not carried',
  nonvoluntary_ctxt_switches: 'not carried',
};

/**
 * Permitted and effective capabilities are not in the image: a restarted process has what its
 * ids give it (docs/trust.md): all of the bounding set for uid 0, none for any other uid.
 */
function capabilities(set: string): Verdict {
  return (value, _own, status) => {
    const euid = status.get('Uid')?.split(/\s+/)[1];
    const want = euid === '0' ? status.get('CapBnd') : '0000000000000000';
    return value === want ? null : `${set} capabilities ${value} other than its uid gives (${want}), which cr does not carry`;
  };
}

/**
 * The smaps VmFlags codes of Linux 6.18 (fs/proc/task_mmu.c) and how cr treats them: carried
 * (restart recreates or re-applies it), 'not carried' (follows from the mapping or is
 * bookkeeping), or refused.
 */
export const VMFLAGS: Record<string, 'carried' | 'not carried' | string> = {
  rd: 'carried', wr: 'carried', ex: 'carried', sh: 'carried', mr: 'carried', mw: 'carried', me: 'carried', ms: 'carried',
  gd: 'carried', lo: 'carried', lf: 'carried', nr: 'carried', dc: 'carried', dd: 'carried', wf: 'carried', hg: 'carried',
  nh: 'carried', mg: 'carried', sr: 'carried', rr: 'carried', sl: 'carried', gu: 'carried',
  ac: 'not carried', sd: 'not carried',
  // The kernel's own on the vdso pages; refused on any other mapping (maps.ts).
  de: 'not carried', pf: 'not carried', io: 'not carried',
  mm: 'mixed-map memory (VM_MIXEDMAP) is not supported',
  ht: 'hugetlb memory is not supported',
  sf: 'synchronous page faults (MAP_SYNC) are not supported',
  ar: 'architecture-specific memory (VM_ARCH_1) is not supported',
  um: 'userfaultfd-registered memory is not supported',
  uw: 'userfaultfd-registered memory is not supported',
  ui: 'userfaultfd-registered memory is not supported',
  ss: 'shadow stacks are not supported',
  bt: 'arm64 BTI memory is not supported',
  mt: 'arm64 MTE memory is not supported',
};

/** Why a VmFlags code stands in the way, or null. */
export function vmflagRefusal(code: string): string | null {
  const v = VMFLAGS[code];
  if (v === undefined) return `VmFlags code "${code}" is not known to cr`;
  return v === 'carried' || v === 'not carried' ? null : v;
}

function parseStatus(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const at = line.indexOf(':');
    if (at > 0) out.set(line.slice(0, at), line.slice(at + 1).trim());
  }
  return out;
}

function statusReasons(pid: number): string[] {
  const status = parseStatus(readProc(`/proc/${pid}/status`));
  const own = parseStatus(readProc('/proc/self/status'));
  const reasons: string[] = [];
  for (const [name, value] of status) {
    const verdict = STATUS_FIELDS[name];
    if (verdict === undefined) reasons.push(`process ${pid}: /proc/PID/status shows "${name}", which cr does not know`);
    else if (typeof verdict === 'function') {
      const why = verdict(value, own.get(name) ?? '', status);
      if (why) reasons.push(`process ${pid} has ${why}`);
    }
  }
  return reasons;
}

/** The namespaces cr looks at: a process in any other than cr's would be restarted in cr's. */
export const NAMESPACES = ['cgroup', 'ipc', 'mnt', 'net', 'pid', 'pid_for_children', 'time', 'time_for_children', 'user', 'uts'];

function namespaceReasons(pid: number): string[] {
  const other: string[] = [];
  for (const ns of NAMESPACES) {
    let theirs: string;
    let ours: string;
    try {
      theirs = readlinkSync(`/proc/${pid}/ns/${ns}`);
      ours = readlinkSync(`/proc/self/ns/${ns}`);
    } catch {
      continue; // a kernel without this namespace type
    }
    if (theirs !== ours) other.push(ns);
  }
  return other.length ? [`process ${pid} is in ${other.join(', ')} namespace${other.length > 1 ? 's' : ''} other than cr's, which cr does not carry`] : [];
}

/**
 * The root directory (chroot): a restarted process gets cr's, so a process whose root is another
 * directory, or one deleted since, is refused.
 */
function rootReasons(pid: number): string[] {
  const theirs = readlinkSync(`/proc/${pid}/root`);
  const ours = readlinkSync('/proc/self/root');
  return theirs === ours ? [] : [`process ${pid} has the root directory "${theirs}" (chroot) where cr has "${ours}", which cr does not carry`];
}

/** The LSM label (SELinux, AppArmor, Smack): restarted, the process would have cr's. */
function labelReasons(pid: number): string[] {
  const read = (path: string): string | null => {
    try {
      return readProc(path).replace(/\0/g, '').trim();
    } catch {
      return null; // no LSM that keeps a label
    }
  };
  const theirs = read(`/proc/${pid}/attr/current`);
  const ours = read('/proc/self/attr/current');
  return theirs !== null && theirs !== ours ? [`process ${pid} has the security label "${theirs}" where cr has "${ours}", which cr does not carry`] : [];
}

/** Protection keys other than the default: the image has no pkeys. */
function pkeyReasons(pid: number, smaps: readonly RawMapping[]): string[] {
  const keys = new Set(smaps.filter((r) => r.pkey !== 0).map((r) => r.pkey));
  return keys.size ? [`process ${pid} uses memory protection keys (${[...keys].join(', ')}), which cr does not carry`] : [];
}

/** Syscall user dispatch (PR_SET_SYSCALL_USER_DISPATCH), which only a tracer can read back. */
function dispatchReasons(pid: number): string[] {
  return getSyscallUserDispatch(pid) === 0 ? [] : [`process ${pid} has syscall user dispatch on (PR_SET_SYSCALL_USER_DISPATCH), which cr does not carry`];
}

/** Every reason the inventory finds to refuse a frozen process, one line each (`smaps`: its mappings, as parseSmaps read them). */
export function inventoryReasons(pid: number, fds: readonly ProcFd[], smaps: readonly RawMapping[]): string[] {
  return [...statusReasons(pid), ...namespaceReasons(pid), ...rootReasons(pid), ...labelReasons(pid), ...readLocks(pid, fds).refusals, ...readTimers(pid).refusals, ...pkeyReasons(pid, smaps), ...dispatchReasons(pid)];
}
