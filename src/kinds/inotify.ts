// An inotify instance: its watches, each a path, a mask and the watch descriptor number the
// program holds. Recognised by its link `anon_inode:inotify`; fdinfo gives one `inotify wd: ino:
// sdev: mask: ignored_mask: fhandle-bytes: fhandle-type: f_handle:` line per watch. The path is
// found from the file handle (open_by_handle_at on a mount of that file system, cr's
// CAP_DAC_READ_SEARCH), and must still name that inode. Events queued and not read (FIONREAD on a
// copy of the description) are refused: fdinfo does not show them.
// Made again by inotify_init1 and inotify_add_watch in ascending wd order: the kernel hands out
// wds cyclically from 1, so a number the image skips is taken by a placeholder watch on the next
// watch's path and removed again, and the IN_IGNORED events those removals queue are read back.
import { closeSync, constants as fs, openSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { bytesReady, openByHandle } from '../../bridge/handle.js';
import { pidfdGetfd, pidfdOpen } from '../../bridge/pidfd.js';
import { CLASS_SINGLE } from '../abi.js';
import { badInput } from '../errors.js';
import { O_ACCMODE, O_CLOEXEC, O_NONBLOCK, O_RDONLY, type InotifyWatch } from '../model/fdtable.js';
import { array, fields, get, integer, object, parsePath } from '../model/json.js';
import { printable } from '../printable.js';
import { no, oddFlags, quoted } from './common.js';
import type { KindModule } from './kind.js';

const INOTIFY_FLAGS = O_RDONLY | O_NONBLOCK;
/** Numbers a restore may skip with placeholder watches, in all (two calls each). */
const MAX_SKIPPED = 4096;
/** sizeof(struct inotify_event) with no name: what a removal's IN_IGNORED takes. */
const EVENT_BYTES = 16;

interface RawWatch {
  wd: number;
  ino: number;
  sdev: number;
  mask: number;
  type: number;
  handle: Buffer;
}

function parseWatches(text: string): RawWatch[] | null {
  const out: RawWatch[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith('inotify ')) continue;
    const m = /^inotify wd:(\d+) ino:([0-9a-f]+) sdev:([0-9a-f]+) mask:([0-9a-f]+) ignored_mask:[0-9a-f]+ fhandle-bytes:([0-9a-f]+) fhandle-type:([0-9a-f]+) f_handle:([0-9a-f]*)/.exec(line);
    if (!m) return null;
    out.push({ wd: Number(m[1]), ino: parseInt(m[2]!, 16), sdev: parseInt(m[3]!, 16), mask: parseInt(m[4]!, 16) >>> 0, type: parseInt(m[6]!, 16), handle: Buffer.from(m[7]!, 'hex') });
  }
  return out;
}

/** A mount of the file system with kernel dev_t `sdev` (MAJOR << 20 | MINOR), its root preferred. */
function mountOf(pid: number, sdev: number): string | null {
  const want = `${Math.floor(sdev / 2 ** 20)}:${sdev % 2 ** 20}`;
  let any: string | null = null;
  for (const line of readFileSync(`/proc/${pid}/mountinfo`, 'latin1').split('\n')) {
    const f = line.split(' ');
    if (f[2] !== want) continue;
    const point = f[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (f[3] === '/') return point;
    any ??= point;
  }
  return any;
}

/** The path of a watch's inode now, or why there is none. */
function pathOfWatch(pid: number, w: RawWatch): string | { why: string } {
  const mount = mountOf(pid, w.sdev);
  if (mount === null) return { why: `no mount of its file system (device ${w.sdev.toString(16)}) is visible` };
  // open_by_handle_at takes no O_PATH fd for its mount (EBADF).
  const mfd = openSync(mount, fs.O_RDONLY | fs.O_NONBLOCK | O_CLOEXEC);
  try {
    let fd: number;
    try {
      fd = openByHandle(mfd, w.type, w.handle, 0o10000000 | O_CLOEXEC);
    } catch (err) {
      return { why: `its file handle does not open (${(err as Error).message}): deleted?` };
    }
    try {
      const path = readlinkSync(`/proc/self/fd/${fd}`);
      const st = statSync(path, { throwIfNoEntry: false });
      if (!path.startsWith('/') || st === undefined || st.ino !== w.ino) return { why: `its inode ${w.ino} has no path cr can name (${printable(path)})` };
      return path;
    } finally {
      closeSync(fd);
    }
  } finally {
    closeSync(mfd);
  }
}

/** Bytes of events queued on the description of pid's fd (read through a copy of it in cr). */
function queued(pid: number, fd: number): number {
  const pidfd = pidfdOpen(pid);
  try {
    const mine = pidfdGetfd(pidfd, fd);
    try {
      return bytesReady(mine);
    } finally {
      closeSync(mine);
    }
  } finally {
    closeSync(pidfd);
  }
}

/** The numbers skipped before each watch, ascending. */
function skipped(watches: InotifyWatch[]): number {
  let next = 1;
  let n = 0;
  for (const w of [...watches].sort((a, b) => a.wd - b.wd)) {
    n += w.wd - next;
    next = w.wd + 1;
  }
  return n;
}

export const inotify: KindModule<'inotify'> = {
  kind: 'inotify',
  recognise(e) {
    if (e.link !== 'anon_inode:inotify') return null;
    const odd = oddFlags(e, INOTIFY_FLAGS, 'inotify');
    if (odd) return odd;
    const raw = parseWatches(e.text);
    if (raw === null) return no(e, 'inotify', 'its fdinfo watch lines are not in the form this cr reads');
    return {
      kind: 'inotify',
      describe: (id) => ({ id, kind: 'inotify', flags: e.flags, watches: [] }),
      resolve(d, { pid }) {
        if (d.kind !== 'inotify') return null;
        const bytes = queued(pid, e.fd);
        if (bytes > 0) return no(e, 'inotify', `${bytes} bytes of events are queued and not read, which cr cannot carry`);
        for (const w of raw) {
          const path = pathOfWatch(pid, w);
          if (typeof path !== 'string') return no(e, 'inotify', `watch ${w.wd}: ${path.why}`);
          d.watches.push({ wd: w.wd, path, mask: w.mask });
        }
        d.watches.sort((a, b) => a.wd - b.wd);
        if (skipped(d.watches) > MAX_SKIPPED) return no(e, 'inotify', `its watch numbers skip more than ${MAX_SKIPPED} (a restore takes them one by one)`);
        return null;
      },
    };
  },
  fields: ['watches'],
  parse(obj, where, id, flags) {
    if ((flags & O_ACCMODE) !== O_RDONLY || (flags & ~INOTIFY_FLAGS) !== 0) badInput(`${where}.flags: an inotify is O_RDONLY with at most O_NONBLOCK`);
    const seen = new Set<number>();
    const watches = array(get(obj, 'watches'), `${where}.watches`).map((v, i) => {
      const w = `${where}.watches[${i}]`;
      const o = object(v, w);
      fields(o, w, ['wd', 'path', 'mask']);
      const wd = integer(get(o, 'wd'), `${w}.wd`, 1, 2 ** 31 - 1);
      if (seen.has(wd)) badInput(`${w}.wd: ${wd} appears twice`);
      seen.add(wd);
      return { wd, path: parsePath(get(o, 'path'), `${w}.path`), mask: integer(get(o, 'mask'), `${w}.mask`, 1, 0xffffffff) };
    });
    watches.sort((a, b) => a.wd - b.wd);
    if (skipped(watches) > MAX_SKIPPED) badInput(`${where}.watches: the numbers skip more than ${MAX_SKIPPED}`);
    return { id, kind: 'inotify', flags, watches };
  },
  creation: (d) => ({ cls: CLASS_SINGLE, seek: false, callFlags: d.flags & O_NONBLOCK, after: d.flags & O_NONBLOCK }),
  create(d, cloexec, fd, q) {
    q.call('inotify_init1', [BigInt((d.flags & O_NONBLOCK) | (cloexec ? O_CLOEXEC : 0))], BigInt(fd));
    let next = 1;
    let removed = 0;
    for (const w of d.watches) {
      const path = q.put(Buffer.from(`${w.path}\0`));
      for (; next < w.wd; next++, removed++) {
        q.call('inotify_add_watch', [BigInt(fd), path, BigInt(w.mask)], BigInt(next), `inotify_add_watch(${fd}, ${quoted(w.path)}) placeholder for wd ${next}`);
        q.call('inotify_rm_watch', [BigInt(fd), BigInt(next)], 0n, `inotify_rm_watch(${fd}, ${next})`);
      }
      q.call('inotify_add_watch', [BigInt(fd), path, BigInt(w.mask)], BigInt(w.wd), `inotify_add_watch(${fd}, ${quoted(w.path)}, 0x${w.mask.toString(16)})`);
      next = w.wd + 1;
    }
    // Each removal queued an IN_IGNORED: read them all back (they are distinct, none merged).
    if (removed > 0) {
      const bytes = removed * EVENT_BYTES;
      q.call('read', [BigInt(fd), q.put(Buffer.alloc(bytes)), BigInt(bytes)], BigInt(bytes), `read(${fd}, <${removed} IN_IGNORED events>)`);
    }
  },
  createText: (d, cloexec) => `inotify_init1(${[d.flags & O_NONBLOCK ? 'IN_NONBLOCK' : '', cloexec ? 'IN_CLOEXEC' : ''].filter(Boolean).join('|') || '0'}) + ${d.watches.length} watches`,
  simCreate(proc, d, cloexec) {
    const fd = proc.inotifyInit1((d.flags & O_NONBLOCK) | (cloexec ? O_CLOEXEC : 0));
    let next = 1;
    for (const w of d.watches) {
      for (; next < w.wd; next++) proc.inotifyRmWatch(fd, proc.inotifyAddWatch(fd, w.path, w.mask));
      proc.inotifyAddWatch(fd, w.path, w.mask);
      next = w.wd + 1;
    }
    proc.inotifyDrain(fd);
    return fd;
  },
  simCheck(d, sim) {
    const got = sim.watches.map((w) => `${w.wd}:${w.path}:${w.mask}`).join(',');
    const want = d.watches.map((w) => `${w.wd}:${w.path}:${w.mask}`).join(',');
    if (got !== want) return `watches [${got}], the image says [${want}]`;
    return sim.queued === 0 ? null : `has ${sim.queued} events queued`;
  },
  detail: (d) => (d.watches.length === 0 ? 'no watches' : d.watches.map((w) => `wd ${w.wd} ${printable(w.path)} mask 0x${w.mask.toString(16)}`).join('; ')),
  diff(a, b) {
    const text = (d: typeof a) => d.watches.map((w) => `wd ${w.wd} ${printable(w.path)} mask 0x${w.mask.toString(16)}`).join('; ');
    return text(a) === text(b) ? [] : [`watches [${text(a)}] in A, [${text(b)}] in B`];
  },
};
