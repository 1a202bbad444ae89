// The watchdog of a dump's locked TCP connections: a process of its own that unlocks them if cr
// dies before it has. A connection cr locked (src/dump/connections.ts: repair mode, a filter
// dropping every segment) stays so when cr is SIGKILLed, and its process, let go by the kernel,
// would run on deaf to its peer until the connection timed out; no journal helps, as nothing
// stops the process for `cr recover`. So before the first lock cr starts this watchdog, naming
// every socket it is about to lock (process, fd, inode), with the read end of a pipe whose write
// end only cr holds. When cr is done with the connections (unlocked them, or handed them to the
// holder of a killed process's connections) it writes one byte and closes the pipe: the watchdog
// exits. End of file without that byte means cr died: the watchdog takes each socket from its
// process (pidfd_getfd), unlocks it if the fd still is that socket, and exits.
// It holds no socket while it waits: one would keep a connection open after its process closed
// it, and its 4-tuple taken for a restore. It is started through `sh -c '... &'`, which exits at
// once, so that it is nobody's child to reap (not cr's, whose in-process users would keep a
// zombie), but whoever adopts orphans'.
import { fileURLToPath } from 'node:url';
import { closeFd, writeFd } from '../../bridge/file.js';
import { pipe2 } from '../../bridge/pipe.js';
import { reap, spawn } from '../../bridge/spawn.js';
import { O_CLOEXEC } from '../abi.js';

/** The byte that tells the watchdog cr is done with the connections: exit, touch nothing. */
export const WATCHDOG_DONE = 0x2e;
/** The watchdog's end of the pipe from cr. */
export const WATCHDOG_PIPE_FD = 3;
/** The environment variable that marks a watchdog. */
export const WATCHDOG_MARK = 'CR_TCP_WATCHDOG';

const PROGRAM = fileURLToPath(new URL('./unlock-watchdog-run.js', import.meta.url));

/** A socket about to be locked: in process pid at fd, inode ino (`socket:[ino]`). */
export interface WatchedSocket {
  pid: number;
  fd: number;
  ino: number;
}

export interface Watchdog {
  /** cr is done with the connections: the watchdog exits without touching them. */
  disarm(): void;
}

/** Start a watchdog over `socks`; its arguments are `PID:FD:INO` each. */
export function armWatchdog(socks: readonly WatchedSocket[]): Watchdog {
  const [readEnd, writeEnd] = pipe2(O_CLOEXEC);
  try {
    const sh = spawn(['/bin/sh', '-c', '"$0" "$@" & exit 0', process.execPath, PROGRAM, ...socks.map((s) => `${s.pid}:${s.fd}:${s.ino}`)], {
      fds: [[readEnd, WATCHDOG_PIPE_FD]],
      env: { ...process.env, [WATCHDOG_MARK]: '1' },
      setsid: true,
    });
    const ended = reap(sh, 5000);
    if (ended.kind !== 'exited' || ended.code !== 0) throw new Error(`sh ended with ${ended.kind === 'exited' ? `status ${ended.code}` : `signal ${ended.signal}`}`);
  } catch (err) {
    closeFd(writeEnd);
    throw new Error(`cannot start the watchdog of the dump's TCP connections: ${(err as Error).message}`);
  } finally {
    closeFd(readEnd);
  }
  let armed = true;
  return {
    disarm() {
      if (!armed) return;
      armed = false;
      try {
        writeFd(writeEnd, Buffer.from([WATCHDOG_DONE]));
      } finally {
        closeFd(writeEnd);
      }
    },
  };
}
