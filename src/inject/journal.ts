// What cr must put back if it dies while it works inside a live process, and the stop that keeps
// the process from running on in the meantime (docs/injection.md, "If cr dies").
//
// A SIGKILLed tracer cannot clean up: the kernel detaches its tracees and lets them run from where
// they stand, here with cr's registers, every signal blocked, cr's code mapped. So before cr
// changes anything in a live process it (1) writes a journal of what it found: the registers,
// the signal mask, the address ranges mapped, the process's start time (so a reused pid is never
// touched), and for a restore its fd numbers and RLIMIT_NOFILE; (2) puts the process into a
// group stop (SIGSTOP sent to the thread and passed on by cr as its tracer). A traced thread of a
// stopped group still runs when its tracer resumes it, so the injection works as before; but
// when the tracer goes away the kernel (__ptrace_unlink) re-arms the group stop of every thread,
// which then stops at its next return to user space: before any instruction of cr's or any
// register value of cr's runs. `cr recover PID` then puts it back from the journal. When cr is
// done and the registers and mask are its own again, SIGCONT ends the stop (cr takes the SIGCONT
// off the queue again itself) and the journal is removed.
import { closeSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import {
  cont, getRegsInto, getSiginfo, getSigmask, interrupt, peekSiginfo, PTRACE_EVENT_STOP, REG_COUNT, setRegsFrom, setSigmask,
} from '../../bridge/ptrace.js';
import { SIGCONT, SIGSTOP, SIGTRAP, tgkill } from '../../bridge/signal.js';
import { waitStop } from '../../bridge/wait.js';
import { CrError } from '../errors.js';
import { readProc } from '../proc/read.js';
import { randomHex } from '../random-name.js';

export const JOURNAL_VERSION = 1;
const ALL_SIGNALS = Buffer.alloc(8, 0xff);
const SI_TKILL = -6;

/** Where journals live: a directory of cr's user only (0700), made on first use. */
export function runDir(): string {
  const uid = process.geteuid!();
  const xdg = process.env.XDG_RUNTIME_DIR;
  const dir = xdg && isAbsolute(xdg) ? join(xdg, 'cr') : uid === 0 ? '/run/cr' : join(tmpdir(), `cr-${uid}`);
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new CrError(`cannot make cr's run directory ${dir}: ${(err as Error).message}`);
  }
  // Someone else's directory, or one others may write (a planted one under /tmp), is refused:
  // a journal tells recover what to write into a process.
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid || (st.mode & 0o077) !== 0) {
    throw new CrError(`cr's run directory ${dir} is not a directory of uid ${uid} that only it may use (mode ${(st.mode & 0o7777).toString(8)}, uid ${st.uid})`);
  }
  return dir;
}

/**
 * The journal's time of writing. The first toISOString in a process costs about 0.2 ms (V8 makes
 * its date formatting ready): a dump calls readyJournal before it freezes anything, so that the
 * journal written while the process is frozen does not pay it.
 */
const writtenNow = (): string => new Date().toISOString();

/** What writing a journal needs made ready once per cr, before a process is frozen. */
export function readyJournal(): void {
  writtenNow();
}

/** Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot. */
export function startTime(pid: number): string {
  const stat = readProc(`/proc/${pid}/stat`);
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

/** Hex digits from..to of text without leading zeros (one digit left of an all-zero number). */
function hexAt(text: string, from: number, to: number): string {
  let i = from;
  while (i < to - 1 && text.charCodeAt(i) === 0x30) i++;
  return text.slice(i, to);
}

/**
 * The address ranges mapped in pid, as /proc/PID/maps lists them (`maps`: its text): hex, without
 * leading zeros. Read while the process is frozen: each line's range is cut out where it stands.
 */
function mappedHex(pid: number, maps = readProc(`/proc/${pid}/maps`)): Array<[string, string]> {
  const ranges: Array<[string, string]> = [];
  for (let at = 0; at < maps.length; ) {
    let eol = maps.indexOf('\n', at);
    if (eol < 0) eol = maps.length;
    const space = maps.indexOf(' ', at);
    if (space > at && space < eol) {
      const dash = maps.indexOf('-', at);
      if (dash >= at && dash < space) ranges.push([hexAt(maps, at, dash), hexAt(maps, dash + 1, space)]);
    }
    at = eol + 1;
  }
  return ranges;
}

/** The address ranges mapped in pid, as /proc/PID/maps lists them. */
export const mappedRanges = (pid: number): Array<[bigint, bigint]> => mappedHex(pid).map(([a, b]) => [BigInt(`0x${a}`), BigInt(`0x${b}`)]);

/** Parts of `now` that `before` did not cover: what cr mapped (merged with a neighbour or not). */
export function addedRanges(before: Array<[bigint, bigint]>, now: Array<[bigint, bigint]>): Array<[bigint, bigint]> {
  const added: Array<[bigint, bigint]> = [];
  const old = [...before].sort((x, y) => (x[0] < y[0] ? -1 : 1));
  for (const [start, end] of now) {
    let at = start;
    for (const [s, e] of old) {
      if (e <= at || s >= end) continue;
      if (s > at) added.push([at, s]);
      at = e > at ? e : at;
      if (at >= end) break;
    }
    if (at < end) added.push([at, end]);
  }
  return added;
}

export interface FsIdsRecord {
  fsuid: number;
  fsgid: number;
  groups: number[];
  dumpable: number;
  pdeathSignal: number;
}

/** One journal: a JSON file per process, `<pid>.json` in runDir(). */
export interface JournalRecord {
  version: number;
  pid: number;
  /** the thread cr injects into (registers and mask are that thread's) */
  tid: number;
  startTime: string;
  /** what cr was doing */
  command: 'dump' | 'into';
  /** the cr process, and when it wrote this */
  cr: number;
  written: string;
  /** the process was job-control stopped before cr came: it stays stopped */
  wasStopped: boolean;
  /** user_regs_struct of tid, REG_COUNT words as decimal strings */
  regs: string[];
  /** blocked-signal mask of tid, 16 hex digits (8 bytes little-endian) */
  mask: string;
  /** address ranges mapped before cr mapped anything, as hex pairs */
  maps: Array<[string, string]>;
  /** restore --into: fd numbers and RLIMIT_NOFILE before the replay */
  fds?: number[];
  rlimit?: { soft: number; hard: number };
  /** restore --into: the thread's own fs ids, once cr gave it the image author's */
  fsIds?: FsIdsRecord;
  /** restore --into: the plan passed its commit (rollback can no longer undo it) */
  committed?: boolean;
  /** restore --into, after the commit: the plan's last op; the batch running (its records' address, calls, last op) */
  lastOp?: number;
  batchAt?: string;
  batchCalls?: number;
  batchEndsAt?: number;
  /** restore --into: every op of the plan ran */
  replayed?: boolean;
  /**
   * A dump of a threaded process: the other threads cr ran code in (to read their own state),
   * each with its registers and mask as found, in the same forms as `regs` and `mask`.
   */
  others?: Array<{ tid: number; regs: string[]; mask: string }>;
}

const isAlive = (pid: number): boolean => {
  try {
    const state = readProc(`/proc/${pid}/stat`);
    const s = state.charAt(state.lastIndexOf(')') + 2);
    return s !== 'Z' && s !== 'X';
  } catch {
    return false;
  }
};

const PAUSE = new Int32Array(new SharedArrayBuffer(4));

const pathOf = (dir: string, pid: number): string => join(dir, `${pid}.json`);

/** Write a journal whole: a private temporary file renamed over the old one. */
function writeJournal(dir: string, record: JournalRecord): void {
  const tmp = join(dir, `.${record.pid}.${randomHex(6)}.tmp`);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, JSON.stringify(record));
    // No fsync: the journal must survive cr's death, not the machine's (a reboot ends the process too).
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, pathOf(dir, record.pid));
}

/** The journal of pid in runDir(), or null. Bad JSON is a CrError naming the file. */
export function readJournal(pid: number, dir = runDir()): JournalRecord | null {
  let text: string;
  try {
    text = readFileSync(pathOf(dir, pid), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const j = JSON.parse(text) as JournalRecord;
    if (j.version !== JOURNAL_VERSION || j.pid !== pid || !Array.isArray(j.regs) || j.regs.length !== REG_COUNT) throw new Error('not a journal of this version');
    const badOther = (o: { tid?: unknown; regs?: unknown; mask?: unknown }): boolean =>
      !Number.isSafeInteger(o?.tid) || !Array.isArray(o.regs) || o.regs.length !== REG_COUNT || typeof o.mask !== 'string' || !/^[0-9a-f]{16}$/.test(o.mask);
    if (j.others !== undefined && (!Array.isArray(j.others) || j.others.some(badOther))) throw new Error('its other threads are not (tid, registers, mask)');
    return j;
  } catch (err) {
    throw new CrError(`${pathOf(dir, pid)} is not a cr journal: ${(err as Error).message}`, 2);
  }
}

/** Every journal in runDir() (pids, ascending). */
export function listJournals(dir = runDir()): number[] {
  return readdirSync(dir)
    .map((name) => /^(\d+)\.json$/.exec(name)?.[1])
    .filter((p): p is string => p !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
}

export function removeJournal(pid: number, dir = runDir()): void {
  try {
    unlinkSync(pathOf(dir, pid));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

export const regsOf = (j: JournalRecord): BigInt64Array => BigInt64Array.from(j.regs.map((r) => BigInt(r)));
export const maskOf = (j: JournalRecord): Buffer => Buffer.from(j.mask, 'hex');

/**
 * Whether tid's current stop (a PTRACE_EVENT_STOP) is a group stop: the process was stopped by
 * job control, or cr's own stop is in effect. A PTRACE_INTERRUPT stop of a running process reports
 * SIGTRAP instead.
 */
function inGroupStop(tid: number): boolean {
  const info = getSiginfo(tid);
  return info.code >> 8 === PTRACE_EVENT_STOP && info.signo !== SIGTRAP;
}

/**
 * Stop the group while tid (seized, in a PTRACE_EVENT_STOP, nothing else of it running) stays
 * ours: SIGSTOP to tid, all signals blocked so it is the one taken, and passed on by cr. A cr
 * killed at any step leaves the process stopped (the SIGSTOP is queued before anything changes).
 * Signals taken on the way (pending ones the process did not block) are suppressed and returned,
 * to be sent again when the stop ends.
 */
function stopGroup(pid: number, tid: number, mask: Buffer, timeoutMs: number): number[] {
  const deferred: number[] = [];
  tgkill(pid, tid, SIGSTOP);
  setSigmask(tid, ALL_SIGNALS);
  cont(tid, 0);
  for (;;) {
    const stop = waitStop(tid, timeoutMs);
    if (stop.kind !== 'stopped') throw new Error(`pid ${pid} ${stop.kind} while cr was stopping it`);
    if (stop.event === PTRACE_EVENT_STOP && inGroupStop(tid)) break;
    if (stop.event === 0 && stop.signal === SIGSTOP && getSiginfo(tid).code === SI_TKILL) {
      cont(tid, SIGSTOP);
      continue;
    }
    if (stop.event === 0) deferred.push(stop.signal);
    cont(tid, 0);
  }
  // The stop is in effect: the mask can be the process's own again until the injector blocks all.
  setSigmask(tid, mask);
  return deferred;
}

/**
 * End the group stop cr made (tid in a PTRACE_EVENT_STOP, its registers and mask its own), so that
 * no handler of the process sees a SIGCONT: SIGCONT lifts the stop the moment it is sent and
 * queues itself; the SIGSTOP sent right after takes it off every queue again (a stop signal
 * flushes SIGCONT) and is then taken by cr as the tracer, suppressed. A cr killed between the two
 * sends leaves the process running with one SIGCONT to handle; after them, stopped again (the
 * SIGSTOP is pending), for recover. A SIGCONT that was pending before is sent again afterwards.
 * Ends in a PTRACE_EVENT_STOP.
 */
export function endGroupStop(pid: number, tid: number, deferred: number[], timeoutMs = 5000): void {
  const hadCont = [...peekSiginfo(tid, false), ...peekSiginfo(tid, true)].some((info) => info.readInt32LE(0) === SIGCONT);
  tgkill(pid, tid, SIGCONT);
  tgkill(pid, tid, SIGSTOP);
  if (hadCont) deferred.push(SIGCONT);
  let taken = false;
  cont(tid, 0);
  for (;;) {
    const stop = waitStop(tid, timeoutMs);
    if (stop.kind !== 'stopped') throw new Error(`pid ${pid} ${stop.kind} while cr was letting it go`);
    if (stop.event === PTRACE_EVENT_STOP && taken) return;
    if (stop.event === 0) {
      const info = getSiginfo(tid);
      if (stop.signal === SIGSTOP && !taken && info.code === SI_TKILL && info.raw.readInt32LE(16) === process.pid) {
        // Suppressed by the cont below; the interrupt brings tid to an event stop right after.
        taken = true;
        interrupt(tid);
      } else {
        deferred.push(stop.signal);
      }
    }
    cont(tid, 0);
  }
}

/**
 * The journal and the stop for one stretch of work inside a live process: `Guard.start` before
 * the first change (the injector's attach), `end()` once everything is put back.
 */
export class Guard {
  private constructor(
    private readonly dir: string,
    readonly record: JournalRecord,
    /** signals suppressed while stopping the group, sent again by end() */
    private readonly deferred: number[],
    private readonly timeoutMs: number,
    /** /proc/PID/maps as start() read it, before cr changed anything: for the injector's attach (Injector.attach's `maps`) */
    readonly maps: string,
  ) {}

  /**
   * Journal tid (seized, in a PTRACE_EVENT_STOP with its own registers) and stop its group.
   * Throws a CrError, with nothing changed, when the journal cannot be written.
   */
  static start(
    pid: number,
    tid: number,
    command: JournalRecord['command'],
    extra: Pick<JournalRecord, 'fds' | 'rlimit'> = {},
    timeoutMs = 5000,
  ): Guard {
    const dir = runDir();
    const regs = new BigInt64Array(REG_COUNT);
    getRegsInto(tid, regs);
    const mask = getSigmask(tid);
    const maps = readProc(`/proc/${pid}/maps`);
    const record: JournalRecord = {
      version: JOURNAL_VERSION,
      pid,
      tid,
      startTime: startTime(pid),
      command,
      cr: process.pid,
      written: writtenNow(),
      wasStopped: inGroupStop(tid),
      regs: [...regs].map(String),
      mask: mask.toString('hex'),
      maps: mappedHex(pid, maps),
      ...extra,
    };
    try {
      writeJournal(dir, record);
    } catch (err) {
      throw new CrError(`cannot write the journal for pid ${pid} in ${dir}: ${(err as Error).message}; nothing was changed`);
    }
    const guard = new Guard(dir, record, [], timeoutMs, maps);
    if (!record.wasStopped) guard.deferred.push(...stopGroup(pid, tid, mask, timeoutMs));
    return guard;
  }

  /**
   * Journal another thread of the process (seized, in a PTRACE_EVENT_STOP with its own registers)
   * before cr runs code in it: recover puts its registers and mask back too.
   */
  addThread(tid: number): void {
    const regs = new BigInt64Array(REG_COUNT);
    getRegsInto(tid, regs);
    const others = [...(this.record.others ?? []), { tid, regs: [...regs].map(String), mask: getSigmask(tid).toString('hex') }];
    this.update({ others });
  }

  /** Record progress (the plan's commit, a thread's own fs ids) before it matters to recover. */
  update(fields: Partial<JournalRecord>): void {
    Object.assign(this.record, fields, { written: writtenNow() });
    writeJournal(this.dir, this.record);
  }

  /**
   * Registers and mask are the process's own again: end the stop (unless it was stopped before
   * cr came), send again what was suppressed, and drop the journal. tid is left in an event stop.
   */
  end(): void {
    const { pid, tid } = this.record;
    // The injector put these back already, unless its finish() failed half-way: set them again.
    setRegsFrom(tid, regsOf(this.record));
    setSigmask(tid, maskOf(this.record));
    if (!this.record.wasStopped) endGroupStop(pid, tid, this.deferred, this.timeoutMs);
    for (const sig of this.deferred) {
      try {
        tgkill(pid, tid, sig);
      } catch {
        // gone
      }
    }
    removeJournal(pid, this.dir);
  }

  /**
   * end(), or when the process has ended, just the journal dropped. Any other failure leaves
   * the process stopped with its journal, and says so.
   */
  close(): void {
    try {
      this.end();
    } catch (err) {
      // A process being killed fails ptrace (ESRCH) a moment before /proc shows it dead.
      const deadline = Date.now() + 1000;
      while (isAlive(this.record.pid) && Date.now() < deadline) Atomics.wait(PAUSE, 0, 0, 5);
      if (!isAlive(this.record.pid)) {
        removeJournal(this.record.pid, this.dir);
        return;
      }
      throw new CrError(`pid ${this.record.pid} could not be let go (${(err as Error).message}); it is stopped: cr recover ${this.record.pid} puts it back`);
    }
  }
}
