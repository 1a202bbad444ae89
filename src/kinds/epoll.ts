// An epoll instance: its interest list. Recognised by its link `anon_inode:[eventpoll]`; fdinfo
// gives one `tfd: events: data: pos: ino: sdev:` line per item. The kernel keys an item by the
// watched file *and* the fd number it was added with, and the file may since have been closed at
// that number and kept at another (dup'ed, moved): so each item names its target description,
// found with kcmp(KCMP_EPOLL_TFD) among the process's fds on the same inode, and keeps its number.
// Made again by epoll_create1 (CLASS_SINGLE); the items are links (src/plan/links.ts), added with
// epoll_ctl(EPOLL_CTL_ADD) once every description exists, the target put at the item's number
// for the call when it is not there. Readiness is the kernel's to find again: EPOLL_CTL_ADD polls
// the target, whose state (bytes, counter) is restored already.
import { kcmpEpollTfd } from '../../bridge/kcmp.js';
import { CLASS_SINGLE } from '../abi.js';
import { badInput } from '../errors.js';
import { O_ACCMODE, O_APPEND, O_CLOEXEC, O_NONBLOCK, O_RDWR, type Desc, type EpollDesc, type EpollItem } from '../model/fdtable.js';
import { array, fields, get, integer, object, show } from '../model/json.js';
import { no, oddFlags } from './common.js';
import type { KindModule, SimItem } from './kind.js';

const EPOLL_FLAGS = O_RDWR | O_NONBLOCK | O_APPEND;
const EPOLL_CTL_ADD = 1n;

/** uapi/linux/eventpoll.h */
const EV = {
  IN: 0x1, PRI: 0x2, OUT: 0x4, ERR: 0x8, HUP: 0x10, RDNORM: 0x40, RDBAND: 0x80, WRNORM: 0x100, WRBAND: 0x200,
  MSG: 0x400, RDHUP: 0x2000, EXCLUSIVE: 1 << 28, WAKEUP: 1 << 29, ONESHOT: 1 << 30, ET: 2 ** 31,
} as const;
/** epoll_ctl adds these to every ADD (fs/eventpoll.c): a disarmed EPOLLONESHOT item (only its private bits left) comes back with them. */
export const EPOLL_ALWAYS = EV.ERR | EV.HUP;
/** The bits EPOLLEXCLUSIVE may come with (EPOLLEXCLUSIVE_OK_BITS). */
const EXCLUSIVE_OK = EV.IN | EV.OUT | EV.ERR | EV.HUP | EV.WAKEUP | EV.ET | EV.EXCLUSIVE;
/** The kernel refuses nesting deeper than this (EP_MAX_NESTS). */
const MAX_NESTS = 4;
/** Items one image may give an epoll (the kernel's limit is max_user_watches, far higher: this bounds a bad image). */
const MAX_ITEMS = 1 << 20;

/** The events a restored item has: epoll_ctl's, EPOLLERR|EPOLLHUP added. */
export const restoredEvents = (events: number): number => (events | EPOLL_ALWAYS) >>> 0;

export function eventNames(events: number): string {
  const names = Object.entries(EV).filter(([, bit]) => (events & bit) !== 0 || (bit === EV.ET && events >= EV.ET)).map(([n]) => n);
  const known = Object.values(EV).reduce((a, b) => a | b, 0);
  const rest = (events & ~known) >>> 0;
  if (rest) names.push(`0x${rest.toString(16)}`);
  return names.join('|') || '0';
}

interface RawItem {
  tfd: number;
  events: number;
  data: string;
  ino: number;
}

/** fdinfo `tfd: %8d events: %8x data: %16llx  pos:%lli ino:%lx sdev:%x` lines. */
function parseItems(text: string): RawItem[] | null {
  const out: RawItem[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('tfd:')) continue;
    const m = /^tfd:\s+(\d+)\s+events:\s+([0-9a-f]+)\s+data:\s+([0-9a-f]+)\s+pos:\s*\d+\s+ino:\s*([0-9a-f]+)/.exec(line);
    if (!m) return null;
    out.push({ tfd: Number(m[1]), events: parseInt(m[2]!, 16) >>> 0, data: m[3]!.padStart(16, '0'), ino: parseInt(m[4]!, 16) });
  }
  return out;
}

const itemText = (i: EpollItem): string => `fd ${i.fd} (description ${i.target}) ${eventNames(i.events)} data 0x${i.data.replace(/^0+(?=.)/, '')}`;

function eventBuffer(item: EpollItem): Buffer {
  // struct epoll_event is packed on x86_64: __u32 events, __u64 data.
  const ev = Buffer.alloc(12);
  ev.writeUInt32LE(item.events, 0);
  ev.writeBigUInt64LE(BigInt(`0x${item.data}`), 4);
  return ev;
}

function parseItem(value: unknown, where: string): EpollItem {
  const obj = object(value, where);
  fields(obj, where, ['fd', 'target', 'events', 'data']);
  const fd = integer(get(obj, 'fd'), `${where}.fd`, 0, 2 ** 31 - 1);
  const target = integer(get(obj, 'target'), `${where}.target`, 0, 2 ** 31 - 1);
  const events = integer(get(obj, 'events'), `${where}.events`, 0, 0xffffffff);
  if ((events & EV.EXCLUSIVE) !== 0 && (events & ~EXCLUSIVE_OK) !== 0) {
    badInput(`${where}.events: EPOLLEXCLUSIVE with ${eventNames((events & ~EXCLUSIVE_OK) >>> 0)}, which epoll_ctl refuses`);
  }
  const data = get(obj, 'data');
  if (typeof data !== 'string' || !/^[0-9a-f]{16}$/.test(data)) badInput(`${where}.data: expected 16 lowercase hex digits, got ${show(data)}`);
  return { fd, target, events, data };
}

/**
 * What the kernel would refuse of these epolls' items among the image's descriptions: a target
 * that is not there or is the epoll itself, one (target, fd) twice, EPOLLEXCLUSIVE on an epoll,
 * a loop of epolls, nesting deeper than the kernel's.
 */
export function checkEpolls(descs: Desc[], whereOf: (id: number) => string): void {
  // Most tables hold no epoll: no map of every description for them.
  if (!descs.some((d) => d.kind === 'epoll')) return;
  const byId = new Map(descs.map((d) => [d.id, d]));
  for (const d of descs) {
    if (d.kind !== 'epoll') continue;
    const seen = new Set<string>();
    d.items.forEach((item, i) => {
      const where = `${whereOf(d.id)}.items[${i}]`;
      const target = byId.get(item.target);
      if (target === undefined) badInput(`${where}.target: no description with id ${item.target}`);
      if (item.target === d.id) badInput(`${where}.target: an epoll cannot watch itself`);
      const key = `${item.target}:${item.fd}`;
      if (seen.has(key)) badInput(`${where}: description ${item.target} at fd ${item.fd} is watched twice`);
      seen.add(key);
      if (target.kind === 'epoll' && (item.events & EV.EXCLUSIVE) !== 0) badInput(`${where}.events: EPOLLEXCLUSIVE on an epoll, which epoll_ctl refuses`);
      // A regular file or directory has no poll (EPERM); an O_PATH fd is no file to epoll_ctl (EBADF).
      if (target.kind === 'file' || target.kind === 'dir' || target.kind === 'opath') badInput(`${where}.target: description ${item.target} is a ${target.kind}, which epoll cannot watch`);
    });
  }
  // Depth of each epoll's chain of watched epolls; a loop never ends.
  const depth = new Map<number, number>();
  const visiting = new Set<number>();
  const walk = (d: EpollDesc): number => {
    const known = depth.get(d.id);
    if (known !== undefined) return known;
    if (visiting.has(d.id)) badInput(`${whereOf(d.id)}.items: epolls watching each other in a loop, which epoll_ctl refuses`);
    visiting.add(d.id);
    let deepest = 0;
    for (const item of d.items) {
      const t = byId.get(item.target);
      if (t?.kind === 'epoll') deepest = Math.max(deepest, walk(t) + 1);
    }
    visiting.delete(d.id);
    if (deepest > MAX_NESTS) badInput(`${whereOf(d.id)}.items: epolls nested ${deepest} deep, more than the kernel's ${MAX_NESTS}`);
    depth.set(d.id, deepest);
    return deepest;
  };
  for (const d of descs) if (d.kind === 'epoll') walk(d);
}

export const epoll: KindModule<'epoll'> = {
  kind: 'epoll',
  recognise(e) {
    if (e.link !== 'anon_inode:[eventpoll]') return null;
    const odd = oddFlags(e, EPOLL_FLAGS, 'epoll');
    if (odd) return odd;
    const raw = parseItems(e.text);
    if (raw === null) return no(e, 'epoll', 'its fdinfo item lines are not in the form this cr reads');
    const epfd = e.fd;
    return {
      kind: 'epoll',
      describe: (id) => ({ id, kind: 'epoll', flags: e.flags, items: raw.map((r) => ({ fd: r.tfd, target: -1, events: r.events, data: r.data })) }),
      resolve(d, { pid, fds }) {
        if (d.kind !== 'epoll') return null;
        const toff = new Map<number, number>();
        for (let i = 0; i < raw.length; i++) {
          const r = raw[i]!;
          // The kernel finds an item by its number and its rank among the items of that number.
          const rank = toff.get(r.tfd) ?? 0;
          toff.set(r.tfd, rank + 1);
          const candidates = fds.filter((f) => f.proc.ino === r.ino).sort((a, b) => (a.proc.fd === r.tfd ? -1 : b.proc.fd === r.tfd ? 1 : a.proc.fd - b.proc.fd));
          const found = candidates.find((f) => kcmpEpollTfd(pid, f.proc.fd, epfd, r.tfd, rank));
          if (found === undefined) {
            return no(e, 'epoll', `it watches a file (inode ${r.ino}, added as fd ${r.tfd}) that no fd of the process holds: held only by another process or by the kernel`);
          }
          d.items[i]!.target = found.desc;
        }
        return null;
      },
    };
  },
  fields: ['items'],
  parse(obj, where, id, flags) {
    if ((flags & O_ACCMODE) !== O_RDWR || (flags & ~EPOLL_FLAGS) !== 0) {
      badInput(`${where}.flags: an epoll is O_RDWR with at most O_NONBLOCK and O_APPEND`);
    }
    const list = array(get(obj, 'items'), `${where}.items`);
    if (list.length > MAX_ITEMS) badInput(`${where}.items: more than ${MAX_ITEMS} items`);
    return { id, kind: 'epoll', flags, items: list.map((v, i) => parseItem(v, `${where}.items[${i}]`)) };
  },
  creation: () => ({ cls: CLASS_SINGLE, seek: false, callFlags: 0, after: O_RDWR }),
  create(_d, cloexec, fd, q) {
    q.call('epoll_create1', [cloexec ? BigInt(O_CLOEXEC) : 0n], BigInt(fd));
  },
  createText: (_d, cloexec) => `epoll_create1(${cloexec ? 'EPOLL_CLOEXEC' : '0'})`,
  simCreate: (proc, _d, cloexec) => proc.epollCreate1(cloexec ? O_CLOEXEC : 0),
  links: (d) => d.items.map((i) => ({ target: i.target, fd: i.fd })),
  link(d, index, fd, q) {
    const item = d.items[index]!;
    q.call('epoll_ctl', [BigInt(fd), EPOLL_CTL_ADD, BigInt(item.fd), q.put(eventBuffer(item))], 0n, epoll.linkText!(d, index, fd));
  },
  linkText: (d, index, fd) => {
    const item = d.items[index]!;
    return `epoll_ctl(${fd}, EPOLL_CTL_ADD, ${item.fd}, {${eventNames(item.events)}, 0x${item.data.replace(/^0+(?=.)/, '')}})`;
  },
  simLink(proc, d, index, fd) {
    const item = d.items[index]!;
    proc.epollCtlAdd(fd, item.fd, item.events, BigInt(`0x${item.data}`));
  },
  simCheck(d, sim, idOf) {
    const key = (fd: number, target: number | undefined, events: number, data: bigint): string => `${fd}/${target ?? '?'}/${events >>> 0}/${data}`;
    const want = d.items.map((i) => key(i.fd, i.target, restoredEvents(i.events), BigInt(`0x${i.data}`))).sort();
    const got = sim.items.map((i: SimItem) => key(i.fd, idOf(i.target), i.events, i.data)).sort();
    if (want.join(',') === got.join(',')) return null;
    return `watches [${got.join(', ')}] (fd/description/events/data), the image says [${want.join(', ')}]`;
  },
  detail: (d) => (d.items.length === 0 ? 'no items' : d.items.map(itemText).join('; ')),
  diff(a, b) {
    const as = a.items.map(itemText).sort();
    const bs = b.items.map(itemText).sort();
    if (as.join('\n') === bs.join('\n')) return [];
    const onlyA = as.filter((x) => !bs.includes(x));
    const onlyB = bs.filter((x) => !as.includes(x));
    return [`items ${onlyA.length ? `[${onlyA.join('; ')}] only in A` : ''}${onlyA.length && onlyB.length ? ', ' : ''}${onlyB.length ? `[${onlyB.join('; ')}] only in B` : ''}`];
  },
};
