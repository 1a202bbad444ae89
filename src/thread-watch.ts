// Whether a node worker thread still runs, seen from cr's main thread while it waits on words the
// two share, without the event loop (cr's main thread does not return to it mid-dump): a worker
// that dies outside JavaScript (V8 out of memory in its isolate: node then ends the thread, and
// only the event loop, which a dump never reaches in time, hears of it) runs no code that could
// tell it. The kernel does: the thread's entry /proc/self/task/TID goes with it (a thread other
// than the leader is reaped as it exits; node joins it later, from the event loop, but the OS
// thread is gone before that). The worker publishes its thread id and start time as it starts
// (publishThread); the main thread opens that entry's stat once and reads it again when a wait
// times out: a file of /proc/PID pins its task's pid, so a read of a thread gone is ESRCH even
// once the number is another thread's, and the start time rules out a number reused before the
// first open.
import { closeSync, openSync, readSync } from 'node:fs';

/** ctl words used from `word` on: the thread id (0 until published), then its start time in two */
export const WATCH_WORDS = 3;
const HALF = 2 ** 30;

/**
 * JavaScript for the worker's code, run first: publish its thread id and start time into the
 * Int32Array named `ctl` at `word`. One that cannot read them publishes nothing (never watched).
 */
export function publishThread(ctl: string, word: number): string {
  return `try {
  const { readlinkSync, readFileSync } = require('node:fs');
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  const stat = readFileSync('/proc/thread-self/stat', 'latin1');
  const start = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  Atomics.store(${ctl}, ${word + 1}, Math.floor(start / ${HALF}));
  Atomics.store(${ctl}, ${word + 2}, start % ${HALF});
  Atomics.store(${ctl}, ${word}, tid);
} catch {}
`;
}

/** The state and start time in a /proc/PID/stat text (fields 3 and 22, after the comm's last ')'). */
function parseStat(text: string): { state: string; start: number } {
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0] ?? '', start: Number(fields[19]) };
}

export class ThreadWatch {
  /** its /proc/self/task/TID/stat, once opened */
  private fd = -1;
  private gone = false;
  private readonly buf = Buffer.alloc(1024);

  constructor(
    private readonly ctl: Int32Array,
    private readonly word: number,
  ) {}

  /**
   * False once the thread that published itself has ended; true while it runs, before it has
   * published (whether it starts at all is its owner's question), and whenever /proc cannot tell.
   */
  alive(): boolean {
    if (this.gone) return false;
    const tid = Atomics.load(this.ctl, this.word);
    if (tid === 0) return true;
    try {
      const first = this.fd < 0;
      if (first) this.fd = openSync(`/proc/self/task/${tid}/stat`, 'r');
      const { state, start } = parseStat(this.buf.toString('latin1', 0, readSync(this.fd, this.buf, 0, this.buf.length, 0)));
      const published = Atomics.load(this.ctl, this.word + 1) * HALF + Atomics.load(this.ctl, this.word + 2);
      if ((first && start !== published) || state === 'Z' || state === 'X') this.gone = true;
    } catch (err) {
      // ENOENT: no such thread when opened; ESRCH: the one opened has ended. Anything else (no
      // fd left, say) says nothing about the thread.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ESRCH') this.gone = true;
    }
    return !this.gone;
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}
