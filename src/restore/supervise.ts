// cr and the signals sent to it while it restores and while it waits for CMD. A restore is never
// cut short by a signal (that would leave a live target half-restored, its signals blocked): the
// signals are held until it is complete or undone. Then they go on to CMD, whom cr waits for the
// way a shell would, ending with its status (128 + N when CMD was killed by signal N); or, when
// cr does not wait, they end cr as they would have.
import { constants } from 'node:os';
import { SyscallError } from '../../bridge/errno.js';
import { kill } from '../../bridge/signal.js';
import { waitpid, WNOHANG } from '../../bridge/wait.js';

/** Signals a user or supervisor sends to stop or poke a foreground program. */
const HELD: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGQUIT', 'SIGUSR1', 'SIGUSR2', 'SIGALRM', 'SIGWINCH', 'SIGCONT'];
/** Of those, the ones whose default action would not end a process. */
const HARMLESS = new Set<NodeJS.Signals>(['SIGWINCH', 'SIGCONT']);
const ESRCH = 3;
const MAX_POLL_MS = 25;

export class HeldSignals {
  private readonly received: NodeJS.Signals[] = [];
  /** the first signal that would have ended cr, passed on or not */
  private fatal: NodeJS.Signals | null = null;
  private target = 0;
  private readonly handlers = HELD.map((name) => {
    const handler = (): void => {
      if (this.fatal === null && !HARMLESS.has(name)) this.fatal = name;
      if (this.target) this.send(name);
      else this.received.push(name);
    };
    process.on(name, handler);
    return [name, handler] as const;
  });

  /** Pass every held signal, and every later one, on to pid (a process group: -pgid). */
  forwardTo(pid: number): void {
    this.target = pid;
    for (const name of this.received.splice(0)) this.send(name);
  }

  /**
   * Stop holding; returns the first held signal that would have ended cr, if any. Called right
   * after the event loop's turns (runSignalHandlers): a signal libuv has caught but not yet
   * dispatched when its handler goes is dropped.
   */
  release(): number | null {
    for (const [name, handler] of this.handlers) process.off(name, handler);
    return this.fatal ? constants.signals[this.fatal] : null;
  }

  private send(name: NodeJS.Signals): void {
    try {
      kill(this.target, constants.signals[name]);
    } catch (err) {
      if (!(err instanceof SyscallError && err.errno === ESRCH)) throw err;
    }
  }
}

/**
 * Let the event loop run the handlers of signals that arrived during synchronous work. libuv
 * dispatches them from its poll phase; measured, the handler has run after at most two turns of
 * the loop (one when the loop is already running), so three are taken.
 */
export async function runSignalHandlers(): Promise<void> {
  for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve));
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
