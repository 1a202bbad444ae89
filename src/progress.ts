// The progress line a dump or restore that moves much memory prints on a terminal: bytes of
// pages moved of the total, the rate, and the time left, rewritten in place on stderr and
// cleared at the end. Never on a pipe or a file (a log or a script reads stderr), never under
// --quiet, never for less than PROGRESS_MIN_BYTES: a small process is done before a line helps.
import { isatty } from '../bridge/tty.js';
import { now } from '../bridge/clock.js';

/** Told, as pages are moved, how many bytes are done of an estimated total. */
export type OnProgress = (moved: number, total: number) => void;

/** 100 MB: below it a dump or restore takes well under a second. */
export const PROGRESS_MIN_BYTES = 100e6;
const REDRAW_MS = 100;
const MiB = 1 << 20;

export interface ProgressLine {
  onProgress: OnProgress;
  /** clear the line, if one was drawn */
  end(): void;
}

/** A progress line for `verb` ("dumping", "restoring") on stderr, or undefined when not a terminal. */
export function terminalProgress(verb: string): ProgressLine | undefined {
  // Asked of the fd, not of process.stderr: making that stream, in every dump and restore, loads
  // Node's stream modules (about 2 ms and 150 page faults, docs/performance.md).
  if (!isatty(2)) return undefined;
  const stream = process.stderr;
  // The clock starts at the first bytes moved (the rate is of the copy, not of what came
  // before it): the first line, drawn then, has no rate yet; the next ones a redraw apart do.
  let started = -1;
  let drawnAt = -Infinity;
  let drawn = false;
  const onProgress: OnProgress = (moved, total) => {
    if (total < PROGRESS_MIN_BYTES) return;
    const at = now();
    if (started < 0) started = at;
    else if (at - drawnAt < REDRAW_MS) return;
    drawnAt = at;
    const done = Math.min(moved, total);
    const seconds = (at - started) / 1000;
    const rate = seconds > 0 ? done / seconds : 0;
    const speed = rate > 0 ? `, ${(rate / MiB).toFixed(0)} MiB/s, ${((total - done) / rate).toFixed(1)} s left` : '';
    const percent = Math.floor((100 * done) / total);
    stream.write(`\r\x1b[K${verb}: ${(done / MiB).toFixed(0)} of ${(total / MiB).toFixed(0)} MiB of memory (${percent}%)${speed}`);
    drawn = true;
  };
  return {
    onProgress,
    end: () => {
      if (drawn) stream.write('\r\x1b[K');
      drawn = false;
    },
  };
}
