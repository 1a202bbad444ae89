// The user database as the C library sees it (files, and whatever NSS adds: LDAP, sssd): a uid's
// passwd entry and the groups getgrouplist gives that user.
import { SyscallError } from './errno.js';
import { addressOf, libc } from './libc.js';

const PASSWD_BYTES = 48;
const PW_GID_AT = 20;
const ERANGE = 34;

export interface PasswdEntry {
  name: string;
  /** the primary group (pw_gid) */
  gid: number;
}

/** uid's passwd entry, or null when it has none. */
export function passwdOf(uid: number): PasswdEntry | null {
  for (let size = 4096; size <= 1 << 20; size *= 4) {
    const pwd = Buffer.alloc(PASSWD_BYTES);
    const buf = Buffer.alloc(size);
    const result = Buffer.alloc(8); // struct passwd *: NULL when there is no entry
    const err = libc.getpwuidR(uid, pwd, buf, size, result);
    if (err === ERANGE) continue;
    if (err !== 0) throw new SyscallError(`getpwuid_r(${uid})`, err);
    if (result.readBigUInt64LE(0) === 0n) return null;
    // pw_name points into buf
    const at = Number(pwd.readBigUInt64LE(0) - addressOf(buf));
    const name = buf.toString('utf8', at, buf.indexOf(0, at));
    return { name, gid: pwd.readUInt32LE(PW_GID_AT) };
  }
  throw new SyscallError(`getpwuid_r(${uid})`, ERANGE);
}

/** The groups of user `name` whose primary group is gid, gid included (getgrouplist(3)). */
export function groupListOf(name: string, gid: number): number[] {
  let groups = new Uint32Array(64);
  for (;;) {
    const n = new Int32Array([groups.length]);
    if (libc.getgrouplist(name, gid, groups, n) >= 0) return [...groups.subarray(0, n[0]!)];
    // -1: too small; n now holds how many there are
    groups = new Uint32Array(Math.max(n[0]!, groups.length * 2));
  }
}
