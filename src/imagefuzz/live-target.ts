// A live process for `restore --into` to be pointed at, and proof that a refused restore left it
// alone: its fd table as /proc shows it (numbers, what each refers to, position, flags,
// close-on-exec), that it runs untraced, and, at the end, the bytes queued in its pipe.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { closeFd, readFd, writeFd } from '../../bridge/file.js';
import { O_CLOEXEC } from '../model/fdtable.js';
import { pipe2 } from '../../bridge/pipe.js';
import { killAndReap, spawn } from '../../bridge/spawn.js';

/** What /proc says about every fd of pid, one line each. */
export function fdSnapshot(pid: number): string {
  const fds = readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);
  return fds
    .map((fd) => {
      const info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1').split('\n').filter((l) => /^(pos|flags):/.test(l)).join(' ');
      return `${fd} -> ${readlinkSync(`/proc/${pid}/fd/${fd}`)} ${info}`;
    })
    .join('\n');
}

/** '' when pid runs untraced, else what is wrong. */
export function runState(pid: number): string {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const state = /^State:\s*(\S)/m.exec(status)?.[1];
  const tracer = /^TracerPid:\s*(\d+)/m.exec(status)?.[1];
  const problems: string[] = [];
  if (tracer !== '0') problems.push(`traced by ${tracer}`);
  if (state === 'T' || state === 't') problems.push(`stopped (state ${state})`);
  if (state === 'Z' || state === 'X') problems.push('dead');
  return problems.join(', ');
}

/** nanosleep and clock_nanosleep (x86_64), where sleep(1) waits. */
const SLEEPING = ['35', '230'];

export class LiveTarget {
  private constructor(
    readonly pid: number,
    /** our read end of the target's pipe, kept to read the bytes back at the end */
    private readonly reader: number,
    readonly canary: Buffer,
    readonly before: string,
  ) {}

  /**
   * A sleeping process holding a pipe (read end at 3, write end at 4 and 7) with bytes queued,
   * and /dev/null at 5. It is started with posix_spawn, so node never waits for it.
   */
  static start(canary = Buffer.from('bytes the target must still hold\n')): LiveTarget {
    const [r, w] = pipe2(O_CLOEXEC);
    let pid: number;
    try {
      for (let off = 0; off < canary.length; ) off += writeFd(w, canary.subarray(off));
      pid = spawn(['/bin/sh', '-c', 'exec 5>/dev/null 7>&4; exec sleep 100000'], { fds: [[r, 3], [w, 4]] });
    } catch (err) {
      closeFd(r);
      closeFd(w);
      throw err;
    }
    closeFd(w);
    // sh replaces itself with sleep: wait until the fds are in place and sleep sleeps (its
    // loader and locale files, open for a moment after the exec, are closed by then).
    const deadline = Date.now() + 5000;
    const nap = new Int32Array(new SharedArrayBuffer(4));
    const asleep = (): boolean => /\bsleep\b/.test(readFileSync(`/proc/${pid}/cmdline`, 'latin1').replace(/\0/g, ' ')) && SLEEPING.includes(readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0]!);
    while (!asleep() || readdirSync(`/proc/${pid}/fd`).length < 4) {
      if (Date.now() > deadline) {
        killAndReap(pid);
        closeFd(r);
        throw new Error('the target process did not settle within 5 s');
      }
      Atomics.wait(nap, 0, 0, 2);
    }
    return new LiveTarget(pid, r, canary, fdSnapshot(pid));
  }

  /** '' when the target's fd table is as it was and it runs untraced, else what changed. */
  check(): string {
    const state = runState(this.pid);
    if (state) return `target ${this.pid} is ${state}`;
    const now = fdSnapshot(this.pid);
    if (now !== this.before) return `target ${this.pid}'s fd table changed:\n--- before\n${this.before}\n--- after\n${now}`;
    return '';
  }

  /** Kill the target and read what its pipe holds: '' when exactly the canary, else what differs. */
  stop(): string {
    killAndReap(this.pid);
    try {
      const held = drain(this.reader);
      return held.equals(this.canary) ? '' : `the target's pipe held ${held.length} bytes, not the ${this.canary.length} queued`;
    } finally {
      closeFd(this.reader);
    }
  }
}

/** Everything queued in a pipe whose writers are all gone. */
function drain(fd: number): Buffer {
  const chunks: Buffer[] = [];
  const buf = Buffer.alloc(65536);
  for (let n; (n = readFd(fd, buf)) > 0; ) chunks.push(Buffer.from(buf.subarray(0, n)));
  return Buffer.concat(chunks);
}
