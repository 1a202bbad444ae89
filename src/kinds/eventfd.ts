// An eventfd: a 64-bit counter behind an anonymous inode. Recognised by its link
// `anon_inode:[eventfd]`; fdinfo gives its counter (eventfd-count, in hex) and its mode
// (eventfd-semaphore, Linux 6.7 on). Made again by one call (CLASS_SINGLE): eventfd2(0, flags)
// then one 8-byte write(2) of the counter, which a new counter of 0 always takes whole.
import { CLASS_SINGLE } from '../abi.js';
import { badInput } from '../errors.js';
import { O_ACCMODE, O_APPEND, O_CLOEXEC, O_NONBLOCK, O_RDWR } from '../model/fdtable.js';
import { boolean, get, integer } from '../model/json.js';
import { no, oddFlags } from './common.js';
import type { KindModule } from './kind.js';

/** EFD_SEMAPHORE (linux/eventfd.h); EFD_NONBLOCK and EFD_CLOEXEC are O_NONBLOCK and O_CLOEXEC. */
export const EFD_SEMAPHORE = 1;
/** What F_GETFL can show on an eventfd: eventfd2 gives O_RDWR and O_NONBLOCK, F_SETFL O_APPEND. */
const EVENTFD_FLAGS = O_RDWR | O_NONBLOCK | O_APPEND;

/** eventfd2's flags for a description. */
const callFlags = (d: { flags: number; semaphore: boolean }, cloexec: boolean): number =>
  (d.flags & O_NONBLOCK) | (d.semaphore ? EFD_SEMAPHORE : 0) | (cloexec ? O_CLOEXEC : 0);

export const eventfd: KindModule<'eventfd'> = {
  kind: 'eventfd',
  recognise(e) {
    if (e.link !== 'anon_inode:[eventfd]') return null;
    const odd = oddFlags(e, EVENTFD_FLAGS, 'eventfd');
    if (odd) return odd;
    const countText = e.info.get('eventfd-count');
    const semaphore = e.info.get('eventfd-semaphore');
    if (countText === undefined || !/^[0-9a-f]+$/i.test(countText) || semaphore === undefined) {
      return no(e, 'eventfd', 'this kernel does not show its counter and mode in fdinfo (eventfd-count, eventfd-semaphore: Linux 6.7)');
    }
    const count = BigInt(`0x${countText}`);
    if (count > BigInt(Number.MAX_SAFE_INTEGER)) return no(e, 'eventfd', `its counter ${count} is beyond 2^53`);
    return { kind: 'eventfd', describe: (id) => ({ id, kind: 'eventfd', flags: e.flags, count: Number(count), semaphore: semaphore === '1' }) };
  },
  fields: ['count', 'semaphore'],
  parse(obj, where, id, flags) {
    if ((flags & O_ACCMODE) !== O_RDWR || (flags & ~EVENTFD_FLAGS) !== 0) {
      badInput(`${where}.flags: an eventfd is O_RDWR with at most O_NONBLOCK and O_APPEND`);
    }
    const count = integer(get(obj, 'count'), `${where}.count`, 0, Number.MAX_SAFE_INTEGER);
    return { id, kind: 'eventfd', flags, count, semaphore: boolean(get(obj, 'semaphore'), `${where}.semaphore`) };
  },
  creation: (d) => ({ cls: CLASS_SINGLE, seek: false, callFlags: callFlags(d, false), after: O_RDWR | (d.flags & O_NONBLOCK) }),
  create(d, cloexec, fd, q) {
    q.call('eventfd2', [0n, BigInt(callFlags(d, cloexec))], BigInt(fd));
    if (d.count === 0) return;
    const value = Buffer.alloc(8);
    value.writeBigUInt64LE(BigInt(d.count));
    q.call('write', [BigInt(fd), q.put(value), 8n], 8n, `write(${fd}, <eventfd count ${d.count}>)`);
  },
  createText: (d, cloexec) => {
    const names = [d.flags & O_NONBLOCK ? 'EFD_NONBLOCK' : '', d.semaphore ? 'EFD_SEMAPHORE' : '', cloexec ? 'EFD_CLOEXEC' : ''].filter(Boolean);
    return `eventfd2(0, ${names.join('|') || '0'})${d.count ? ` + write(${d.count})` : ''}`;
  },
  simCreate(proc, d, cloexec) {
    const fd = proc.eventfd2(0, callFlags(d, cloexec));
    if (d.count > 0) proc.eventfdWrite(fd, BigInt(d.count));
    return fd;
  },
  simCheck(d, sim) {
    if (sim.count !== BigInt(d.count)) return `has count ${sim.count}, the image says ${d.count}`;
    if (sim.semaphore !== d.semaphore) return `is ${sim.semaphore ? '' : 'not '}a semaphore, the image says the opposite`;
    return null;
  },
  detail: (d) => `count ${d.count}${d.semaphore ? ', semaphore' : ''}`,
  diff(a, b) {
    const out: string[] = [];
    if (a.count !== b.count) out.push(`count ${a.count} in A, ${b.count} in B`);
    if (a.semaphore !== b.semaphore) out.push(`semaphore ${a.semaphore ? 'on' : 'off'} in A, ${b.semaphore ? 'on' : 'off'} in B`);
    return out;
  },
};
