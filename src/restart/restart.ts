// restartProcess: bring a whole-process image back as a new process (docs/restart.md). A husk is
// started stopped at its exec; it gets the image's fd table (planner + replay), then its own
// memory is cleared and the image's rebuilt around a syscall page, the vdso pages moved into
// place, mm fields, limits, signals and credentials set, and last the registers; then it is let
// go. Until that moment nothing of the program has run, and on any failure the husk is killed.
import { onlyProcess } from '../model/fdtable.js';
import type { OnProgress } from '../progress.js';
import { detach, setSigmask } from '../../bridge/ptrace.js';
import { kill, SIGSTOP } from '../../bridge/signal.js';
import { killAndReap, spawn } from '../../bridge/spawn.js';
import { CrError } from '../errors.js';
import type { PageRun, ProcessImage } from '../image/process-format.js';
import type { ProcessHead } from '../image/process-head.js';
import type { PlanTarget } from '../model/restore-target.js';
import { replay } from '../replay/replay.js';
import { releaseConnections } from '../restore/connections.js';
import { readNofile } from '../proc/limits.js';
import { readTarget } from '../proc/target-state.js';
import { checkedPlan, checkFdsHeld, expectedFds } from '../replay/check.js';
import { AREA_BYTES, Husk, HUSK_PROGRAM, HUSK_PTRACE_OPTIONS } from './husk.js';
import { makeAioRings } from './aio.js';
import { type Carried, checkMappedFiles, checkVdso, clearAndPlaceVdso, dropObjects, freeRange, huskMappings, huskMaps, installGuards, lockAndSeal, mapAll, segmentNotes, writePages } from './memory.js';
import { planSegments, removeMadeSegments, type SegmentPlan } from './sysv-shm.js';
import { SysvIpc } from './sysv-ipc.js';
import { deferSeals, mappedDescs, unnamedFiles, type UnnamedFiles } from './unnamed-files.js';
import { setAttributes, setLastAttributes, setThreadAttributes } from './set-attributes.js';
import { moveToCgroups } from './cgroups.js';
import { makeThreads } from './threads.js';
import { setLocks } from './locks.js';
import { pointPidfds } from './pidfds.js';
import { armTimers, createTimers } from './timers.js';
import { resumeRegisters, setAllRegisters } from './registers.js';
import { drainSigchld, openNofile, queuePending, setCreds, setItimers, setMm, setNoNewPrivs, setSignalsAndThreadState, setTask } from './process-attributes.js';
import { stopwatch } from '../timing.js';
import { SYS } from '../inject/syscalls.js';
import { imageAuthor } from '../trust/author.js';
import { becomeAuthor, fsIdentityOf, fsSwitchFor } from '../trust/fsids.js';
import { checkHeadTrust } from '../trust/head.js';

export interface RestartOptions {
  /** give the process the pid it had at dump time (refused if that pid is in use) */
  samePid?: boolean;
  /** bound on each wait for the husk */
  timeoutMs?: number;
  /** a session of its own (the husk's setsid; a --same-pid child of the husk inherits it) */
  setsid?: boolean;
  /** cr will not stay the parent: a parent-death signal would fire as cr exits, so it is left unset (a warning) */
  detach?: boolean;
  /** told as pages are written, against the image's page bytes */
  onProgress?: OnProgress;
  /** let go job-control stopped (the process was stopped when dumped, and not --resume) */
  stopped?: boolean;
  /**
   * restore --shell-job: the process leads a process group of its own in cr's session (crSid),
   * and beforeGo(its pid) is called once it is complete, before it runs (the terminal given to it).
   */
  job?: { crSid: number; beforeGo: (pgid: number) => void };
}

export interface RestartResult {
  pid: number;
  /** pages written into the new process */
  pages: number;
  /** things restored only approximately (a hard limit that could not be raised, ...) */
  warnings: string[];
  phases: Array<[string, number]>;
}

/** Restart image (read and checked whole by ProcessImage: nothing here reads the file again). */
export function restartProcess(image: ProcessImage, opts: RestartOptions = {}): RestartResult {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const phases: Array<[string, number]> = [];
  const lap = stopwatch(phases);
  // One process at a time: a tree (zombie children included) is refused in one line.
  const head = image.single().head;
  // A memfd it maps shared gets its seals once mapped (unnamed-files.ts), not from the fd replay.
  const viewed = onlyProcess(image.fdImage.table);
  const table = { ...viewed, descs: deferSeals(viewed.descs, mappedDescs(head.mappings)) };
  // What the image may give the process is bounded by what its author has (docs/trust.md).
  const author = imageAuthor(image.file);
  checkHeadTrust(head, author);
  // The husk starts with cr's ids: if it could not open as the author, refuse before it exists.
  fsSwitchFor(author, fsIdentityOf(process.pid), `the husk (as cr's user)`);
  checkMappedFiles(head.mappings);
  // System V segments: the live ones attached again, the others made again; refused as the author.
  const segments = planSegments(head.mappings, author);
  // System V semaphores and message queues: found where they were, made again, or refused.
  const ipc = SysvIpc.plan([head], author);
  // Every process of this kernel has the same vdso and vvar pages: cr's own tell, before a husk exists.
  checkVdso(process.pid, head.mappings, head.vdsoSha256);
  // The husk inherits cr's RLIMIT_NOFILE and starts with no fds: plan for that before it exists.
  let target: PlanTarget = { fds: [], rlimit: readNofile(process.pid), mode: 'fresh' };
  let plan = checkedPlan(table, target);
  lap('check');
  let husk: Husk | null = null;
  let pid: number;
  try {
    pid = spawn([HUSK_PROGRAM], { fds: [], stopAtExec: true, ptraceOptions: HUSK_PTRACE_OPTIONS, timeoutMs, setsid: opts.setsid ?? false });
  } catch (err) {
    throw new CrError(`cannot start the husk ${HUSK_PROGRAM}: ${(err as Error).message}`);
  }
  try {
    const state = readTarget(pid);
    if (state.fds.length > 0 || state.rlimit.soft !== target.rlimit.soft || state.rlimit.hard !== target.rlimit.hard) {
      target = { fds: state.fds, rlimit: state.rlimit, mode: 'fresh' };
      plan = checkedPlan(table, target);
    }
    // Its maps read once: for a free range for the area, and for where the injector finds a syscall.
    const maps = huskMaps(pid);
    const area = freeRange(AREA_BYTES, [...head.mappings, ...huskMappings(pid, maps)]);
    // Every path from here on (fds, file mappings, the executable, cwd) is opened with the
    // author's fs ids: taken on before the first, kept until setCreds gives the image's own.
    const opener = fsIdentityOf(pid);
    const ids = fsSwitchFor(author, opener, `the husk (pid ${pid})`);
    husk = Husk.adopt(pid, BigInt(area), timeoutMs, () => {}, maps);
    lap('husk');
    // Its pid made final before the replay, as a tree's root is (tree.ts): the copy clone3 makes
    // then shares no fds, and the husk it replaces ends holding none (after the replay, the
    // dense table's 1,031 were copied and closed again, cr waiting on both).
    if (opts.samePid) {
      husk.cloneAs(head.process.pid);
      lap('pid');
    }
    const fds = expectedFds(table, target);
    husk.run((inj, runner) => {
      if (ids) becomeAuthor(inj, ids, opener);
      replay(inj, table, plan, { runner });
      checkFdsHeld(runner, inj.pid, fds);
    });
    lap('fds');
    // A pidfd of itself (the tree of one has no other process), now that its pid is final.
    pointPidfds(husk, table, () => husk!.pid, fds);
    if (opts.job) husk.call('setpgid', SYS.setpgid, 0n, 0n);
    const unnamed = unnamedFiles(head.mappings, viewed.fds, viewed.descs, head.unheld);
    const result = rebuild(husk, head, image.pages(), { parentStays: !opts.detach, samePid: opts.samePid ?? false, onProgress: opts.onProgress, pageBytes: image.pageBytes, segments, ipc, unnamed, fds }, lap);
    // A large image's checksum (made by a thread as its pages went in) matched: nothing of it runs before.
    image.file.pages?.verify();
    // A SIGSTOP queued while cr holds it is taken as the detach lets it go: it stops before
    // running one instruction of its own, as it was when dumped (a SIGCONT lets it on).
    if (opts.stopped) kill(husk.pid, SIGSTOP);
    // Its TCP connections out of repair mode: every socket of the restore exists now.
    releaseConnections([{ pid: husk.pid, fds: table.fds }], table.descs);
    // Every thread's state is whole before the first of them runs: the order they go in is any
    // order the scheduler could have run them in.
    opts.job?.beforeGo(husk.pid);
    for (const tid of husk.threads) detach(tid);
    detach(husk.pid);
    lap('detach');
    return { ...result, pid: husk.pid, phases };
  } catch (err) {
    const victim = husk?.pid ?? pid;
    killAndReap(victim);
    ipc.removeMade();
    removeMadeSegments(segments);
    // Damage a large image's checksum finds (made by a thread meanwhile) is the cause to give.
    const corrupt = image.file.pages?.corruption();
    const message = corrupt ? corrupt.message : err instanceof Error ? err.message : String(err);
    throw new CrError(`${message}; the half-restored process ${victim} was killed`, err instanceof CrError ? err.code : 1);
  }
}

export interface RebuildOptions {
  /** the parent stays once the process runs: its parent-death signal is set (else a warning) */
  parentStays: boolean;
  /** threads at their recorded tids (clone3 set_tid) */
  samePid: boolean;
  /**
   * Its children in a tree ended as zombies while it was a husk: the SIGCHLD their ends queued in
   * it is taken back before its own pending signals are queued (the original got it long ago).
   */
  drainSigchld?: boolean;
  /** told as the pages go in, of `pageBytes` in all */
  onProgress?: OnProgress;
  pageBytes?: number;
  /** its System V segments: attached again or made again (sysv-shm.ts planSegments) */
  segments: Map<number, SegmentPlan>;
  /** its System V semaphore sets and message queues: those gone made again (sysv-ipc.ts) */
  ipc: SysvIpc;
  /** the memfds and deleted files it maps shared, where it holds them (unnamed-files.ts) */
  unnamed?: UnnamedFiles;
  /** a tree's shared objects, made in the root husk and inherited (memory.ts carryObjects) */
  carried?: Carried;
  /** its fd numbers, when the caller has just checked them (checkFdNumbers); else read from /proc */
  fds?: number[];
}

/**
 * Everything after the fd table, up to the stop the husk is let go from: its memory from `runs`,
 * then its state. Per member of a tree too (src/restart/restart-tree.ts).
 */
export function rebuild(husk: Husk, head: ProcessHead, runs: Iterable<PageRun>, opts: RebuildOptions, lap: (name: string) => void): Omit<RestartResult, 'pid' | 'phases'> {
  const warnings: string[] = [];
  clearAndPlaceVdso(husk, head.mappings, opts.carried);
  openNofile(husk);
  const objects = mapAll(husk, head.mappings, opts.segments, opts.carried, opts.unnamed, opts.fds);
  makeAioRings(husk, head.mappings);
  warnings.push(...segmentNotes(objects));
  lap('map');
  const pages = writePages(husk.pid, runs, head.mappings, objects, opts.onProgress && { onProgress: opts.onProgress, total: opts.pageBytes ?? 0 });
  dropObjects(husk, objects);
  installGuards(husk, head.mappings);
  lap('pages');
  warnings.push(...lockAndSeal(husk, head.mappings));
  const exeWarning = setMm(husk, head);
  if (exeWarning) warnings.push(exeWarning);
  warnings.push(...setTask(husk, head));
  setSignalsAndThreadState(husk, head);
  if (opts.drainSigchld) drainSigchld(husk);
  queuePending(husk, head);
  // The threads, made before the credentials change: clone3 set_tid needs the privilege cr has.
  makeThreads(husk, head, opts.samePid);
  if (head.threads.length > 0) lap('threads');
  // Its pid final, its credentials still cr's: the semaphore sets and queues gone made again.
  opts.ipc.makeFor(husk, head);
  // What the kernel keeps per thread is set in the leader, then in each thread again.
  const inEachThread = (fn: () => void): void => {
    fn();
    for (const tid of husk.threads) husk.inThread(tid, fn);
  };
  inEachThread(() => setCreds(husk, head));
  setLocks(husk, head);
  createTimers(husk, head);
  // As the image's author, and before the affinity (a cpuset's attach resets it).
  const cgroup = moveToCgroups(husk, head);
  if (cgroup) warnings.push(cgroup);
  warnings.push(...setAttributes(husk, head, { parentStays: opts.parentStays }));
  for (const tid of husk.threads) {
    // One warning for the process, not one per thread, when every thread is refused the same.
    for (const w of husk.inThread(tid, () => setThreadAttributes(husk, head))) if (!warnings.includes(w)) warnings.push(w);
  }
  inEachThread(() => setNoNewPrivs(husk, head));
  setLastAttributes(husk, head);
  armTimers(husk, head);
  setItimers(husk, head);
  husk.finish();
  head.threads.forEach((t, i) => {
    const tid = husk.threads[i]!;
    setSigmask(tid, t.blocked);
    setAllRegisters(tid, t.xstate, resumeRegisters(t.regs));
  });
  setSigmask(husk.pid, head.signals.blocked);
  setAllRegisters(husk.pid, head.xstate, resumeRegisters(head.regs));
  lap('state');
  return { pages, warnings };
}
