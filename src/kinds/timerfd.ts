// A timerfd: a clock, its settime flags, the time to the next expiry, the interval, and the
// expirations counted but not read. Recognised by its link `anon_inode:[timerfd]`. fdinfo shows
// the clock, ticks and flags, but for an interval timer that expired and was not read it shows
// neither the next expiry nor the periods since: dump reads the timer through a copy of its
// description in cr (pidfd_getfd, timerfd_gettime), which forwards it and counts those periods
// into its ticks as the program's own read would, and then reads fdinfo of that copy.
//
// Time between dump and restore, per clock: a relative timer (no TFD_TIMER_ABSTIME, any clock)
// resumes with the time it had left at dump; a TFD_TIMER_ABSTIME timer keeps its absolute expiry
// on its clock (CLOCK_REALTIME: wall time; CLOCK_MONOTONIC/BOOTTIME: this boot's), so one due
// while the process was dumped fires at once on restore with the periods missed counted. Made
// again by timerfd_create, timerfd_settime and, for ticks, ioctl(TFD_IOC_SET_TICKS).
import { closeSync, readFileSync } from 'node:fs';
import { pidfdGetfd, pidfdOpen } from '../../bridge/pidfd.js';
import { clockGettime, timerfdGettime } from '../../bridge/timerfd.js';
import { CLASS_SINGLE } from '../abi.js';
import { badInput } from '../errors.js';
import { O_ACCMODE, O_APPEND, O_CLOEXEC, O_NONBLOCK, O_RDWR } from '../model/fdtable.js';
import { get, integer, show } from '../model/json.js';
import { no, oddFlags } from './common.js';
import type { KindModule } from './kind.js';

const TIMERFD_FLAGS = O_RDWR | O_NONBLOCK | O_APPEND;
/** The clocks timerfd_create takes: REALTIME, MONOTONIC, BOOTTIME, REALTIME_ALARM, BOOTTIME_ALARM. */
const CLOCKS: Record<number, string> = { 0: 'CLOCK_REALTIME', 1: 'CLOCK_MONOTONIC', 7: 'CLOCK_BOOTTIME', 8: 'CLOCK_REALTIME_ALARM', 9: 'CLOCK_BOOTTIME_ALARM' };
export const TFD_TIMER_ABSTIME = 1;
export const TFD_TIMER_CANCEL_ON_SET = 2;
/** _IOW('T', 0, u64) */
const TFD_IOC_SET_TICKS = 0x40085400n;
const NS = 1_000_000_000n;
/** The largest time timerfd_settime takes: a timespec's seconds are 64-bit, kept here below 2^63 ns. */
const MAX_NS = 2n ** 63n - 1n;

/** ns as decimal text, the image's form (beyond what a JSON number holds exactly). */
function parseNs(value: unknown, where: string): string {
  if (typeof value !== 'string' || !/^(0|[1-9][0-9]{0,18})$/.test(value) || BigInt(value) > MAX_NS) {
    badInput(`${where}: expected nanoseconds below 2^63 as a decimal string, got ${show(value)}`);
  }
  return value;
}

const seconds = (ns: string): string => {
  const n = BigInt(ns);
  const frac = (n % NS).toString().padStart(9, '0').replace(/0+$/, '');
  return `${n / NS}${frac ? `.${frac}` : ''} s`;
};

function timespecs(value: bigint, interval: bigint): Buffer {
  const its = Buffer.alloc(32); // struct itimerspec { it_interval, it_value }
  its.writeBigInt64LE(interval / NS, 0);
  its.writeBigInt64LE(interval % NS, 8);
  its.writeBigInt64LE(value / NS, 16);
  its.writeBigInt64LE(value % NS, 24);
  return its;
}

/** The timer read through a copy of its description in cr: exact ticks, the next expiry, the clock's time then. */
function readTimer(pid: number, fd: number, clock: number): { value: bigint; interval: bigint; now: bigint; ticks: bigint; settime: number } {
  const pidfd = pidfdOpen(pid);
  try {
    const mine = pidfdGetfd(pidfd, fd);
    try {
      const t = timerfdGettime(mine);
      const now = clockGettime(clock);
      const text = readFileSync(`/proc/self/fdinfo/${mine}`, 'latin1');
      const ticks = /^ticks:\s*(\d+)$/m.exec(text)?.[1];
      const settime = /^settime flags:\s*([0-7]+)$/m.exec(text)?.[1];
      if (ticks === undefined || settime === undefined) throw new Error(`timerfd fdinfo without ticks or settime flags: ${JSON.stringify(text.slice(0, 200))}`);
      return { ...t, now, ticks: BigInt(ticks), settime: parseInt(settime, 8) };
    } finally {
      closeSync(mine);
    }
  } finally {
    closeSync(pidfd);
  }
}

export const timerfd: KindModule<'timerfd'> = {
  kind: 'timerfd',
  recognise(e) {
    if (e.link !== 'anon_inode:[timerfd]') return null;
    const odd = oddFlags(e, TIMERFD_FLAGS, 'timerfd');
    if (odd) return odd;
    const clock = Number(e.info.get('clockid'));
    if (!(clock in CLOCKS)) return no(e, 'timerfd', `its clock ${e.info.get('clockid')} is not one timerfd_create takes here`);
    return {
      kind: 'timerfd',
      describe: (id) => ({ id, kind: 'timerfd', flags: e.flags, clock, settime: 0, value: '0', interval: '0', ticks: 0 }),
      resolve(d, { pid }) {
        if (d.kind !== 'timerfd') return null;
        const t = readTimer(pid, e.fd, clock);
        if (t.ticks > BigInt(Number.MAX_SAFE_INTEGER)) return no(e, 'timerfd', `its ${t.ticks} expirations are beyond 2^53`);
        if ((t.settime & ~(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET)) !== 0) return no(e, 'timerfd', `settime flags 0o${t.settime.toString(8)} cr does not know`);
        d.settime = t.settime;
        // An absolute timer keeps its expiry on its clock; a relative one the time it has left.
        d.value = String(t.value > 0n && (t.settime & TFD_TIMER_ABSTIME) !== 0 ? t.now + t.value : t.value);
        d.interval = String(t.interval);
        d.ticks = Number(t.ticks);
        return null;
      },
    };
  },
  fields: ['clock', 'settime', 'value', 'interval', 'ticks'],
  parse(obj, where, id, flags) {
    if ((flags & O_ACCMODE) !== O_RDWR || (flags & ~TIMERFD_FLAGS) !== 0) badInput(`${where}.flags: a timerfd is O_RDWR with at most O_NONBLOCK and O_APPEND`);
    const clock = integer(get(obj, 'clock'), `${where}.clock`, 0, 9);
    if (!(clock in CLOCKS)) badInput(`${where}.clock: ${clock} is not a clock timerfd_create takes (${Object.entries(CLOCKS).map(([n, s]) => `${n} ${s}`).join(', ')})`);
    const settime = integer(get(obj, 'settime'), `${where}.settime`, 0, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET);
    if (settime === TFD_TIMER_CANCEL_ON_SET || ((settime & TFD_TIMER_CANCEL_ON_SET) !== 0 && clock !== 0 && clock !== 8)) {
      badInput(`${where}.settime: TFD_TIMER_CANCEL_ON_SET goes with TFD_TIMER_ABSTIME on a CLOCK_REALTIME clock only`);
    }
    const value = parseNs(get(obj, 'value'), `${where}.value`);
    const interval = parseNs(get(obj, 'interval'), `${where}.interval`);
    const ticks = integer(get(obj, 'ticks'), `${where}.ticks`, 0, Number.MAX_SAFE_INTEGER);
    return { id, kind: 'timerfd', flags, clock, settime, value, interval, ticks };
  },
  creation: (d) => ({ cls: CLASS_SINGLE, seek: false, callFlags: d.flags & O_NONBLOCK, after: O_RDWR | (d.flags & O_NONBLOCK) }),
  create(d, cloexec, fd, q) {
    q.call('timerfd_create', [BigInt(d.clock), BigInt((d.flags & O_NONBLOCK) | (cloexec ? O_CLOEXEC : 0))], BigInt(fd));
    if (d.value !== '0' || d.interval !== '0' || d.settime !== 0) {
      const its = q.put(timespecs(BigInt(d.value), BigInt(d.interval)));
      q.call('timerfd_settime', [BigInt(fd), BigInt(d.settime), its, 0n], 0n, `timerfd_settime(${fd}, ${d.settime}, {${seconds(d.value)}, every ${seconds(d.interval)}})`);
    }
    if (d.ticks > 0) {
      const ticks = Buffer.alloc(8);
      ticks.writeBigUInt64LE(BigInt(d.ticks));
      q.call('ioctl', [BigInt(fd), TFD_IOC_SET_TICKS, q.put(ticks)], 0n, `ioctl(${fd}, TFD_IOC_SET_TICKS, ${d.ticks})`);
    }
  },
  createText: (d, cloexec) => {
    const flags = [d.flags & O_NONBLOCK ? 'TFD_NONBLOCK' : '', cloexec ? 'TFD_CLOEXEC' : ''].filter(Boolean).join('|') || '0';
    const armed = d.value !== '0' || d.interval !== '0' || d.settime !== 0 ? ` + settime(${seconds(d.value)}${d.settime & TFD_TIMER_ABSTIME ? ' absolute' : ''}, every ${seconds(d.interval)})` : '';
    return `timerfd_create(${CLOCKS[d.clock]}, ${flags})${armed}${d.ticks ? ` + ticks ${d.ticks}` : ''}`;
  },
  simCreate(proc, d, cloexec) {
    const fd = proc.timerfdCreate(d.clock, (d.flags & O_NONBLOCK) | (cloexec ? O_CLOEXEC : 0));
    if (d.value !== '0' || d.interval !== '0' || d.settime !== 0) proc.timerfdSettime(fd, d.settime, BigInt(d.value), BigInt(d.interval));
    if (d.ticks > 0) proc.timerfdSetTicks(fd, BigInt(d.ticks));
    return fd;
  },
  simCheck(d, sim) {
    const t = sim.timer;
    if (t === null) return 'is no timer';
    const got = `clock ${t.clock}, settime ${t.settime}, value ${t.value}, interval ${t.interval}, ticks ${t.ticks}`;
    const want = `clock ${d.clock}, settime ${d.settime}, value ${d.value}, interval ${d.interval}, ticks ${d.ticks}`;
    return got === want ? null : `has ${got}, the image says ${want}`;
  },
  detail: (d) =>
    `${CLOCKS[d.clock]}${d.value === '0' ? ', disarmed' : d.settime & TFD_TIMER_ABSTIME ? `, at ${seconds(d.value)}` : `, in ${seconds(d.value)}`}${d.interval !== '0' ? `, every ${seconds(d.interval)}` : ''}${d.settime & TFD_TIMER_CANCEL_ON_SET ? ', cancel on set' : ''}${d.ticks ? `, ${d.ticks} unread` : ''}`,
  diff(a, b) {
    const out: string[] = [];
    if (a.clock !== b.clock) out.push(`clock ${CLOCKS[a.clock]} in A, ${CLOCKS[b.clock]} in B`);
    if (a.settime !== b.settime) out.push(`settime flags ${a.settime} in A, ${b.settime} in B`);
    if (a.value !== b.value) out.push(`expiry ${seconds(a.value)} in A, ${seconds(b.value)} in B`);
    if (a.interval !== b.interval) out.push(`interval ${seconds(a.interval)} in A, ${seconds(b.interval)} in B`);
    if (a.ticks !== b.ticks) out.push(`unread expirations ${a.ticks} in A, ${b.ticks} in B`);
    return out;
  },
};
