// A signalfd: the set of signals it reads. Recognised by its link `anon_inode:[signalfd]`; fdinfo
// gives the mask (`sigmask`, 64 bits in hex). Made again by signalfd4(-1, mask, 8, flags). The
// signals pending stay with the process (its pending sets are the restart's, docs/state.md): a
// signalfd reads them from there.
import { CLASS_SINGLE } from '../abi.js';
import { badInput } from '../errors.js';
import { O_ACCMODE, O_APPEND, O_CLOEXEC, O_NONBLOCK, O_RDWR } from '../model/fdtable.js';
import { get, show } from '../model/json.js';
import { no, oddFlags } from './common.js';
import type { KindModule } from './kind.js';

const SIGNALFD_FLAGS = O_RDWR | O_NONBLOCK | O_APPEND;
/** SIGKILL and SIGSTOP: signalfd4 drops them from any mask. */
const UNBLOCKABLE = (1n << 8n) | (1n << 18n);

function maskBuffer(mask: string): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(`0x${mask}`));
  return b;
}

/** Signal numbers of a mask, for people. */
export function signalList(mask: string): string {
  const m = BigInt(`0x${mask}`);
  const out: number[] = [];
  for (let s = 1; s <= 64; s++) if (m & (1n << BigInt(s - 1))) out.push(s);
  return out.length ? out.join(',') : 'none';
}

export const signalfd: KindModule<'signalfd'> = {
  kind: 'signalfd',
  recognise(e) {
    if (e.link !== 'anon_inode:[signalfd]') return null;
    const odd = oddFlags(e, SIGNALFD_FLAGS, 'signalfd');
    if (odd) return odd;
    const mask = e.info.get('sigmask');
    if (mask === undefined || !/^[0-9a-f]{16}$/.test(mask)) return no(e, 'signalfd', `its fdinfo mask ${JSON.stringify(mask)} is not the 16 hex digits this cr reads`);
    return { kind: 'signalfd', describe: (id) => ({ id, kind: 'signalfd', flags: e.flags, mask }) };
  },
  fields: ['mask'],
  parse(obj, where, id, flags) {
    if ((flags & O_ACCMODE) !== O_RDWR || (flags & ~SIGNALFD_FLAGS) !== 0) badInput(`${where}.flags: a signalfd is O_RDWR with at most O_NONBLOCK and O_APPEND`);
    const mask = get(obj, 'mask');
    if (typeof mask !== 'string' || !/^[0-9a-f]{16}$/.test(mask)) badInput(`${where}.mask: expected 16 lowercase hex digits, got ${show(mask)}`);
    if ((BigInt(`0x${mask}`) & UNBLOCKABLE) !== 0n) badInput(`${where}.mask: SIGKILL and SIGSTOP are never in a signalfd's mask`);
    return { id, kind: 'signalfd', flags, mask };
  },
  creation: (d) => ({ cls: CLASS_SINGLE, seek: false, callFlags: d.flags & O_NONBLOCK, after: O_RDWR | (d.flags & O_NONBLOCK) }),
  create(d, cloexec, fd, q) {
    q.call('signalfd4', [-1n, q.put(maskBuffer(d.mask)), 8n, BigInt((d.flags & O_NONBLOCK) | (cloexec ? O_CLOEXEC : 0))], BigInt(fd), `signalfd4(-1, {${signalList(d.mask)}}, 8, ${d.flags & O_NONBLOCK ? 'SFD_NONBLOCK' : '0'})`);
  },
  createText: (d, cloexec) => `signalfd4(-1, {${signalList(d.mask)}}, ${[d.flags & O_NONBLOCK ? 'SFD_NONBLOCK' : '', cloexec ? 'SFD_CLOEXEC' : ''].filter(Boolean).join('|') || '0'})`,
  simCreate: (proc, d, cloexec) => proc.signalfd4(BigInt(`0x${d.mask}`), (d.flags & O_NONBLOCK) | (cloexec ? O_CLOEXEC : 0)),
  simCheck: (d, sim) => (sim.mask === BigInt(`0x${d.mask}`) ? null : `has mask ${sim.mask.toString(16)}, the image says ${d.mask}`),
  detail: (d) => `signals ${signalList(d.mask)}`,
  diff: (a, b) => (a.mask === b.mask ? [] : [`signals ${signalList(a.mask)} in A, ${signalList(b.mask)} in B`]),
};
