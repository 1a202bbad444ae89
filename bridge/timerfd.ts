// timerfd_gettime and clock_gettime, for reading a timerfd cr holds a copy of (pidfd_getfd).
import { check } from './errno.js';
import { libc } from './libc.js';

const SYS_clock_gettime = 228;
const SYS_timerfd_gettime = 287;

const ns = (b: Buffer, at: number): bigint => b.readBigInt64LE(at) * 1_000_000_000n + b.readBigInt64LE(at + 8);

/**
 * timerfd_gettime(fd): the time left to the next expiry and the interval, in ns. For an interval
 * timer that has expired and not been read, the kernel forwards it first and counts the periods
 * elapsed into its ticks (do_timerfd_gettime): fdinfo read after it is exact.
 */
export function timerfdGettime(fd: number): { value: bigint; interval: bigint } {
  const its = Buffer.alloc(32); // struct itimerspec { it_interval, it_value }
  check(libc.syscall(SYS_timerfd_gettime, 'int', fd, 'void *', its), () => `timerfd_gettime(${fd})`);
  return { interval: ns(its, 0), value: ns(its, 16) };
}

/** clock_gettime(clock), in ns. */
export function clockGettime(clock: number): bigint {
  const ts = Buffer.alloc(16);
  check(libc.syscall(SYS_clock_gettime, 'int', clock, 'void *', ts), () => `clock_gettime(${clock})`);
  return ns(ts, 0);
}
