// prlimit(2): read or set another process's resource limits.
import { check } from './errno.js';
import { libc } from './libc.js';

export const RLIMIT_NOFILE = 7;
const RLIM_INFINITY = 0xffffffffffffffffn;

/** Limits as numbers; RLIM_INFINITY is Infinity. */
export interface Rlimit {
  soft: number;
  hard: number;
}

const toNumber = (v: bigint): number => (v === RLIM_INFINITY ? Infinity : Number(v));
const toRaw = (v: number): bigint => (v === Infinity ? RLIM_INFINITY : BigInt(v));

/** struct rlimit64 as prlimit64(2) takes it (also written into a tracee for an injected call). */
export function encodeRlimit(limit: Rlimit): Buffer {
  const raw = Buffer.alloc(16);
  raw.writeBigUInt64LE(toRaw(limit.soft), 0);
  raw.writeBigUInt64LE(toRaw(limit.hard), 8);
  return raw;
}

/** Returns the old limits; sets newLimit when given. */
export function prlimit(pid: number, resource: number, newLimit?: Rlimit): Rlimit {
  const old = Buffer.alloc(16);
  const raw = newLimit ? encodeRlimit(newLimit) : null;
  check(
    libc.prlimit(pid, resource, raw, old),
    () => `prlimit(pid=${pid}, resource=${resource}${newLimit ? `, soft=${newLimit.soft}, hard=${newLimit.hard}` : ''})`,
  );
  return { soft: toNumber(old.readBigUInt64LE(0)), hard: toNumber(old.readBigUInt64LE(8)) };
}
