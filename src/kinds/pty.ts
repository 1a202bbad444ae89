// A pty pair inside the image (a program that made its own terminal: script, expect, tmux). The
// master (`ptmx`) is recognised by its device (5:2, /dev/ptmx or /dev/pts/ptmx) and fdinfo
// `tty-index`; its settings are read through a copy of its description in cr (pidfd_getfd):
// termios (TCGETS2 on a master reads the slave's, the terminal's own), window size, lock and packet
// mode. A slave any process of the dump holds (the pty's peer: same devpts and device number; the
// master's holder or another member of the tree, as `script`'s shell holds the slave its parent
// made) becomes a `pts` description of that master, made through the new master at restore and
// never by its old path (which, while the original pty lives, would open the original); a slave
// whose master is outside the dump (a terminal emulator's) stays a `chr` opened by path.
//
// A restore makes the pty before the plan (`prepare`, a `pty` op: /dev/ptmx opened, lifted to a
// number above every other, unlocked, its settings set), so that the master's description is
// F_DUPFD of it and every slave TIOCGPTPEER on it, in whatever order the planner creates them; the
// pty gets a new index (/dev/pts/N changes). `finish` locks it again if it was locked and closes the
// spare. The kernel has no peek on a tty: a dump refuses a pty with bytes queued either way (what
// TIOCINQ counts; a canonical line being typed, not yet ended, is not counted and is lost).
import { closeSync, fstatSync } from 'node:fs';
import { SyscallError } from '../../bridge/errno.js';
import { lastErrno, libc } from '../../bridge/libc.js';
import { pidfdGetfd, pidfdOpen } from '../../bridge/pidfd.js';
import { POLLPRI, settleInput } from '../../bridge/tty.js';
import { CLASS_SINGLE } from '../abi.js';
import { badInput } from '../errors.js';
import {
  O_ACCMODE, O_APPEND, O_ASYNC, O_CLOEXEC, O_DIRECT, O_LARGEFILE, O_NOATIME, O_NOCTTY, O_NONBLOCK, O_RDWR,
  type Desc, type PtmxDesc, type PtsDesc,
} from '../model/fdtable.js';
import { boolean, get, integer, show } from '../model/json.js';
import type { ProcFd } from '../proc/fds.js';
import { no } from './common.js';
import type { KindModule, Unsupported } from './kind.js';

/** Device number of /dev/ptmx and /dev/pts/ptmx (major 5, minor 2). */
export const PTMX_RDEV = (5 << 8) | 2;
/** asm-generic/ioctls.h (x86_64) */
export const TCGETS2 = 0x802c542an;
export const TCSETS2 = 0x402c542bn;
export const TIOCGWINSZ = 0x5413n;
export const TIOCSWINSZ = 0x5414n;
export const TIOCINQ = 0x541bn;
export const TIOCGETD = 0x5424n;
export const TIOCPKT = 0x5420n;
export const TIOCSPTLCK = 0x40045431n;
export const TIOCGPKT = 0x80045438n;
export const TIOCGPTLCK = 0x80045439n;
export const TIOCGPTPEER = 0x5441n;
export const TIOCGDEV = 0x80045432n;
/** Device number of /dev/tty (major 5, minor 0): a file on it is the opener's controlling terminal. */
const TTY_RDEV = (5 << 8) | 0;
export const F_DUPFD = 0n;
export const F_DUPFD_CLOEXEC = 1030n;
const AT_FDCWD = -100n;
const TERMIOS2_BYTES = 44;
const WINSIZE_BYTES = 8;
/** What a master may carry here: F_SETFL fixes O_APPEND and O_NONBLOCK after the F_DUPFD. */
const PTMX_FLAGS = O_ACCMODE | O_NONBLOCK | O_APPEND | O_LARGEFILE;
/** The flags F_SETFL sets (and TIOCGPTPEER's open therefore need not take). */
const SETFL_ONLY = O_ASYNC | O_DIRECT | O_NOATIME;

/** The devpts major numbers (136-143: UNIX98_PTY_SLAVE_MAJOR and the next 7) and minor of a dev_t. */
export function ptsIndex(rdev: number): number | undefined {
  const major = (rdev >> 8) & 0xfff;
  const minor = (rdev & 0xff) | ((rdev >> 12) & ~0xff);
  return major >= 136 && major < 144 ? (major - 136) * 256 + minor : undefined;
}

/** ioctl on an fd cr holds, into a buffer of `size` bytes (a read) or from `arg` (a write). */
function ioctlRead(fd: number, request: bigint, size: number, what: string): Buffer {
  const buf = Buffer.alloc(size);
  if (libc.ioctlBuf(fd, Number(request), buf) < 0) throw new SyscallError(`ioctl(${what})`, lastErrno());
  return buf;
}

/**
 * A controlling terminal (its device number, /proc/PID/stat tty_nr) that is a pty of the image: one
 * whose master a process of the image holds, by its number (a tree's ptys are of one devpts).
 */
export function imagePty(rdev: number, descs: readonly Desc[]): PtmxDesc | undefined {
  const index = ptsIndex(rdev);
  return index === undefined ? undefined : descs.find((d): d is PtmxDesc => d.kind === 'ptmx' && d.index === index);
}

export interface PtyState {
  termios: string;
  winsize: string;
  locked: boolean;
  packet: boolean;
  /** in packet mode, a status byte (TIOCPKT_FLUSHREAD, ...) waits to be read from the master */
  status: boolean;
  /** bytes the master's reader has not read: the slave side's writes and its echo of what was typed */
  output: number;
  /** complete lines or raw bytes the slave's reader has not read (-1: the pty is locked, not looked at) */
  input: number;
  /** st_dev:st_rdev of the slave, when it could be opened (unlocked) */
  peer?: string;
  /** st_rdev of the slave, when it could be opened */
  rdev?: number;
  /** the slave's line discipline (TIOCGETD; N_TTY is 0), when it could be opened */
  ldisc: number;
}

/**
 * The pty behind `fd` of `pid`, read through a copy of the master's description. The slave is
 * settled before the master is: bytes typed at the master reach the slave's line discipline by a
 * worker, which echoes them into the master's flip buffer, so a master settled and counted first
 * could miss an echo that comes only as the slave settles (a partial line typed in canonical mode,
 * which the slave does not count: measured here, the master's count read 0 in 841 of 2,000 tries).
 */
export function readPty(pid: number, fd: number): PtyState {
  const pidfd = pidfdOpen(pid);
  try {
    const mine = pidfdGetfd(pidfd, fd);
    try {
      const termios = ioctlRead(mine, TCGETS2, TERMIOS2_BYTES, 'TCGETS2').toString('hex');
      const winsize = ioctlRead(mine, TIOCGWINSZ, WINSIZE_BYTES, 'TIOCGWINSZ').toString('hex');
      const locked = ioctlRead(mine, TIOCGPTLCK, 4, 'TIOCGPTLCK').readInt32LE(0) !== 0;
      const packet = ioctlRead(mine, TIOCGPKT, 4, 'TIOCGPKT').readInt32LE(0) !== 0;
      let slave = -1;
      try {
        if (!locked) {
          // The slave's input queue is the slave's: look through a slave of cr's own (O_NOCTTY).
          slave = libc.ioctl(mine, Number(TIOCGPTPEER), 'int', Number(O_RDWR | O_NOCTTY | O_CLOEXEC));
          if (slave < 0) throw new SyscallError('ioctl(TIOCGPTPEER)', lastErrno());
          settleInput(slave);
        }
        // In packet mode a status byte (a flush, a stop or start of output) is read before any
        // data, and TIOCINQ does not count it: n_tty's poll shows it as POLLPRI.
        const revents = settleInput(mine);
        const status = packet && (revents & POLLPRI) !== 0;
        const output = ioctlRead(mine, TIOCINQ, 4, 'TIOCINQ').readInt32LE(0);
        if (slave < 0) return { termios, winsize, locked, packet, status, output, input: -1, ldisc: 0 };
        const input = ioctlRead(slave, TIOCINQ, 4, 'TIOCINQ').readInt32LE(0);
        const ldisc = ioctlRead(slave, TIOCGETD, 4, 'TIOCGETD').readInt32LE(0);
        const st = fstatSync(slave);
        return { termios, winsize, locked, packet, status, output, input, peer: `${st.dev}:${st.rdev}`, rdev: st.rdev, ldisc };
      } finally {
        if (slave >= 0) closeSync(slave);
      }
    } finally {
      closeSync(mine);
    }
  } finally {
    closeSync(pidfd);
  }
}

/** Slaves found by a master's resolve, by the master's description: their description ids. */
const slavesOf = new WeakMap<Desc, Set<number>>();

/**
 * The slaves the dump holds of the pty masters it holds, made `pts` descriptions of their master
 * (gather calls this once every master resolved). Others stay `chr`, reopened by path.
 */
export function pairPtys(descs: Desc[]): Desc[] {
  const master = new Map<number, PtmxDesc>();
  for (const d of descs) for (const id of slavesOf.get(d) ?? []) master.set(id, d as PtmxDesc);
  return descs.map((d) => {
    const m = master.get(d.id);
    if (m === undefined || d.kind !== 'chr') return d;
    return { id: d.id, kind: 'pts', flags: d.flags, master: m.id, index: m.index };
  });
}

/** The tty a file on /dev/tty (5:0) is: the controlling terminal of its opener when opened (TIOCGDEV), read through a copy. */
function ttyBehind(pid: number, fd: number): number | undefined {
  try {
    const pidfd = pidfdOpen(pid);
    try {
      const mine = pidfdGetfd(pidfd, fd);
      try {
        return ioctlRead(mine, TIOCGDEV, 4, 'TIOCGDEV').readUInt32LE(0);
      } finally {
        closeSync(mine);
      }
    } finally {
      closeSync(pidfd);
    }
  } catch {
    return undefined; // its terminal hung up: not this pty's, which lives
  }
}

const hex = (value: unknown, bytes: number, where: string): string => {
  if (typeof value !== 'string' || value.length !== bytes * 2 || !/^[0-9a-f]*$/.test(value)) badInput(`${where}: expected ${bytes} bytes as ${bytes * 2} lowercase hex digits, got ${show(value)}`);
  return value;
};

const winsizeText = (hexText: string): string => {
  const b = Buffer.from(hexText, 'hex');
  return `${b.readUInt16LE(2)}x${b.readUInt16LE(0)}`;
};

/** The flags the pty's spare master is opened with: the master's description is F_DUPFD of it. */
const masterOpenFlags = (d: PtmxDesc): number => (d.flags & (O_ACCMODE | O_NONBLOCK | O_APPEND)) | O_NOCTTY | O_CLOEXEC;

export const ptmx: KindModule<'ptmx'> = {
  kind: 'ptmx',
  recognise(e) {
    if (!e.stat.isCharacterDevice() || e.stat.rdev !== PTMX_RDEV || (e.flags & 0o10000000) !== 0) return null;
    if ((e.flags & ~PTMX_FLAGS) !== 0) return no(e, 'pty master with unusual flags', `flags 0o${((e.flags & ~PTMX_FLAGS) >>> 0).toString(8)} cannot be recreated`);
    const indexText = e.info.get('tty-index');
    if (indexText === undefined || !/^\d+$/.test(indexText)) return no(e, 'pty master', 'this kernel does not show its tty-index in fdinfo');
    const index = Number(indexText);
    return {
      kind: 'ptmx',
      describe: (id) => ({ id, kind: 'ptmx', flags: e.flags, index, termios: '', winsize: '', locked: false, packet: false }),
      resolve(d, { pid, dumped }) {
        if (d.kind !== 'ptmx') return null;
        const s = readPty(pid, e.fd);
        if (s.ldisc !== 0) return no(e, 'pty master', `/dev/pts/${index}: its line discipline is ${s.ldisc}, not N_TTY`);
        const why = queued(e, index, s);
        if (why) return why;
        Object.assign(d, { termios: s.termios, winsize: s.winsize, locked: s.locked, packet: s.packet });
        const mine = new Set<number>();
        for (const f of dumped) {
          if (!f.proc.stat.isCharacterDevice()) continue;
          // /dev/tty opened with this pty as the controlling terminal (a shell's job-control fd) is
          // a file on its slave: made as one, for the restored session has no terminal when its fds are.
          if (f.proc.stat.rdev === TTY_RDEV && s.rdev !== undefined && ttyBehind(f.proc.pid, f.proc.fd) === s.rdev) mine.add(f.desc);
          if (ptsIndex(f.proc.stat.rdev) !== index) continue;
          // Its peer's device when it could be opened; a locked pty's slave by its number alone.
          if (s.peer === undefined || s.peer === `${f.proc.stat.dev}:${f.proc.stat.rdev}`) mine.add(f.desc);
        }
        slavesOf.set(d, mine);
        return null;
      },
    };
  },
  fields: ['index', 'termios', 'winsize', 'locked', 'packet'],
  parse(obj, where, id, flags) {
    if ((flags & ~PTMX_FLAGS) !== 0) badInput(`${where}.flags: a pty master carries at most its access mode, O_NONBLOCK, O_APPEND and O_LARGEFILE`);
    return {
      id,
      kind: 'ptmx',
      flags: (flags | O_LARGEFILE) >>> 0,
      index: integer(get(obj, 'index'), `${where}.index`, 0, 2 ** 20),
      termios: hex(get(obj, 'termios'), TERMIOS2_BYTES, `${where}.termios`),
      winsize: hex(get(obj, 'winsize'), WINSIZE_BYTES, `${where}.winsize`),
      locked: boolean(get(obj, 'locked'), `${where}.locked`),
      packet: boolean(get(obj, 'packet'), `${where}.packet`),
    };
  },
  creation: (d) => ({ cls: CLASS_SINGLE, seek: false, callFlags: masterOpenFlags(d) & ~(O_NOCTTY | O_CLOEXEC), after: (masterOpenFlags(d) & ~(O_NOCTTY | O_CLOEXEC)) | O_LARGEFILE }),
  prepare(d, lowest, fd, q) {
    const path = q.put(Buffer.from('/dev/ptmx\0'));
    const int = (v: number) => {
      const b = Buffer.alloc(4);
      b.writeInt32LE(v);
      return q.put(b);
    };
    q.call('openat', [AT_FDCWD, path, BigInt(masterOpenFlags(d))], BigInt(lowest), `open("/dev/ptmx", ${masterOpenFlags(d)})`);
    q.call('fcntl', [BigInt(lowest), F_DUPFD_CLOEXEC, BigInt(fd)], BigInt(fd));
    q.call('close', [BigInt(lowest)], 0n);
    // Unlocked for the slaves TIOCGPTPEER opens; locked again, if it was, by finish.
    q.call('ioctl', [BigInt(fd), TIOCSPTLCK, int(0)], 0n, `ioctl(${fd}, TIOCSPTLCK, 0)`);
    q.call('ioctl', [BigInt(fd), TCSETS2, q.put(Buffer.from(d.termios, 'hex'))], 0n, `ioctl(${fd}, TCSETS2, <termios>)`);
    q.call('ioctl', [BigInt(fd), TIOCSWINSZ, q.put(Buffer.from(d.winsize, 'hex'))], 0n, `ioctl(${fd}, TIOCSWINSZ, ${winsizeText(d.winsize)})`);
    if (d.packet) q.call('ioctl', [BigInt(fd), TIOCPKT, int(1)], 0n, `ioctl(${fd}, TIOCPKT, 1)`);
  },
  finish(d, fd, q) {
    if (d.locked) {
      const one = Buffer.alloc(4);
      one.writeInt32LE(1);
      q.call('ioctl', [BigInt(fd), TIOCSPTLCK, q.put(one)], 0n, `ioctl(${fd}, TIOCSPTLCK, 1)`);
    }
    q.call('close', [BigInt(fd)], 0n);
  },
  prepareText: (d, lowest, fd, done) =>
    done
      ? `${d.locked ? `ioctl(${fd}, TIOCSPTLCK, 1) + ` : ''}close(${fd})`
      : `open("/dev/ptmx") = ${lowest} + F_DUPFD_CLOEXEC to ${fd} + termios, ${winsizeText(d.winsize)}${d.packet ? ', packet mode' : ''}`,
  create(d, cloexec, fd, q) {
    q.call('fcntl', [BigInt(q.held(d.id)), cloexec ? F_DUPFD_CLOEXEC : F_DUPFD, 0n], BigInt(fd));
  },
  createText: (d, cloexec) => `fcntl(<pty of description ${d.id}>, ${cloexec ? 'F_DUPFD_CLOEXEC' : 'F_DUPFD'}, 0)`,
  simPrepare(proc, d, lowest, fd, done) {
    if (done) {
      proc.close(fd);
      return;
    }
    const got = proc.ptmxOpen(masterOpenFlags(d));
    if (got !== lowest) throw new Error(`open("/dev/ptmx") gave ${got}, the plan expects ${lowest}`);
    proc.dupfd(got, fd, true);
    proc.close(got);
  },
  simCreate: (proc, d, cloexec) => proc.dupfd(proc.held(d.id), 0, cloexec),
  simCheck: (d, sim) => (sim.pty === null ? 'is not a pty master' : null),
  detail: (d) => `pty master (was /dev/pts/${d.index}), ${winsizeText(d.winsize)}${d.locked ? ', locked' : ''}${d.packet ? ', packet mode' : ''}`,
  diff(a, b) {
    const out: string[] = [];
    if (a.index !== b.index) out.push(`pty /dev/pts/${a.index} in A, /dev/pts/${b.index} in B`);
    if (a.termios !== b.termios) out.push('termios differ');
    if (a.winsize !== b.winsize) out.push(`window ${winsizeText(a.winsize)} in A, ${winsizeText(b.winsize)} in B`);
    if (a.locked !== b.locked) out.push(`${a.locked ? 'locked' : 'unlocked'} in A, ${b.locked ? 'locked' : 'unlocked'} in B`);
    if (a.packet !== b.packet) out.push(`packet mode ${a.packet ? 'on' : 'off'} in A, ${b.packet ? 'on' : 'off'} in B`);
    return out;
  },
};

/** A refusal when bytes wait in the pty: a tty cannot be read without consuming them. */
function queued(e: ProcFd, index: number, s: PtyState): Unsupported | null {
  const parts: string[] = [];
  if (s.status) parts.push('a packet-mode status byte is not read from the master yet');
  if (s.output > 0) parts.push(`${s.output} bytes written on the slave side are not read from the master yet`);
  if (s.input > 0) parts.push(`${s.input} bytes of input are not read from the slave yet`);
  if (parts.length === 0) return null;
  return no(e, 'pty master', `/dev/pts/${index}: ${parts.join(', ')}; a tty has no peek, so the dump would lose them (read them first)`);
}

/** TIOCGPTPEER's flags for a slave: its own, those F_SETFL sets aside (O_LARGEFILE is taken as given). */
const peerFlags = (d: PtsDesc): number => d.flags & ~SETFL_ONLY & ~O_CLOEXEC;

export const pts: KindModule<'pts'> = {
  kind: 'pts',
  // Never recognised in /proc: gather's pairPtys makes a chr slave one once its master is found.
  recognise: () => null,
  fields: ['master', 'index'],
  parse(obj, where, id, flags) {
    if ((flags & (O_NOCTTY | O_CLOEXEC)) !== 0) badInput(`${where}.flags: F_GETFL never shows O_NOCTTY or O_CLOEXEC`);
    return {
      id,
      kind: 'pts',
      flags,
      master: integer(get(obj, 'master'), `${where}.master`, 0, Number.MAX_SAFE_INTEGER),
      index: integer(get(obj, 'index'), `${where}.index`, 0, 2 ** 20),
    };
  },
  creation: (d) => ({ cls: CLASS_SINGLE, seek: false, callFlags: peerFlags(d), after: peerFlags(d) }),
  create(d, cloexec, fd, q) {
    q.call('ioctl', [BigInt(q.held(d.master)), TIOCGPTPEER, BigInt(peerFlags(d) | O_NOCTTY | (cloexec ? O_CLOEXEC : 0))], BigInt(fd));
  },
  createText: (d, cloexec) => `ioctl(<pty of description ${d.master}>, TIOCGPTPEER, ${cloexec ? 'O_CLOEXEC' : '0'})`,
  simCreate: (proc, d, cloexec) => proc.ptyPeer(proc.held(d.master), peerFlags(d) | (cloexec ? O_CLOEXEC : 0)),
  simCheck(d, sim, idOf) {
    if (sim.pty === null) return 'is not a pty slave';
    const m = idOf(sim.pty);
    return m === d.master ? null : `is a slave of description ${m ?? 'none of the image'}, the image says ${d.master}`;
  },
  detail: (d) => `pty slave of description ${d.master} (was /dev/pts/${d.index})`,
  diff(a, b) {
    const out: string[] = [];
    if (a.master !== b.master) out.push(`master description ${a.master} in A, ${b.master} in B`);
    if (a.index !== b.index) out.push(`pty /dev/pts/${a.index} in A, /dev/pts/${b.index} in B`);
    return out;
  },
};
