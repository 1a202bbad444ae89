// Waiting for a restored CMD the way a shell would: cr stays its parent, passes on the signals
// it is sent, and ends with CMD's status (128 + N when CMD was killed by signal N). The wait
// polls with WNOHANG so the event loop keeps running the signal handlers.
import { constants } from 'node:os';
import { SyscallError } from '../../bridge/errno.js';
import { kill } from '../../bridge/signal.js';
import { waitpid, WNOHANG } from '../../bridge/wait.js';

/** Signals a user or supervisor sends to stop or poke a foreground program. */
const FORWARDED: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH', 'SIGCONT', 'SIGALRM'];
const ESRCH = 3;
const MAX_POLL_MS = 25;

/**
 * From now on, pass the signals cr gets on to pid instead of dying of them. Returns the function
 * that stops it. Installed before anyone can learn pid (--pidfile), so no signal meant for it
 * can kill cr instead.
 */
export function forwardSignals(pid: number): () => void {
  const handlers = FORWARDED.map((name) => {
    const handler = (): void => {
      try {
        kill(pid, constants.signals[name]);
      } catch (err) {
        if (!(err instanceof SyscallError && err.errno === ESRCH)) throw err;
      }
    };
    process.on(name, handler);
    return [name, handler] as const;
  });
  return () => {
    for (const [name, handler] of handlers) process.off(name, handler);
  };
}

/** Wait until pid (cr's child) ends; returns the exit status cr should end with. */
export async function waitChild(pid: number): Promise<number> {
  for (let delay = 1; ; delay = Math.min(MAX_POLL_MS, delay * 2)) {
    const r = waitpid(pid, WNOHANG);
    if (r?.kind === 'exited') return r.code;
    if (r?.kind === 'signaled') return 128 + r.signal;
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}
