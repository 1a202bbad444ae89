// Everything of the image's but memory, fds and registers, put into the husk by injected calls:
// the mm fields (prctl PR_SET_MM_MAP, which needs no CAP_SYS_RESOURCE) with auxv and executable,
// personality, umask, cwd, name, resource limits, signal actions, the alternate signal stack,
// rseq, the robust futex list, clear_child_tid, pending signals, the credentials,
// no_new_privs, and last the interval timers.
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import { constants } from 'node:os';
import { SyscallError } from '../../bridge/errno.js';
import { encodeRlimit, RLIMIT_NOFILE } from '../../bridge/rlimit.js';
import { SIGCHLD, SIGKILL, SIGSTOP } from '../../bridge/signal.js';
import { CrError } from '../errors.js';
import { O_CLOEXEC, O_NONBLOCK, O_RDONLY } from '../model/fdtable.js';
import { SIGACTION_BYTES } from '../image/process-format.js';
import type { MmFields, ProcessHead, Rlimit64 } from '../image/process-head.js';
import { fileAt, mismatch, OPENED_SCRATCH_BYTES } from '../inject/opened.js';
import { readCreds } from '../proc/process.js';
import type { Husk } from './husk.js';
import { HUSK_PROGRAM, u64 } from './husk.js';
import { SYS, PR_SET_DUMPABLE, PR_SET_MM, PR_SET_MM_MAP, PR_SET_NAME, PR_SET_NO_NEW_PRIVS, SS_DISABLE, SS_ONSTACK } from '../inject/syscalls.js';
import { printable } from '../printable.js';
import { randomHex } from '../random-name.js';

const RLIM_INFINITY = 0xffffffffffffffffn;
const PRCTL_MM_MAP_BYTES = 104;
/** no exe_fd in struct prctl_mm_map: keep the executable link as it is */
const NO_EXE = 0xffffffff;
const EPERM = BigInt(constants.errno.EPERM);

/** struct prctl_mm_map */
function mmMap(mm: MmFields, auxv: bigint, auxvSize: number, exeFd: number): Buffer {
  const b = Buffer.alloc(PRCTL_MM_MAP_BYTES);
  const order: Array<keyof MmFields> = ['startCode', 'endCode', 'startData', 'endData', 'startBrk', 'brk', 'startStack', 'argStart', 'argEnd', 'envStart', 'envEnd'];
  order.forEach((k, i) => b.writeBigUInt64LE(BigInt(mm[k]), i * 8));
  b.writeBigUInt64LE(auxv, 88);
  b.writeUInt32LE(auxvSize, 96);
  b.writeUInt32LE(exeFd, 100);
  return b;
}

/**
 * Set the mm fields, auxv and (when the image's executable is still there, the same file) the
 * /proc/PID/exe link. Returns a warning when the link could not be set.
 */
export function setMm(husk: Husk, head: ProcessHead): string | null {
  let exeFd = NO_EXE;
  let warning: string | null = null;
  const exe = head.exe;
  if (exe) {
    let same = false;
    try {
      const st = statSync(exe.path);
      same = st.dev === exe.dev && st.ino === exe.ino;
    } catch {
      // gone
    }
    if (same) {
      // Judged again on the fd the husk opened (the path may have changed since cr looked);
      // O_NONBLOCK so a path that became a FIFO cannot hold the husk.
      const fd = husk.callNamed('the executable', `open("${printable(exe.path, '"')}", O_RDONLY)`, SYS.open, husk.put(exe.path), BigInt(O_RDONLY | O_NONBLOCK | O_CLOEXEC), 0n);
      same = mismatch(fileAt(husk, fd, husk.scratch(OPENED_SCRATCH_BYTES)), { type: 'regular file', inode: exe }) === null;
      if (same) exeFd = Number(fd);
      else husk.syscall(SYS.close, fd);
    }
    if (!same) warning = `${printable(exe.path)} is not the executable it was at dump time: /proc/PID/exe keeps the husk's`;
  }
  try {
    const auxv = husk.put(head.auxv);
    const setMap = (fd: number): bigint =>
      husk.syscall(SYS.prctl, BigInt(PR_SET_MM), BigInt(PR_SET_MM_MAP), husk.put(mmMap(head.mm, auxv, head.auxv.length, fd)), BigInt(PRCTL_MM_MAP_BYTES), 0n);
    let result = setMap(exeFd);
    // Setting the exe link needs CAP_CHECKPOINT_RESTORE (or CAP_SYS_ADMIN); the rest of the map
    // needs no capability. Without it, restore everything but the link, and say so.
    if (result === -EPERM && exeFd !== NO_EXE) {
      result = setMap(NO_EXE);
      warning = `setting /proc/PID/exe needs CAP_CHECKPOINT_RESTORE: it stays ${HUSK_PROGRAM}, the program the restart started from`;
    }
    if (result < 0n) throw new SyscallError(`prctl(PR_SET_MM, PR_SET_MM_MAP) in the husk (pid ${husk.pid})`, Number(-result));
  } finally {
    if (exeFd !== NO_EXE) husk.syscall(SYS.close, BigInt(exeFd));
    husk.reset();
  }
  return warning;
}

const rlimitBytes = (r: Rlimit64): Buffer => encodeRlimit({ soft: r.soft ?? Infinity, hard: r.hard ?? Infinity });

/** A hard limit above the husk's: needs CAP_SYS_RESOURCE. */
class RaiseDenied extends Error {}

/**
 * The image's resource limits, in one batch; one refused with EPERM (a hard limit above the
 * husk's, which needs CAP_SYS_RESOURCE) gets the husk's hard limit instead, with a warning, and
 * the rest go on in the next batch.
 */
function setRlimits(husk: Husk, limits: Rlimit64[]): string[] {
  const warnings: string[] = [];
  let from = 0;
  while (from < limits.length) {
    const q = husk.queue();
    let at = from;
    for (let i = from; i < limits.length; i++) {
      const r = limits[i]!;
      const limit = q.put(rlimitBytes(r));
      q.add(`prlimit64(0, ${r.resource})`, SYS.prlimit64, [0n, BigInt(r.resource), limit, 0n], 0n, (result) => {
        at = i;
        return result === -EPERM ? new RaiseDenied() : husk.failure(`prlimit64(0, ${r.resource})`, result);
      });
    }
    try {
      q.run();
      break;
    } catch (err) {
      if (!(err instanceof RaiseDenied)) throw err;
    }
    warnings.push(keepHardLimit(husk, limits[at]!));
    from = at + 1;
  }
  return warnings;
}

/** The husk's own hard limit for r's resource, and r's soft one under it; the warning. */
function keepHardLimit(husk: Husk, r: Rlimit64): string {
  const old = husk.scratch(16);
  husk.call('prlimit64', SYS.prlimit64, 0n, BigInt(r.resource), 0n, old);
  const hard = husk.read(old + 8n, 8).readBigUInt64LE(0);
  const soft = r.soft === null || BigInt(r.soft) > hard ? hard : BigInt(r.soft);
  husk.call('prlimit64', SYS.prlimit64, 0n, BigInt(r.resource), husk.put(Buffer.concat([u64(soft), u64(hard)])), 0n);
  husk.reset();
  return `resource limit ${r.resource}: the hard limit ${r.hard ?? 'unlimited'} cannot be raised without CAP_SYS_RESOURCE; it stays ${hard === RLIM_INFINITY ? 'unlimited' : hard}`;
}

/** While mappings are rebuilt the husk opens files: let it use any fd number below the hard limit. */
export function openNofile(husk: Husk): void {
  const old = husk.scratch(16);
  husk.call('prlimit64', SYS.prlimit64, 0n, BigInt(RLIMIT_NOFILE), 0n, old);
  const hard = husk.read(old + 8n, 8);
  husk.call('prlimit64', SYS.prlimit64, 0n, BigInt(RLIMIT_NOFILE), husk.put(Buffer.concat([hard, hard])), 0n);
  husk.reset();
}

/**
 * A working directory removed before the dump: the husk makes an empty directory beside where it
 * was (a new name: something may have taken the old one), enters it, gives it the recorded
 * permission bits and removes it, so the process is again in a removed directory (getcwd fails
 * with ENOENT, nothing can be created in it). All as the image's author, who needs write
 * permission on the parent, as the program did to make it; a parent gone too fails the restart.
 */
function enterRemovedDirectory(husk: Husk, q: ReturnType<Husk['queue']>, cwd: string, mode: number): void {
  const stand = `${dirname(cwd)}/.cr-cwd-${randomHex(6)}`;
  const failed = (call: string) => (r: bigint) =>
    new CrError(`the working directory (removed when dumped, made again beside ${printable(cwd)}): ${husk.failure(`${call}("${printable(stand, '"')}")`, r).message}`);
  const at = q.put(stand, 4);
  q.add('mkdir', SYS.mkdir, [at, 0o700n], 0n, failed('mkdir'));
  q.add('chdir', SYS.chdir, [at], 0n, failed('chdir'));
  q.add('chmod', SYS.chmod, [at, BigInt(mode)], 0n, failed('chmod'));
  q.add('rmdir', SYS.rmdir, [at], 0n, failed('rmdir'));
}

/** Personality, umask, cwd, name and resource limits, in batches. Returns warnings. */
export function setTask(husk: Husk, head: ProcessHead): string[] {
  const q = husk.queue();
  if (head.personality !== 0) q.add('personality', SYS.personality, [BigInt(head.personality)]);
  q.add('umask', SYS.umask, [BigInt(head.umask)]);
  if (head.cwdRemoved === null) {
    const chdir = `chdir("${printable(head.cwd, '"')}")`;
    q.add('chdir', SYS.chdir, [q.put(head.cwd)], 0n, (r) => new CrError(`the working directory: ${husk.failure(chdir, r).message}`));
  } else {
    enterRemovedDirectory(husk, q, head.cwd, head.cwdRemoved);
  }
  // comm is at most 15 bytes; the kernel truncates
  q.add('prctl(PR_SET_NAME)', SYS.prctl, [BigInt(PR_SET_NAME), q.put(head.process.comm)], 0n);
  q.run();
  return setRlimits(husk, head.rlimits);
}

/** Signal actions, the alternate signal stack, rseq, robust list, clear_child_tid: one batch. */
export function setSignalsAndThreadState(husk: Husk, head: ProcessHead): void {
  const q = husk.queue();
  for (let sig = 1; sig <= 64; sig++) {
    if (sig === SIGKILL || sig === SIGSTOP) continue;
    const act = head.signals.actions.subarray((sig - 1) * SIGACTION_BYTES, sig * SIGACTION_BYTES);
    if (act.every((b) => b === 0)) continue; // SIG_DFL, no flags, empty mask: what the husk has
    q.add('rt_sigaction', SYS.rt_sigaction, [BigInt(sig), q.put(Buffer.from(act)), 0n, 8n], 0n);
  }
  const ss = head.signals.altstack;
  if (!(ss.flags & SS_DISABLE)) {
    const b = Buffer.alloc(24);
    b.writeBigUInt64LE(BigInt(ss.sp), 0);
    b.writeInt32LE(ss.flags & ~SS_ONSTACK, 8);
    b.writeBigUInt64LE(BigInt(ss.size), 16);
    q.add('sigaltstack', SYS.sigaltstack, [q.put(b), 0n], 0n);
  }
  if (head.rseq) q.add('rseq', SYS.rseq, [BigInt(head.rseq.pointer), BigInt(head.rseq.size), 0n, BigInt(head.rseq.signature)], 0n);
  if (head.robustList) q.add('set_robust_list', SYS.set_robust_list, [BigInt(head.robustList.head), BigInt(head.robustList.len)], 0n);
  if (head.tidAddress) q.add('set_tid_address', SYS.set_tid_address, [BigInt(head.tidAddress)]);
  q.run();
}

/**
 * The interval timers, as late as possible: ITIMER_REAL counts wall time, so every step of the
 * restart between this and the detach comes off the program's first expiry.
 */
export function setItimers(husk: Husk, head: ProcessHead): void {
  const q = husk.queue();
  head.itimers.forEach((t, which) => {
    if (t.intervalUs === 0 && t.valueUs === 0) return;
    const b = Buffer.alloc(32);
    const put = (us: number, at: number): void => {
      b.writeBigInt64LE(BigInt(Math.floor(us / 1e6)), at);
      b.writeBigInt64LE(BigInt(us % 1e6), at + 8);
    };
    put(t.intervalUs, 0);
    // Value 0 with an interval: ITIMER_REAL fired and its SIGALRM (pending, in the image) is not
    // dequeued yet, which is when the kernel re-arms it. setitimer with value 0 would disarm it
    // for good: arm it for one interval instead.
    put(t.valueUs === 0 ? t.intervalUs : t.valueUs, 16);
    q.add('setitimer', SYS.setitimer, [BigInt(which), q.put(b), 0n], 0n);
  });
  q.run();
}

/** Queue the image's pending signals again (all signals are blocked in the husk, so they wait). */
/**
 * Take a pending SIGCHLD out of the husk (rt_sigtimedwait with a zero timeout: all its signals are
 * blocked, so it is there to take): the one its children's exits queued while it was a husk.
 */
export function drainSigchld(husk: Husk): void {
  const set = husk.put(u64(1n << BigInt(SIGCHLD - 1)));
  const zero = husk.put(Buffer.alloc(16));
  const r = husk.syscall(SYS.rt_sigtimedwait, set, 0n, zero, 8n);
  if (r !== BigInt(SIGCHLD) && r !== -BigInt(constants.errno.EAGAIN)) throw husk.failure('rt_sigtimedwait(SIGCHLD)', r);
  husk.reset();
}

export function queuePending(husk: Husk, head: ProcessHead): void {
  const q = husk.queue();
  const pid = BigInt(husk.pid);
  for (const p of head.signals.pending) {
    const sig = BigInt(p.info.readInt32LE(0));
    const info = q.put(p.info);
    // To itself a process may queue any si_code: the siginfo arrives as it was.
    if (p.shared) q.add('rt_sigqueueinfo', SYS.rt_sigqueueinfo, [pid, sig, info], 0n);
    else q.add('rt_tgsigqueueinfo', SYS.rt_tgsigqueueinfo, [pid, pid, sig, info], 0n);
  }
  q.run();
}

/**
 * Become the image's user and groups (checked against the image's author before the husk
 * existed: src/trust/head.ts), then read them back from /proc: setfsuid and setfsgid report no
 * error. All-root credentials (a root author's) leave the husk's own, cr's, but for the file-system
 * ids, put back to its effective ones. The last privileged step, one batch (setfsuid and setfsgid
 * give the old id, never an error).
 */
export function setCreds(husk: Husk, head: ProcessHead): void {
  const { uid, gid, groups } = head.creds;
  const allRoot = [...uid, ...gid, ...groups].every((id) => id === 0);
  const now = readCreds(husk.pid);
  const same = (a: number[], b: number[]): boolean => a.length === b.length && a.every((v, i) => v === b[i]);
  const want = allRoot ? { uid: [...now.uid.slice(0, 3), now.uid[1]!], gid: [...now.gid.slice(0, 3), now.gid[1]!], groups: now.groups } : head.creds;
  const q = husk.queue();
  if (allRoot) {
    // Only the fs ids can differ from cr's: the author's, taken for the opens (root's image: none were).
    q.add('setfsgid', SYS.setfsgid, [BigInt(want.gid[3]!)]);
    q.add('setfsuid', SYS.setfsuid, [BigInt(want.uid[3]!)]);
  } else if (!(same(now.uid, uid) && same(now.gid, gid) && same(now.groups, groups))) {
    // Only when they differ: a user restarting its own process has them already, and setgroups
    // would need CAP_SETGID even to set the same groups.
    const g = Buffer.alloc(Math.max(4, groups.length * 4));
    groups.forEach((id, i) => g.writeUInt32LE(id, i * 4));
    q.add('setgroups', SYS.setgroups, [BigInt(groups.length), q.put(g)]);
    q.add('setresgid', SYS.setresgid, [BigInt(gid[0]!), BigInt(gid[1]!), BigInt(gid[2]!)]);
    q.add('setfsgid', SYS.setfsgid, [BigInt(gid[3]!)]);
    q.add('setresuid', SYS.setresuid, [BigInt(uid[0]!), BigInt(uid[1]!), BigInt(uid[2]!)]);
    q.add('setfsuid', SYS.setfsuid, [BigInt(uid[3]!)]);
  }
  // Changing credentials clears the dumpable flag; the checkpointed process could be traced and dumped.
  q.add('prctl(PR_SET_DUMPABLE)', SYS.prctl, [BigInt(PR_SET_DUMPABLE), 1n]);
  q.run();
  const got = readCreds(husk.pid);
  if (!same(got.uid, want.uid) || !same(got.gid, want.gid) || !same([...got.groups].sort(), [...want.groups].sort())) {
    throw new CrError(`the husk (pid ${husk.pid}) has uids ${got.uid.join(' ')}, gids ${got.gid.join(' ')}, groups [${got.groups.join(' ')}] instead of the image's`);
  }
}

/** no_new_privs, which cannot be cleared again: after everything that might need privileges. */
export function setNoNewPrivs(husk: Husk, head: ProcessHead): void {
  if (head.noNewPrivs) husk.call('prctl(PR_SET_NO_NEW_PRIVS)', SYS.prctl, BigInt(PR_SET_NO_NEW_PRIVS), 1n, 0n, 0n, 0n);
}
