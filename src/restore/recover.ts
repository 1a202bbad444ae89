// `cr recover PID`: put back a process that a cr killed in the middle of its work left stopped
// (src/inject/journal.ts): its registers, signal mask, the memory cr mapped, and for a restore
// --into its fd table (rolled back before the plan's commit; after it, the batch that was running
// is run to its end), then let it run on, or leave it stopped if it was stopped before cr came.
import { readMemory } from '../../bridge/memory.js';
import { cont, getRegs, getSiginfo, interrupt, PTRACE_EVENT_STOP, setRegsFrom, setSigmask } from '../../bridge/ptrace.js';
import { SIGSTOP } from '../../bridge/signal.js';
import { waitStop } from '../../bridge/wait.js';
import { CrError } from '../errors.js';
import { BATCH_CODE, RECORD_BYTES } from '../inject/batch.js';
import { Injector } from '../inject/injector.js';
import {
  addedRanges, endGroupStop, listJournals, mappedRanges, maskOf, readJournal, regsOf, removeJournal, runDir, startTime,
  type JournalRecord,
} from '../inject/journal.js';
import { SYS } from '../inject/syscalls.js';
import { readStatus } from '../proc/process.js';
import { rollback } from '../replay/replay.js';
import { awaitStop, thaw, freeze } from '../task/freeze.js';
import { putBack } from '../trust/fsids.js';
import { now } from '../../bridge/clock.js';

const SI_TKILL = -6;
const PAGE_MASK = ~0xfffn;
/**
 * How long a journal's process may take to show a stop: when its tracer dies the kernel re-arms
 * the group stop cr made, taken at the next return to user space. A process that stays running
 * was never stopped by cr (it died between the journal and the SIGSTOP, before changing
 * anything) or was let run by someone since: either way its registers are its own now, and the
 * journal's would break it.
 */
const SETTLE_MS = 1000;
const settlesStopped = (pid: number): boolean => awaitStop(pid, now() + SETTLE_MS);

const NOT_STOPPED = 'is running, not in the stop cr leaves a process it has changed in (cr ended before it changed anything, or it was let run since)';

/** Why a journal's process is not the one cr worked in any more, or null when it is. */
function gone(j: JournalRecord): string | null {
  let now: string;
  try {
    now = startTime(j.pid);
  } catch {
    return `pid ${j.pid} has ended`;
  }
  return now === j.startTime ? null : `pid ${j.pid} is another process now (the one cr worked in has ended)`;
}

/** One line per journal of this user: which processes need `cr recover PID`. Stale ones are removed. */
export function listRecoverable(): string[] {
  const dir = runDir();
  const lines: string[] = [];
  for (const pid of listJournals(dir)) {
    let j: JournalRecord | null;
    try {
      j = readJournal(pid, dir);
    } catch (err) {
      lines.push(`pid ${pid}: ${(err as Error).message}`);
      continue;
    }
    if (!j) continue;
    const why = gone(j) ?? (settlesStopped(pid) ? null : `pid ${pid} ${NOT_STOPPED}`);
    if (why) {
      removeJournal(pid, dir);
      lines.push(`pid ${pid}: ${why}; its journal is removed`);
      continue;
    }
    const what = j.command === 'dump' ? 'a dump' : `a restore --into${j.committed ? ' (past its commit)' : ''}`;
    lines.push(`pid ${pid}: left by ${what} of cr ${j.cr} at ${j.written}; run: cr recover ${pid}`);
  }
  return lines;
}

/**
 * After the commit, a batch the routine was running when cr died is run to its end (its ops
 * after the commit only move fds into place; none of them can be undone, so finishing them is
 * the only way to a whole table). Returns what became of the replay, or null when tid is not in
 * the routine (cr died between batches, or ran the plan call by call).
 */
function finishBatch(j: JournalRecord): string | null {
  const { pid, tid } = j;
  const rip = getRegs(tid).rip;
  let code: Buffer;
  try {
    code = readMemory(pid, rip & PAGE_MASK, BATCH_CODE.length);
  } catch {
    return null;
  }
  if (!code.equals(BATCH_CODE)) return null;
  cont(tid, 0);
  for (;;) {
    const stop = waitStop(tid, 5000);
    if (stop.kind !== 'stopped') throw new CrError(`pid ${pid} ${stop.kind} while its last batch ran`);
    if (stop.event === 0 && stop.signal === SIGSTOP) {
      const info = getSiginfo(tid);
      // The routine's own stop (tgkill from the process itself): suppressed, and an interrupt
      // brings the thread back to an event stop.
      if (info.code === SI_TKILL && info.raw.readInt32LE(16) === pid) {
        interrupt(tid);
        cont(tid, 0);
        const back = waitStop(tid, 5000);
        if (back.kind !== 'stopped' || back.event !== PTRACE_EVENT_STOP) throw new CrError(`pid ${pid} did not stop after its last batch`);
        break;
      }
    }
    cont(tid, 0);
  }
  if (j.batchAt === undefined || j.batchCalls === undefined) return 'the restore had passed its commit; no op after it had run';
  const done = Number((getRegs(tid).rbx - BigInt(j.batchAt)) / BigInt(RECORD_BYTES));
  if (done < j.batchCalls) return `the restore had passed its commit; a call after it failed (call ${done + 1} of the last batch), so the fd table is partly restored`;
  return j.batchEndsAt === j.lastOp ? 'the restore is complete (its last batch was run to its end)' : 'the restore had passed its commit and its last batch was run; ops after it did not run, so the fd table is partly restored';
}

/** Put pid back from its journal; returns the one line to print. */
export function recover(pid: number): string {
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new CrError(`${pid} is not a pid`, 2);
  const dir = runDir();
  const j = readJournal(pid, dir);
  if (!j) return `nothing to recover: cr has no journal of pid ${pid} (in ${dir})`;
  const why = gone(j);
  if (why) {
    removeJournal(pid, dir);
    return `nothing to recover: ${why}; its journal is removed`;
  }
  const status = readStatus(pid);
  const me = process.geteuid!();
  if (me !== 0 && status.uid !== me) throw new CrError(`pid ${pid} belongs to uid ${status.uid}: cr recovers only processes of its own user`, 2);
  if (status.tracerPid !== 0) {
    const who = status.tracerPid === j.cr ? `the cr that is working in it (pid ${j.cr})` : `pid ${status.tracerPid}`;
    throw new CrError(`pid ${pid} is traced by ${who}; nothing was changed`);
  }
  if (!settlesStopped(pid)) {
    removeJournal(pid, dir);
    return `nothing to recover: pid ${pid} ${NOT_STOPPED}; its journal is removed`;
  }
  const frozen = freeze(pid);
  try {
    const tid = j.tid;
    if (!frozen.threads.has(tid)) throw new CrError(`thread ${tid} of pid ${pid}, which cr worked in, has ended; nothing was changed`);
    const notes: string[] = [];
    if (j.command === 'into' && j.replayed) notes.push('the restore was complete');
    else if (j.command === 'into' && j.committed) notes.push(finishBatch(j) ?? 'the restore had passed its commit; the fd table is as far as it got (partly restored)');
    // What cr mapped: every range not mapped when the journal was written (cr's area and scratch,
    // an mmap that ran as cr died), found before recover's own injector maps its area.
    const added = addedRanges(
      j.maps.map(([a, b]) => [BigInt(`0x${a}`), BigInt(`0x${b}`)]),
      mappedRanges(pid),
    );
    const inj = Injector.attach(tid);
    try {
      if (j.command === 'into' && !j.committed && !j.replayed) {
        rollback(inj, { pid, fds: j.fds ?? [], rlimit: j.rlimit! });
        notes.push('its fd table is rolled back to what it was');
      }
      if (j.fsIds) putBack(inj, j.fsIds);
      for (const [start, end] of added) inj.call('munmap', SYS.munmap, start, end - start);
    } finally {
      inj.finish();
    }
    // The other threads a dump ran code in: each frozen since, so what was found is what it had.
    for (const other of j.others ?? []) {
      if (!frozen.threads.has(other.tid)) continue; // ended since: nothing of it to put back
      setRegsFrom(other.tid, BigInt64Array.from(other.regs.map((r) => BigInt(r))));
      setSigmask(other.tid, Buffer.from(other.mask, 'hex'));
    }
    setRegsFrom(tid, regsOf(j));
    setSigmask(tid, maskOf(j));
    if (!j.wasStopped) endGroupStop(pid, tid, []);
    removeJournal(pid, dir);
    const what = j.command === 'dump' ? 'a dump' : 'a restore --into';
    const after = j.wasStopped ? 'it stays stopped, as it was before cr came' : 'it runs on';
    return `pid ${pid} is put back as it was before ${what} (registers, signal mask, ${added.length} mapping${added.length === 1 ? '' : 's'} of cr's removed${notes.length ? `; ${notes.join('; ')}` : ''}); ${after}`;
  } finally {
    thaw(frozen, { leaveStopped: false });
  }
}
