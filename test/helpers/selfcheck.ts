// Fd layouts for the self-checking program test/fixtures/fd-selfcheck.c: what a layout is, the
// spec file that program reads, and random layouts from a seed within the kernel's rules and
// the kinds cr restores. The program builds a layout and checks it itself: nothing here reads
// cr's image.
import { join } from 'node:path';
import { buildFixture } from './processes.js';

/**
 * The program, compiled once per test run. `static`: linked statically, for a `restore -- CMD`
 * whose table fills every number below its soft limit: the fds are in place at the exec, so a
 * dynamically linked CMD's loader finds no number for libc and the program never starts (exit
 * 127), as any such CMD would.
 */
export const selfcheckProgram = (options: { static?: boolean } = {}): string =>
  buildFixture('fd-selfcheck', options.static ? ['-static'] : []);

// Status flags (octal, as F_GETFL gives them on x86_64).
export const O_APPEND = 0o2000;
export const O_NONBLOCK = 0o4000;
export const O_DIRECT = 0o40000;
export const O_NOATIME = 0o1000000;
export const O_ASYNC = 0o20000;
export const O_DIRECTORY = 0o200000;
// Given to open() only (F_SETFL cannot set them): for files and devices. (Not O_NOFOLLOW, which
// the kernel keeps too: restore recreates it, but dump refuses such an fd.)
export const O_DSYNC = 0o10000;
export const O_SYNC = 0o4010000;

export type Access = 'r' | 'w' | 'rw';

export interface LayoutPipe {
  id: number;
  /** F_SETPIPE_SZ; absent: the default 64 KiB */
  capacity?: number;
  /** queued bytes */
  data?: Buffer;
  /** the bytes as packets (O_DIRECT writes) of these lengths */
  packets?: number[];
  /** a named FIFO at this absolute path rather than an anonymous pipe */
  fifo?: string;
}

export type LayoutDesc =
  | { id: number; kind: 'end'; pipe: number; access: 'r' | 'w'; flags: number }
  | { id: number; kind: 'reopen'; pipe: number; access: Access; flags: number }
  | { id: number; kind: 'fifoend'; pipe: number; access: Access; flags: number }
  | { id: number; kind: 'file'; path: string; access: Access; flags: number; offset: number }
  | { id: number; kind: 'chr'; path: string; access: Access; flags: number }
  | { id: number; kind: 'eventfd'; count: bigint; semaphore: boolean; flags: number }
  /** a directory (made with 8 entries if missing), after its first `skip` entries */
  | { id: number; kind: 'dir'; path: string; flags: number; skip: number }
  | { id: number; kind: 'opath'; path: string; flags: number };

export interface LayoutFd {
  fd: number;
  desc: number;
  cloexec: boolean;
}

export interface Layout {
  name: string;
  rlimit: { soft: number; hard: number };
  pipes: LayoutPipe[];
  descs: LayoutDesc[];
  fds: LayoutFd[];
}

/** The spec file fd-selfcheck reads (its header comment is the grammar). */
export function layoutSpec(l: Layout): string {
  const hex = (b: Buffer | undefined): string => (b && b.length > 0 ? b.toString('hex') : '-');
  const oct = (n: number): string => n.toString(8);
  const lines = [`rlimit ${l.rlimit.soft} ${l.rlimit.hard}`];
  for (const p of l.pipes) {
    lines.push(p.fifo ? `fifo ${p.id} ${p.fifo} ${p.capacity ?? 0} ${hex(p.data)}` : `pipe ${p.id} ${p.capacity ?? 0} ${hex(p.data)}`);
    if (p.packets) lines.push(`packets ${p.id} ${p.packets.join(' ')}`);
  }
  for (const d of l.descs) {
    switch (d.kind) {
      case 'end':
      case 'reopen':
      case 'fifoend':
        lines.push(`${d.kind} ${d.id} ${d.pipe} ${d.access} ${oct(d.flags)}`);
        break;
      case 'file':
        lines.push(`file ${d.id} ${d.path} ${d.access} ${oct(d.flags)} ${d.offset}`);
        break;
      case 'chr':
        lines.push(`chr ${d.id} ${d.path} ${d.access} ${oct(d.flags)}`);
        break;
      case 'eventfd':
        lines.push(`eventfd ${d.id} ${d.count} ${d.semaphore ? 1 : 0} ${oct(d.flags)}`);
        break;
      case 'dir':
        lines.push(`dir ${d.id} ${d.path} ${oct(d.flags)} ${d.skip}`);
        break;
      case 'opath':
        lines.push(`opath ${d.id} ${d.path} ${oct(d.flags)}`);
        break;
      default: {
        const never: never = d;
        throw new Error(`unknown kind ${JSON.stringify(never)}`);
      }
    }
  }
  for (const f of l.fds) lines.push(`fd ${f.fd} ${f.desc} ${f.cloexec ? 1 : 0}`);
  return lines.join('\n') + '\n';
}

/** A small deterministic generator (mulberry32): the same seed, the same layout. */
export function random(seed: number): { int: (lo: number, hi: number) => number; pick: <T>(xs: readonly T[]) => T; chance: (p: number) => boolean } {
  let a = seed >>> 0;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1));
  return { int, pick: (xs) => xs[int(0, xs.length - 1)]!, chance: (p) => next() < p };
}

const bytes = (n: number, salt: number): Buffer => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + salt * 7 + (i >> 8)) & 0xff));

/**
 * A random layout inside `dir` (its files and FIFOs live there), following the kernel's rules:
 * at most one pipe2() end of each direction per pipe, any number of reopens; bytes within the
 * capacity, packets of 1 to 4096 bytes and at most one per page of capacity; status flags only
 * those F_SETFL gives each kind; every fd below the soft limit.
 */
export function randomLayout(seed: number, dir: string): Layout {
  const r = random(seed);
  const soft = r.pick([24, 64, 256, 1024, 4096]);
  const pipes: LayoutPipe[] = [];
  const descs: LayoutDesc[] = [];
  const pipeFlags = (): number => (r.chance(0.3) ? O_NONBLOCK : 0) | (r.chance(0.15) ? O_DIRECT : 0) | (r.chance(0.1) ? O_APPEND : 0) | (r.chance(0.05) ? O_ASYNC : 0);
  const fillPipe = (p: LayoutPipe): void => {
    const capacity = p.capacity ?? 65536;
    const shape = r.int(0, 3);
    if (shape === 1) p.data = bytes(r.int(1, 300), p.id);
    if (shape === 2) p.data = bytes(capacity, p.id);
    if (shape === 3) {
      p.packets = Array.from({ length: r.int(1, Math.min(6, capacity / 4096)) }, () => r.pick([1, 7, 512, 4095, 4096]));
      p.data = bytes(p.packets.reduce((s, n) => s + n, 0), p.id);
    }
  };
  const capacity = (): number | undefined => r.pick([undefined, 4096, 8192, 16384, 131072]);
  for (let n = r.int(0, 4), k = 0; k < n; k++) {
    const p: LayoutPipe = { id: pipes.length, capacity: capacity() };
    fillPipe(p);
    pipes.push(p);
    const before = descs.length;
    if (r.chance(0.8)) descs.push({ id: descs.length, kind: 'end', pipe: p.id, access: 'r', flags: pipeFlags() });
    if (r.chance(0.8)) descs.push({ id: descs.length, kind: 'end', pipe: p.id, access: 'w', flags: pipeFlags() });
    for (let m = r.int(0, 2), j = 0; j < m; j++) descs.push({ id: descs.length, kind: 'reopen', pipe: p.id, access: r.pick(['r', 'w', 'rw'] as const), flags: pipeFlags() });
    if (descs.length === before) descs.push({ id: descs.length, kind: 'end', pipe: p.id, access: r.pick(['r', 'w'] as const), flags: pipeFlags() });
  }
  if (r.chance(0.4)) {
    const p: LayoutPipe = { id: pipes.length, capacity: capacity(), fifo: join(dir, `fifo${seed}`) };
    fillPipe(p);
    pipes.push(p);
    for (let m = r.int(1, 3), j = 0; j < m; j++) descs.push({ id: descs.length, kind: 'fifoend', pipe: p.id, access: r.pick(['r', 'w', 'rw'] as const), flags: pipeFlags() });
  }
  const fileFlags = (): number =>
    (r.chance(0.3) ? O_APPEND : 0) | (r.chance(0.2) ? O_NONBLOCK : 0) | (r.chance(0.1) ? O_NOATIME : 0) | r.pick([0, 0, 0, O_DSYNC, O_SYNC]);
  for (let n = r.int(0, 3), k = 0; k < n; k++) {
    descs.push({ id: descs.length, kind: 'file', path: join(dir, `file${r.int(0, 1)}`), access: r.pick(['r', 'w', 'rw'] as const), flags: fileFlags(), offset: r.pick([0, 1, 4096, r.int(0, 1 << 20)]) });
  }
  for (let n = r.int(0, 2), k = 0; k < n; k++) {
    descs.push({ id: descs.length, kind: 'chr', path: r.pick(['/dev/null', '/dev/zero']), access: r.pick(['r', 'w', 'rw'] as const), flags: (r.chance(0.3) ? O_NONBLOCK : 0) | (r.chance(0.2) ? O_APPEND : 0) });
  }
  for (let n = r.chance(0.4) ? r.int(1, 3) : 0, k = 0; k < n; k++) {
    const count = r.pick([0n, 1n, 7n, 2n ** 32n + 5n, 2n ** 53n - 1n]);
    descs.push({ id: descs.length, kind: 'eventfd', count, semaphore: r.chance(0.4), flags: (r.chance(0.4) ? O_NONBLOCK : 0) | (r.chance(0.1) ? O_APPEND : 0) });
  }
  for (let n = r.chance(0.3) ? r.int(1, 2) : 0, k = 0; k < n; k++) {
    descs.push({ id: descs.length, kind: 'dir', path: join(dir, `dir${r.int(0, 1)}`), flags: (r.chance(0.5) ? O_DIRECTORY : 0) | (r.chance(0.2) ? O_NONBLOCK : 0), skip: r.int(0, 11) });
  }
  for (let n = r.chance(0.3) ? r.int(1, 2) : 0, k = 0; k < n; k++) {
    const what = r.pick(['file', 'dir', 'dev'] as const);
    const path = what === 'dev' ? '/dev/null' : what === 'dir' ? dir : join(dir, 'file0');
    descs.push({ id: descs.length, kind: 'opath', path, flags: what === 'dir' && r.chance(0.5) ? O_DIRECTORY : 0 });
  }
  if (descs.length === 0) descs.push({ id: 0, kind: 'chr', path: '/dev/null', access: 'rw', flags: 0 });
  // fd numbers: distinct, below the limit, low ones and ones right under it both likely
  const used = new Set<number>();
  const number = (): number => {
    for (;;) {
      const fd = r.chance(0.3) ? soft - r.int(1, 4) : r.chance(0.5) ? r.int(0, 12) : r.int(0, soft - 1);
      if (fd >= 0 && !used.has(fd)) return used.add(fd), fd;
    }
  };
  const fds: LayoutFd[] = [];
  for (const d of descs) {
    for (let m = r.chance(0.3) ? r.int(2, 4) : 1, j = 0; j < m && used.size < soft; j++) fds.push({ fd: number(), desc: d.id, cloexec: r.chance(0.3) });
  }
  return { name: `random seed ${seed}`, rlimit: { soft, hard: 20000 }, pipes, descs, fds };
}
