// Per-process state /proc shows a tracer: memory-descriptor fields, auxv, cwd (removed or not), umask,
// personality, credentials, resource limits, the executable, and the vdso's bytes (to know the
// restarting kernel's vdso is the same).
import { closeSync, openSync, readlinkSync, readSync, statSync } from 'node:fs';
import { sha256 } from '../../bridge/sha256.js';
import type { Mapping, MmFields, ProcessHead } from '../image/process-head.js';
import { readLimits } from '../proc/limits.js';
import { readCreds } from '../proc/process.js';
import { readProc, readProcBytes } from '../proc/read.js';

/** RLIMIT_CPU .. RLIMIT_RTTIME */
const RLIMIT_COUNT = 16;

/** The mm fields /proc/PID/stat shows (to a tracer); brk comes from the process itself. */
export function readMmFields(pid: number, brk: number): MmFields {
  const stat = readProc(`/proc/${pid}/stat`);
  // Field n (1-based, proc(5)) after the parenthesised comm, which may hold spaces.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).trim().split(' ');
  const field = (n: number): number => Number(rest[n - 3]);
  return {
    startCode: field(26),
    endCode: field(27),
    startStack: field(28),
    startData: field(45),
    endData: field(46),
    startBrk: field(47),
    brk,
    argStart: field(48),
    argEnd: field(49),
    envStart: field(50),
    envEnd: field(51),
  };
}

function statusField(text: string, name: string): string {
  const m = new RegExp(`^${name}:[ \\t]*(.*)$`, 'm').exec(text);
  if (!m) throw new Error(`/proc status has no ${name} line`);
  return m[1]!.trim();
}

/**
 * The working directory: its path and, when it was removed, its permission bits. /proc adds
 * ` (deleted)` to a removed one's path; a directory only named so still has links.
 */
function readCwd(pid: number): Pick<ProcessHead, 'cwd' | 'cwdRemoved'> {
  const link = readlinkSync(`/proc/${pid}/cwd`);
  const st = statSync(`/proc/${pid}/cwd`);
  if (st.nlink !== 0 || !link.endsWith(DELETED)) return { cwd: link, cwdRemoved: null };
  return { cwd: link.slice(0, -DELETED.length), cwdRemoved: st.mode & 0o7777 };
}
const DELETED = ' (deleted)';

export function readTask(pid: number): Pick<ProcessHead, 'exe' | 'cwd' | 'cwdRemoved' | 'umask' | 'personality' | 'creds' | 'rlimits' | 'auxv'> {
  const status = readProc(`/proc/${pid}/status`);
  let exe: ProcessHead['exe'] = null;
  try {
    const path = readlinkSync(`/proc/${pid}/exe`);
    const st = statSync(`/proc/${pid}/exe`);
    if (!path.endsWith(' (deleted)')) exe = { path, dev: st.dev, ino: st.ino };
  } catch {
    // no executable (a kernel thread would not get here); restart leaves the husk's link
  }
  const rlimits = readLimits(pid);
  if (rlimits.length !== RLIMIT_COUNT) throw new Error(`/proc/${pid}/limits has ${rlimits.length} limits, not ${RLIMIT_COUNT}`);
  return {
    exe,
    ...readCwd(pid),
    umask: parseInt(statusField(status, 'Umask'), 8),
    personality: parseInt(readProc(`/proc/${pid}/personality`).trim(), 16),
    creds: readCreds(pid),
    rlimits,
    auxv: readProcBytes(`/proc/${pid}/auxv`),
  };
}

/** sha256 of the process's [vdso] bytes, or null when it has none. */
export function vdsoDigest(pid: number, mappings: Mapping[]): Buffer | null {
  const vdso = mappings.find((m) => m.kind === 'vdso');
  if (!vdso) return null;
  const buf = Buffer.alloc(vdso.end - vdso.start);
  const fd = openSync(`/proc/${pid}/mem`, 'r');
  try {
    if (readSync(fd, buf, 0, buf.length, vdso.start) !== buf.length) throw new Error(`pid ${pid}: short read of its vdso`);
  } finally {
    closeSync(fd);
  }
  return sha256(buf);
}
