// Setting the image's file locks and leases again in the husk, each through the fd it was held
// through (so flock and OFD locks land on the same open file description), with the image's
// credentials (a lease needs the file's owner or CAP_LEASE) and late: a POSIX lock is dropped
// when the process closes any fd of its file, and restart opens and closes files up to here.
// Never waits: a lock another process holds now fails the restart with one line naming it.
import { CrError } from '../errors.js';
import type { FileLock, ProcessHead } from '../image/process-head.js';
import { SYS } from '../inject/syscalls.js';
import type { Husk } from './husk.js';

const LOCK_SH = 1n;
const LOCK_EX = 2n;
const LOCK_NB = 4n;
const F_SETLK = 6n;
const F_OFD_SETLK = 37n;
const F_SETLEASE = 1024n;
const F_RDLCK = 0;
const F_WRLCK = 1;
const SEEK_SET = 0;
const EAGAIN = -11n;
const EACCES = -13n;
/** struct flock on x86_64: l_type, l_whence (shorts), l_start, l_len (off_t), l_pid */
const FLOCK_BYTES = 32;

const describe = (l: FileLock): string => {
  const range = l.kind === 'posix' || l.kind === 'ofd' ? ` on bytes ${l.start}..${l.end ?? 'EOF'}` : '';
  const name = { flock: 'flock', posix: 'POSIX', ofd: 'OFD', lease: 'lease' }[l.kind];
  return `its ${l.write ? 'write' : 'read'} ${name} ${l.kind === 'lease' ? '' : 'lock'}${range}`.replace('  ', ' ');
};

function flockStruct(l: FileLock): Buffer {
  const b = Buffer.alloc(FLOCK_BYTES);
  b.writeInt16LE(l.write ? F_WRLCK : F_RDLCK, 0);
  b.writeInt16LE(SEEK_SET, 2);
  b.writeBigInt64LE(BigInt(l.start), 8);
  // l_len 0: to the end of the file, however it grows
  b.writeBigInt64LE(l.end === null ? 0n : BigInt(l.end - l.start + 1), 16);
  return b;
}

/** Set every lock of the image; throws a CrError naming the first one that cannot be had. */
export function setLocks(husk: Husk, head: ProcessHead): void {
  for (const l of head.locks) {
    const fd = BigInt(l.fd);
    let r: bigint;
    switch (l.kind) {
      case 'flock':
        r = husk.syscall(SYS.flock, fd, (l.write ? LOCK_EX : LOCK_SH) | LOCK_NB);
        break;
      case 'posix':
        r = husk.syscall(SYS.fcntl, fd, F_SETLK, husk.put(flockStruct(l)));
        break;
      case 'ofd':
        r = husk.syscall(SYS.fcntl, fd, F_OFD_SETLK, husk.put(flockStruct(l)));
        break;
      case 'lease':
        r = husk.syscall(SYS.fcntl, fd, F_SETLEASE, BigInt(l.write ? F_WRLCK : F_RDLCK));
        break;
      default: {
        const never: never = l.kind;
        throw new Error(`unknown lock kind ${String(never)}`);
      }
    }
    husk.reset();
    if (r === 0n) continue;
    if (r === EAGAIN || r === EACCES) throw new CrError(`fd ${l.fd}: ${describe(l)} conflicts with one another process holds now`);
    throw new CrError(`fd ${l.fd}: ${describe(l)} cannot be set again (errno ${-r})`);
  }
}
