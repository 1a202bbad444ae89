// Putting a restarted process back in its cgroups (head `cgroup`: /proc/PID/cgroup as dumped).
// The husk starts in cr's. For each hierarchy where the image's cgroup differs, the husk itself
// writes 0 ("me") to that cgroup's cgroup.procs, after it has taken the image's credentials: the
// kernel judges the move as it would the author's own (write access to the file; for cgroup v1 an
// euid matching the mover's, for v2 write access to the common ancestor's cgroup.procs too), so an
// image gets no cgroup its author could not enter. Done before the per-thread attributes: entering
// a cpuset resets the CPU affinity. Where a move fails, or cr finds no mount of the hierarchy, one
// warning names the cgroups: the process runs in cr's there (docs/state.md).
import { readFileSync } from 'node:fs';
import type { ProcessHead } from '../image/process-head.js';
import { SYS } from '../inject/syscalls.js';
import type { Husk } from './husk.js';

const O_WRONLY = 1n;
const O_CLOEXEC = 0o2000000n;

/** A mount of a cgroup hierarchy: where it is, and which cgroup its root shows. */
interface CgroupMount {
  /** cgroup v1: the controllers and `name=` of its super options; v2: none */
  controllers: string[] | null;
  root: string;
  mountpoint: string;
}

/** mountinfo escapes space, tab, newline and backslash as octal. */
const unescape = (field: string): string => field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** The cgroup mounts cr sees (its mount namespace is the husk's: another one is refused at dump). */
function cgroupMounts(): CgroupMount[] {
  const mounts: CgroupMount[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'latin1').split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash < 0) continue;
    const fstype = fields[dash + 1];
    if (fstype !== 'cgroup' && fstype !== 'cgroup2') continue;
    mounts.push({
      controllers: fstype === 'cgroup2' ? null : (fields[dash + 3] ?? '').split(','),
      root: unescape(fields[3]!),
      mountpoint: unescape(fields[4]!),
    });
  }
  return mounts;
}

/** A cgroup path of the image: absolute, no `.`, `..` or empty segment (it is the author's data). */
const plainPath = (path: string): boolean => path === '/' || (path.startsWith('/') && path.slice(1).split('/').every((s) => s !== '' && s !== '.' && s !== '..' && !s.includes('\0')));

/** The directory of cgroup `path` of the hierarchy `controllers` ('' for v2), or null when no mount shows it. */
function cgroupDir(mounts: CgroupMount[], controllers: string, path: string): string | null {
  if (!plainPath(path)) return null;
  const want = controllers === '' ? null : controllers.split(',');
  for (const m of mounts) {
    if ((want === null) !== (m.controllers === null)) continue;
    if (want !== null && !want.every((c) => m.controllers!.includes(c))) continue;
    const under = m.root === '/' ? path : path === m.root ? '/' : path.startsWith(`${m.root}/`) ? path.slice(m.root.length) : null;
    if (under === null) continue;
    return `${m.mountpoint}${under === '/' ? '' : under}`;
  }
  return null;
}

/** `ID:CONTROLLERS:PATH` lines of a /proc/PID/cgroup text. */
const entries = (text: string): string[] => text.trim().split('\n').filter((l) => l !== '');

/**
 * Move the husk (its credentials the image's) into each cgroup of the image it is not in; a
 * warning naming those it could not enter, or null.
 */
export function moveToCgroups(husk: Husk, head: ProcessHead): string | null {
  const own = (): string[] => entries(readFileSync(`/proc/${husk.pid}/cgroup`, 'latin1'));
  const before = own();
  const wanted = entries(head.cgroup).filter((l) => !before.includes(l));
  if (wanted.length === 0) return null;
  const mounts = cgroupMounts();
  const why = new Map<string, string>();
  for (const line of wanted) {
    const [, controllers, path] = /^\d+:([^:]*):(.*)$/.exec(line) ?? [];
    const dir = path === undefined ? null : cgroupDir(mounts, controllers!, path);
    if (dir === null) {
      why.set(line, 'no mount of it');
      continue;
    }
    const fd = husk.syscall(SYS.open, husk.put(`${dir}/cgroup.procs`), O_WRONLY | O_CLOEXEC, 0n);
    if (fd < 0n) {
      husk.reset();
      why.set(line, `open: errno ${-fd}`);
      continue;
    }
    const r = husk.syscall(SYS.write, fd, husk.put('0'), 1n);
    husk.syscall(SYS.close, fd);
    husk.reset();
    if (r < 0n) why.set(line, `errno ${-r}`);
  }
  const now = own();
  const missed = entries(head.cgroup).filter((l) => !now.includes(l));
  if (missed.length === 0) return null;
  const each = missed.map((l) => `${l}${why.has(l) ? ` (${why.get(l)})` : ''}`);
  return `the process was in cgroup${missed.length > 1 ? 's' : ''} ${each.join(', ')}; it runs in cr's there`;
}
