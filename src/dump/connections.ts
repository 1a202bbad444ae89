// The established TCP connections of frozen processes, held for the dump (docs/kinds.md, TCP):
// each locked (src/kinds/tcp-repair.ts: repair mode, every segment dropped) before anything is
// read, so the image holds the connection as it stands and nothing the peer sends meanwhile is
// acknowledged and lost; then, when the processes go on, unlocked, or, when they are killed, left
// locked (a socket closed in repair mode sends no FIN and no RST: the peer never hears the
// original go), and handed to a holder process that keeps them so until a restore takes them over
// (handOver). This is where the policy lives: without CAP_NET_ADMIN, or in an fd-table-only
// dump, a connection is refused naming it, unless --tcp-close asks for it to be left as it is
// (recorded, and restored, as reset by its peer).
import { readFileSync } from 'node:fs';
import { closeFd } from '../../bridge/file.js';
import { pidfdGetfd, pidfdOpen } from '../../bridge/pidfd.js';
import { getpeername, getsockname, getsockoptInt, SOL_SOCKET, AF_INET, AF_INET6 } from '../../bridge/socket.js';
import { hasFilter, HOLD_SECONDS, HOLDER_MARK, lock, tcpState, TCP_ESTABLISHED, unlock } from '../kinds/tcp-repair.js';
import type { ProcFd } from '../proc/fds.js';
import { spawn } from '../../bridge/spawn.js';
import { armWatchdog, type Watchdog, type WatchedSocket } from './unlock-watchdog.js';
import { now } from '../../bridge/clock.js';

const SO_DOMAIN = 39;
const SO_PROTOCOL = 38;
const IPPROTO_TCP = 6;

export interface ConnectionPolicy {
  /** --tcp-close: leave connections unlocked, to be restored as reset */
  tcpClose: boolean;
  /** a whole-process dump (an fd table alone cannot carry a connection: nothing kills or restarts its process) */
  whole: boolean;
}

/** The connections locked, each through a dup of cr's own. */
export interface HeldConnections {
  /** why the dump must be refused: each a connection it cannot carry, naming its process and fd */
  reasons: string[];
  /** unlock every connection (the processes go on) and close cr's dups */
  release(): void;
  /**
   * the processes are killed: give the locked connections to a holder (src/restore/connections.ts
   * ends it), which keeps them locked until a restore takes them over or HOLD_SECONDS pass
   */
  handOver(): void;
}


const NAP = new Int32Array(new SharedArrayBuffer(4));

/**
 * Wait until the holder's environment shows its mark, which is how a restore finds it
 * (src/restore/connections.ts). spawn returns once the child has its new memory (vfork's parent
 * wakes at exec's mm switch), but the kernel fills in where that memory keeps the environment a
 * moment later; a restore run right after this dump could look in between, find no holder, and
 * refuse the connection as held by a socket on this machine. Bounded: a holder still unmarked
 * after 2 s is left to be found later.
 */
function awaitMark(pid: number): void {
  const deadline = now() + 2000;
  while (now() < deadline) {
    try {
      if (readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(`${HOLDER_MARK}=1`)) return;
    } catch {
      return; // gone: nothing to wait for
    }
    Atomics.wait(NAP, 0, 0, 1);
  }
}

/** `127.0.0.1:5000`, `[::1]:5000` from a struct sockaddr_in or sockaddr_in6. */
function endpoint(buf: Buffer | null): string {
  if (buf === null) return '?';
  const port = buf.readUInt16BE(2);
  if (buf.readUInt16LE(0) === AF_INET) return `${[...buf.subarray(4, 8)].join('.')}:${port}`;
  const words: string[] = [];
  for (let i = 0; i < 8; i++) words.push(buf.readUInt16BE(8 + 2 * i).toString(16));
  return `[${words.join(':')}]:${port}`;
}

/**
 * Lock every established TCP connection the frozen processes `procs` hold (a socket held by
 * several fds or processes once), found among their fds as readProcFds read them (/proc shows a
 * socket's link and fdinfo, nothing of its connection). A dump with reasons is to be refused
 * (release first).
 */
export function holdConnections(procs: ReadonlyArray<{ pid: number; fds: readonly ProcFd[] }>, policy: ConnectionPolicy): HeldConnections {
  const held: number[] = [];
  const reasons: string[] = [];
  // Those TCP repair would carry, if cr had CAP_NET_ADMIN: said once, with the two choices.
  const needRepair: string[] = [];
  const seen = new Set<string>();
  // cr's dups of the connections to lock, each with where it is, and its name for a refusal.
  const toLock: Array<WatchedSocket & { own: number; name: string }> = [];
  let watchdog: Watchdog | null = null;
  const out: HeldConnections = {
    reasons,
    release() {
      try {
        for (const own of held.splice(0)) {
          try {
            unlock(own);
          } finally {
            closeFd(own);
          }
        }
      } finally {
        watchdog?.disarm();
      }
    },
    handOver() {
      const socks = held.splice(0);
      try {
        if (socks.length === 0) return;
        // Without a socket the connection's 4-tuple is free: a segment from the peer before the
        // restore would be answered with a reset. Held, it is dropped by the lock's filter, and
        // sent again by the peer to the restored socket. The holder ends with a restore, or after
        // HOLD_SECONDS: its sockets close in repair mode, silently.
        const holder = spawn(['/bin/sleep', String(HOLD_SECONDS)], { fds: socks.map((own, i): [number, number] => [own, 3 + i]), env: { [HOLDER_MARK]: '1' }, setsid: true });
        awaitMark(holder);
      } finally {
        for (const own of socks) closeFd(own);
        watchdog?.disarm();
      }
    },
  };
  try {
    for (const { pid, fds } of procs) {
      const sockets = fds.filter((f) => f.link.startsWith('socket:'));
      if (sockets.length === 0) continue;
      const pidfd = pidfdOpen(pid);
      try {
        for (const { fd, link } of sockets) {
          if (seen.has(link)) continue;
          const own = pidfdGetfd(pidfd, fd);
          let keep = false;
          try {
            const domain = getsockoptInt(own, SOL_SOCKET, SO_DOMAIN);
            if ((domain !== AF_INET && domain !== AF_INET6) || getsockoptInt(own, SOL_SOCKET, SO_PROTOCOL) !== IPPROTO_TCP) continue;
            if (tcpState(own) !== TCP_ESTABLISHED) continue;
            seen.add(link);
            if (policy.tcpClose) continue;
            const name = `${procs.length > 1 ? `process ${pid} ` : ''}fd ${fd} (${endpoint(getsockname(own))} -> ${endpoint(getpeername(own))})`;
            if (!policy.whole) {
              reasons.push(`TCP connection at ${name}: an fd-table dump (--fds-only) does not carry one; dump the whole process, or pass --tcp-close to restore it as reset by its peer`);
            } else if (hasFilter(own)) {
              reasons.push(`TCP connection at ${name}: it has a socket filter (SO_ATTACH_FILTER), which cr does not carry`);
            } else {
              toLock.push({ own, name, pid, fd, ino: Number(/\d+/.exec(link)![0]) });
              keep = true;
            }
          } finally {
            if (!keep) closeFd(own);
          }
        }
      } finally {
        closeFd(pidfd);
      }
    }
    // Armed before the first lock: a cr killed from here on leaves none locked.
    if (toLock.length > 0) watchdog = armWatchdog(toLock);
    while (toLock.length > 0) {
      const { own, name } = toLock.shift()!;
      let locked: boolean;
      try {
        locked = lock(own);
      } catch (err) {
        // Half locked (repair on, no filter): undone before the others are released.
        try {
          unlock(own, true);
        } finally {
          closeFd(own);
        }
        throw err;
      }
      if (locked) {
        held.push(own);
      } else {
        closeFd(own);
        needRepair.push(name);
      }
    }
  } catch (err) {
    for (const { own } of toLock) closeFd(own);
    out.release();
    throw err;
  }
  if (needRepair.length > 0) {
    const which = needRepair.length === 1 ? `the TCP connection at ${needRepair[0]}` : `the TCP connections at ${needRepair.join(', ')}`;
    reasons.push(`${which} need${needRepair.length === 1 ? 's' : ''} TCP repair (CAP_NET_ADMIN) to be carried: run cr with CAP_NET_ADMIN, or dump with --tcp-close to restore ${needRepair.length === 1 ? 'it' : 'them'} as reset by the peer (the program's next read sees ECONNRESET)`);
  }
  return out;
}
