// Established TCP connections at restore (docs/kinds.md, TCP): judged before anything starts,
// and released once every process of the restore holds its sockets (src/kinds/tcp-repair.ts).
// Each is made in repair mode by the process that holds it and left so until then: the two ends
// of a loopback connection, in one process or two members of a tree, both exist before either
// sends a packet (one sent to an end not made yet would be answered by a reset).
import { closeFd } from '../../bridge/file.js';
import { pidfdGetfd, pidfdOpen } from '../../bridge/pidfd.js';
import { SyscallError } from '../../bridge/errno.js';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { kill, SIGKILL } from '../../bridge/signal.js';
import { AF_INET, AF_INET6, bind, connect, getpeername, getsockname, SOCK_STREAM, socket } from '../../bridge/socket.js';
import { badInput } from '../errors.js';
import { sockaddr } from '../kinds/inet.js';
import { connectionText, HOLDER_MARK, release, repairOn } from '../kinds/tcp-repair.js';
import type { Desc, Fd, InetDesc } from '../model/fdtable.js';
import type { Author } from '../trust/author.js';

const established = (descs: readonly Desc[]): InetDesc[] => descs.filter((d): d is InetDesc => d.kind === 'inet' && d.state === 'established');

/**
 * Refuse, before anything starts, an image whose connections cannot be made: restored other than
 * by restarting its process (the process that held it is what the peer talks to), by an author
 * who could not have used TCP repair (it sends segments with any address and sequence numbers:
 * CAP_NET_ADMIN, which cr gives only a root author), without CAP_NET_ADMIN in cr, or whose
 * connection a socket of this machine has (the original still runs).
 */
export function checkConnections(descs: readonly Desc[], mode: 'process' | 'into' | 'command', author: Author): void {
  const conns = established(descs);
  if (conns.length === 0) return;
  const first = connectionText(conns[0]!);
  const more = conns.length > 1 ? ` (and ${conns.length - 1} more)` : '';
  if (mode !== 'process') badInput(`the image holds the established TCP connection ${first}${more}, which only a restart of its process takes over (restore IMAGE alone)`);
  if (author.uid !== 0) badInput(`the image holds the established TCP connection ${first}${more}: TCP repair needs CAP_NET_ADMIN, which its author (uid ${author.uid}, ${author.source}) does not have`);
  for (const d of conns) {
    const own = socket(d.family === 4 ? AF_INET : AF_INET6, SOCK_STREAM, 0);
    try {
      // The restore's own steps, on a probe of cr's: repair mode, bind, connect (which makes the
      // connection without a packet, or finds its 4-tuple taken).
      if (!repairOn(own)) badInput(`the image holds the established TCP connection ${connectionText(d)}: TCP repair needs CAP_NET_ADMIN, which cr does not have`);
      const step = (what: string, call: () => void): void => {
        const attempt = (): SyscallError | null => {
          try {
            call();
            return null;
          } catch (err) {
            if (!(err instanceof SyscallError)) throw err;
            return err;
          }
        };
        let err = attempt();
        // The dump's holder has it (src/dump/connections.ts): ended, it closes it silently.
        if (err !== null && what === 'connect' && err.code === 'EADDRNOTAVAIL' && endHolder(d)) err = attempt();
        if (err === null) return;
        if (what === 'connect' && err.code === 'EADDRNOTAVAIL') {
          badInput(`the TCP connection ${connectionText(d)} is held by a socket on this machine (is the dumped process still running? dump --kill moves it): it cannot be restored; nothing was started`);
        }
        badInput(`the TCP connection ${connectionText(d)} cannot be restored here: ${what} answers ${err.code}${err.code === 'EADDRNOTAVAIL' ? ' (its local address is not on this machine)' : ''}`);
      };
      step('bind', () => bind(own, sockaddr(d.family, d.address!, d.port!)));
      step('connect', () => connect(own, sockaddr(d.family, d.peerAddress!, d.peerPort!)));
    } finally {
      closeFd(own); // in repair mode: closed without a packet
    }
  }
}

/** `host:port` of a struct sockaddr, as the image keeps addresses. */
function nameOf(buf: Buffer | null): string {
  if (buf === null) return '';
  const port = buf.readUInt16BE(2);
  if (buf.readUInt16LE(0) === AF_INET) return `${[...buf.subarray(4, 8)].join('.')}:${port}`;
  const words: string[] = [];
  for (let i = 0; i < 8; i++) words.push(buf.readUInt16BE(8 + 2 * i).toString(16));
  return `${words.join(':')}:${port}`;
}

/**
 * End the holder a dump --kill left with connection d (a process of cr's user marked HOLDER_MARK
 * holding a socket with d's 4-tuple); false when none has it. Its sockets close in repair mode,
 * without a packet, as it exits: waited for.
 */
function endHolder(d: InetDesc): boolean {
  const want = `${d.address}:${d.port} ${d.peerAddress}:${d.peerPort}`;
  const me = process.geteuid!();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    try {
      if (statSync(`/proc/${pid}`).uid !== me) continue;
      if (!readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(`${HOLDER_MARK}=1`)) continue;
      const pidfd = pidfdOpen(pid);
      let holds = false;
      try {
        for (const name of readdirSync(`/proc/${pid}/fd`)) {
          if (!readlinkSync(`/proc/${pid}/fd/${name}`).startsWith('socket:')) continue;
          const own = pidfdGetfd(pidfd, Number(name));
          try {
            holds ||= `${nameOf(getsockname(own))} ${nameOf(getpeername(own))}` === want;
          } finally {
            closeFd(own);
          }
        }
      } finally {
        closeFd(pidfd);
      }
      if (!holds) continue;
      kill(pid, SIGKILL);
      for (let i = 0; i < 1000 && existsSync(`/proc/${pid}/fd/3`); i++) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
      return true;
    } catch {
      continue; // gone meanwhile, or not ours to read
    }
  }
  return false;
}

/**
 * Take every established connection among `holders`' fds out of repair mode (each description
 * once, through the first process holding it), the processes still stopped.
 */
export function releaseConnections(holders: ReadonlyArray<{ pid: number; fds: readonly Fd[] }>, descs: readonly Desc[]): void {
  const byId = new Map(established(descs).map((d) => [d.id, d]));
  if (byId.size === 0) return;
  const done = new Set<number>();
  for (const { pid, fds } of holders) {
    const mine = fds.filter((f) => byId.has(f.desc) && !done.has(f.desc));
    if (mine.length === 0) continue;
    const pidfd = pidfdOpen(pid);
    try {
      for (const f of mine) {
        if (done.has(f.desc)) continue;
        done.add(f.desc);
        const d = byId.get(f.desc)!;
        const own = pidfdGetfd(pidfd, f.fd);
        try {
          release(own, d);
        } catch (err) {
          const why = err instanceof SyscallError ? err.message : (err as Error).message;
          throw new Error(`the TCP connection ${connectionText(d)} at fd ${f.fd} could not leave repair mode: ${why}`);
        } finally {
          closeFd(own);
        }
      }
    } finally {
      closeFd(pidfd);
    }
  }
}
