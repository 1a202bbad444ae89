// checkpointProcess: the whole-process dump of a process and its descendants (a tree; a process
// alone is a tree of one). Freeze the tree, refuse what restart cannot bring back, read everything
// small (the tree, each member's threads, registers, signals, mm fields, mappings, and the shared
// fd tables), write it, then stream each member's pages, and let every member go (or leave them
// stopped).
import { release } from 'node:os';
import {
  cont, getRegs, getRegset, getRseqConfiguration, getSigmask, interrupt, NT_X86_XSTATE, peekSiginfo, PTRACE_EVENT_STOP,
} from '../../bridge/ptrace.js';
import { kill, SIGKILL } from '../../bridge/signal.js';
import { waitStop } from '../../bridge/wait.js';
import { freezeTree, thawTree, type Frozen, type FrozenTree } from '../task/freeze.js';
import { CrError } from '../errors.js';
import { toolVersion, type Image } from '../image/format.js';
import { encodeRegs, PAGE_SIZE, ProcessImageWriter } from '../image/process-format.js';
import type { Mapping, ProcessHead, ThreadState } from '../image/process-head.js';
import { treeProblem, type TreeMember } from '../model/tree.js';
import { readProcFds, type ProcFd } from '../proc/fds.js';
import { readIdentity } from '../proc/process.js';
import { readMember as readTreeMember } from '../proc/tree.js';
import { captureFdTables } from './fds.js';
import { withCttyTermios } from './ctty.js';
import { readInjected, type ThreadOwn } from './injected-reads.js';
import { learnOwnVdso } from '../inject/injector.js';
import { readyJournal } from '../inject/journal.js';
import { readySha256 } from '../../bridge/sha256.js';
import { withGuards } from './guards.js';
import { readLocks } from './locks.js';
import { readTimers } from './timers.js';
import { DEFAULT_MAX_CONTENTS } from '../dump/gather.js';
import { readSysvIpc } from './sysv-ipc.js';
import { fileStats, noObjectsSeen, readMappings, readMaps, resolveUnnamed, skipSavedShared, type Maps, type PagePolicy, type SharedObjectsSeen } from './maps.js';
import { readyPageBatch, savePages, type PageStats } from './pages.js';
import { refuseTracers, refuseUnsupported } from './refuse.js';
import { readMmFields, readTask, vdsoDigest } from './task.js';
import type { OnProgress } from '../progress.js';
import { stopwatch } from '../timing.js';
import { holdConnections, type HeldConnections } from '../dump/connections.js';
import { checkGathered } from '../dump/fd-dump.js';
import { readProc } from '../proc/read.js';
import { now } from '../../bridge/clock.js';

export interface CheckpointOptions {
  /** replace an existing image */
  force?: boolean;
  /** bytes of a deleted file's or memfd's data the image may carry (--max-deleted-size) */
  maxContents?: number;
  /** leave the process stopped (SIGSTOP) after the dump instead of letting it run on */
  leaveStopped?: boolean;
  /** kill the process once the image is complete (never before: a failed dump lets it run on) */
  kill?: boolean;
  /** fsync the image before it is given its name (openImageOutput) */
  sync?: boolean;
  /** bound on each wait for the process to stop */
  timeoutMs?: number;
  /** established TCP connections left unlocked, recorded to be restored as reset (--tcp-close) */
  tcpClose?: boolean;
  /**
   * leave the established TCP connections locked after the dump and give them to the caller
   * (`connections`), which kills the processes (or releases them when it does not)
   */
  keepConnections?: boolean;
  /** told as pages are copied, against the process's anonymous and swapped memory */
  onProgress?: OnProgress;
}

export interface CheckpointResult {
  /** image size in bytes */
  bytes: number;
  mappings: number;
  /** pages in the image */
  pages: number;
  /** anonymous pages left out because they held only zeroes */
  zeroPages: number;
  /** the fd table written, for the summary dump prints */
  fdImage: Image;
  /** the tree dumped (zombies included), root first */
  tree: TreeMember[];
  /** milliseconds per phase, in order */
  phases: Array<[string, number]>;
  /** milliseconds the processes were held, from the start of the freeze to the end of the thaw: their downtime */
  frozenMs: number;
  /** keepConnections: the connections still locked */
  connections?: HeldConnections;
}

/** The XSAVE area is at most a few KiB (AMX tiles: 11 KiB); the kernel fills what it has. */
const XSTATE_MAX = 64 * 1024;
/**
 * Where each thread's XSAVE area is read, then copied out at its size: one buffer, written when
 * this module loads, not 16 fresh pages for every thread while the process is frozen.
 */
const XSTATE_READ = Buffer.alloc(XSTATE_MAX);
/** The 64-bit user code segment selector (__USER_CS) on x86_64. */
const USER_CS_64 = 0x33n;

/**
 * A thread caught in a signal-delivery-stop has its signal dequeued already: deliver it (as the
 * kernel was about to) and take the thread at the next PTRACE_EVENT_STOP, which is then a state
 * the image can hold (the handler's frame set up, or the signal's action done). Every thread.
 */
function deliverDequeuedSignals(frozen: Frozen, timeoutMs: number): void {
  const pid = frozen.pid;
  for (const [tid, first] of frozen.threads) {
    let sig = first;
    while (sig !== 0) {
      interrupt(tid);
      cont(tid, sig);
      const stop = waitStop(tid, timeoutMs);
      if (stop.kind !== 'stopped') {
        frozen.threads.delete(tid);
        throw new CrError(`process ${pid} ${stop.kind === 'exited' ? `exited (status ${stop.code})` : `was killed by signal ${stop.signal}`} while being frozen`);
      }
      sig = stop.event === PTRACE_EVENT_STOP ? 0 : stop.signal;
    }
    frozen.threads.set(tid, 0);
  }
}

/** What a dump's page copy will move of a process, about: its anonymous, shared and swapped memory. */
function memoryToCopy(pid: number): number {
  const status = readProc(`/proc/${pid}/status`);
  const kb = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return (kb('RssAnon') + kb('RssShmem') + kb('VmSwap')) * 1024;
}

/** memoryToCopy before the freeze: 0 for a pid /proc does not show (freezeTree says why). */
function aboutMemory(pid: number): number {
  try {
    return memoryToCopy(pid);
  } catch {
    return 0;
  }
}

/** The registers and XSAVE area of a stopped thread; refuses 32-bit code. */
function readRegisters(pid: number, tid: number): { regs: Buffer; xstate: Buffer } {
  const gp = getRegs(tid);
  const who = tid === pid ? `process ${pid}` : `thread ${tid} of process ${pid}`;
  if (gp.cs !== USER_CS_64) throw new CrError(`${who} runs 32-bit code (cs 0x${gp.cs.toString(16)}): cr checkpoints x86_64 processes only`);
  return { regs: encodeRegs(gp), xstate: Buffer.from(XSTATE_READ.subarray(0, getRegset(tid, NT_X86_XSTATE, XSTATE_READ))) };
}

/**
 * Every thread but the leader: what ptrace and /proc tell of each, read before cr runs any code
 * in the process (the injection puts registers back, not the XSAVE area, which it leaves alone
 * but need not be trusted to); what each thread tells only itself is added later (withOwn).
 */
function readThreads(pid: number, tids: number[]): Array<Omit<ThreadState, keyof ThreadOwn>> {
  return tids.map((tid) => ({
    tid,
    comm: readProc(`/proc/${pid}/task/${tid}/comm`, 'utf8').replace(/\n$/, ''),
    ...readRegisters(pid, tid),
    blocked: getSigmask(tid),
    // The thread's own queue only: the shared one is the process's, in head.signals.pending.
    pending: peekSiginfo(tid, false),
    rseq: getRseqConfiguration(tid),
  }));
}

const withOwn = (threads: Array<Omit<ThreadState, keyof ThreadOwn>>, own: Map<number, ThreadOwn>): ThreadState[] =>
  threads.map((t) => ({ ...t, ...own.get(t.tid)! }));

/** Everything of one frozen live member but its pages, and what its page copy needs. */
interface MemberState {
  pid: number;
  head: ProcessHead;
  mappings: Mapping[];
  policies: PagePolicy[];
  guardsKnown: boolean;
  resident: Map<number, Buffer>;
  /** its shared mappings of memfds and deleted files, to be tied to their descriptions (resolveUnnamed) */
  unnamed: ReturnType<typeof readMappings>['unnamed'];
  /** it has children or tracees: whether it traces anyone takes a look (refuseTracers) */
  childrenOrTracees: boolean;
}

/**
 * Read a frozen process's head (threads, registers, signals, mm fields, mappings, ...): all but
 * pages and fds. `seen`: the shared objects of the members read before it (one number per object,
 * its pages saved once); `fds`, `maps`: its fds and mappings as the refusal read them.
 */
function readMember(pid: number, frozen: Frozen, seen: SharedObjectsSeen, fds: readonly ProcFd[], maps: Maps): MemberState {
  const others = [...frozen.threads.keys()].filter((tid) => tid !== pid).sort((a, b) => a - b);
  const identity = readIdentity(pid);
  const read = readMappings(pid, seen, maps);
  const { policies } = read;
  const { mappings, known: guardsKnown } = withGuards(pid, read.mappings);
  skipSavedShared(mappings, policies, seen);
  const { regs, xstate } = readRegisters(pid, pid);
  const blocked = getSigmask(pid);
  const threads = readThreads(pid, others);
  const shared = new Map(mappings.flatMap((m, i) => (policies[i] === 'resident' ? [[i, m] as const] : [])));
  const timerEntries = readTimers(pid).timers;
  const rings = mappings.filter((m) => m.kind === 'aio');
  const injected = readInjected(pid, shared, timerEntries.map((t) => t.id), others, rings.map((m) => m.start));
  // What only an injected getter shows (secure bits, SCHED_DEADLINE, whose an aio ring is): refused after the rest.
  const foreign = rings.filter((m) => injected.foreignAio.includes(m.start)).map((m) => `mapping ${m.start.toString(16)}-${m.end.toString(16)} ${m.name}: an aio ring that is no context of process ${pid} (a copy inherited across fork), which cr cannot carry`);
  const refusals = [...injected.attributes.refusals, ...foreign];
  if (refusals.length > 0) throw new CrError(refusals.join('; '));
  const pending = [
    ...peekSiginfo(pid, false).map((info) => ({ shared: false, info })),
    ...peekSiginfo(pid, true).map((info) => ({ shared: true, info })),
  ];
  const task = readTask(pid);
  const head: ProcessHead = {
    toolVersion: toolVersion(),
    kernel: release(),
    arch: 'x86_64',
    pageSize: PAGE_SIZE,
    process: identity,
    ...task,
    mm: readMmFields(pid, injected.brk),
    mappings,
    regs,
    xstate,
    signals: { actions: injected.actions, blocked, pending, altstack: injected.altstack },
    rseq: getRseqConfiguration(pid),
    robustList: injected.robustList,
    tidAddress: injected.tidAddress,
    itimers: injected.itimers,
    noNewPrivs: injected.noNewPrivs,
    attributes: injected.attributes.attributes,
    posixTimers: timerEntries.map((t, i) => ({ ...t, ...injected.timers[i]! })),
    sysvIpc: readSysvIpc(pid, [pid, ...others]),
    locks: readLocks(pid, fds).locks,
    cgroup: readProc(`/proc/${pid}/cgroup`),
    vdsoSha256: vdsoDigest(pid, mappings),
    threads: withOwn(threads, injected.threads),
    // filled in once the fds are gathered (resolveUnnamed)
    unheld: [],
  };
  return { pid, head, mappings, policies, guardsKnown, resident: injected.resident, unnamed: read.unnamed, childrenOrTracees: injected.childrenOrTracees };
}

/**
 * Dump pid and all its descendants (docs/trees.md): freeze the tree, refuse what restart cannot
 * bring back (every reason of every member at once), read each live member's head and the tree's
 * shared fd tables, write them, stream each member's pages, and let every member go (or leave them
 * stopped, or kill them).
 */
export function checkpointProcess(pid: number, imagePath: string, opts: CheckpointOptions = {}): CheckpointResult {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const phases: Array<[string, number]> = [];
  const lap = stopwatch(phases);
  const writer = ProcessImageWriter.create(imagePath, { force: opts.force ?? false, sync: opts.sync ?? false });
  // Memory for the root's pages, made before the freeze: a small process's are all held there and
  // written after the thaw (a tree's other members, or a process grown meanwhile, may not fit).
  readyPageBatch(aboutMemory(pid), writer);
  // What the injection, its journal and the vdso's digest need of cr itself, learnt before
  // anything is frozen, and the root's mapped files (the rest are stat'ed while frozen).
  learnOwnVdso();
  readyJournal();
  readySha256();
  const files = fileStats(pid);
  let tree: FrozenTree | null = null;
  let connections: HeldConnections | null = null;
  const frozenAt = now();
  try {
    tree = freezeTree(pid, timeoutMs);
    const live = tree.members.filter((m) => m.frozen !== null);
    // Each member's fds read once, for the connections, the refusal, the locks and the fd table
    // alike; its mappings once, for the refusal and the head.
    const fds = live.map((m) => readProcFds(m.pid));
    const maps = live.map((m) => readMaps(m.pid, files));
    // Connections are locked before anything is read of them (src/dump/connections.ts).
    connections = holdConnections(live.map((m, i) => ({ pid: m.pid, fds: fds[i]! })), { tcpClose: opts.tcpClose ?? false, whole: true });
    refuseUnsupported(live.map((m) => m.pid), new Map(live.map((m, i) => [m.pid, fds[i]!])), new Map(live.map((m, i) => [m.pid, maps[i]!])), tree.traced, tree.members.map((m) => m.pid), connections.reasons);
    live.forEach((m, i) => {
      // A delivery may grow the stack for a handler's frame: the mappings are read again.
      if ([...m.frozen!.threads.values()].some((sig) => sig !== 0)) {
        deliverDequeuedSignals(m.frozen!, timeoutMs);
        maps[i] = readMaps(m.pid, files);
      }
    });
    const members: TreeMember[] = tree.members.map((m) => withCttyTermios({ ...readTreeMember(m.pid), ppid: m.ppid, ...(m.frozen ? { stopped: m.frozen.jobStopped } : {}) }));
    const problem = treeProblem(members);
    if (problem !== null) throw new CrError(`cannot dump the tree of ${pid}: ${problem}`);
    lap('freeze');
    const seen = noObjectsSeen();
    const states = live.map((m, i) => readMember(m.pid, m.frozen!, seen, fds[i]!, maps[i]!));
    refuseTracers(states.filter((st) => st.childrenOrTracees).map((st) => st.pid));
    const fdImage = captureFdTables(states[0]!.head.process, live.map((m, i) => (i === 0 ? { pid: m.pid } : { pid: m.pid, parent: m.ppid })), fds, opts.maxContents);
    const { descs, processes } = fdImage.table;
    const unnamedKinds = new Set(descs.filter((d) => d.kind === 'memfd' || d.kind === 'deleted').map((d) => d.id));
    let nextId = descs.reduce((n, d) => Math.max(n, d.id + 1), 0);
    const unheld = { nextId: () => nextId++, maxContents: opts.maxContents ?? DEFAULT_MAX_CONTENTS, seen: new Map<string, number>() };
    states.forEach((st, i) => (st.head.unheld = resolveUnnamed(st.pid, st.unnamed, processes[i]!.fds.filter((f) => unnamedKinds.has(f.desc)), unheld)));
    lap('state');
    writer.tree(members);
    // Encoded at commit, after the thaw, unless the pages held meanwhile outgrow the writer's bound.
    writer.fdsLater(fdImage);
    // One progress line for the whole tree: each member's bytes moved after those before it.
    const total = opts.onProgress ? live.reduce((n, m) => n + memoryToCopy(m.pid), 0) : 0;
    let before = 0;
    // Each member's counts, complete once the writer has written its pages (held ones at commit).
    const counted: PageStats[] = [];
    for (const st of states) {
      writer.head(st.head);
      const start = before;
      let moved = 0;
      const progress = opts.onProgress && { onProgress: (n: number): void => opts.onProgress!(start + (moved = n), total), total };
      const s = savePages(st.pid, st.mappings, st.policies, writer, st.guardsKnown, st.resident, progress);
      before += moved;
      counted.push(s);
    }
    lap('pages');
    // Everything is read: unless they are to be killed once the image is whole, the processes go
    // on now, and the image's fsync and rename happen while they run (a commit that fails then
    // leaves them running, as any failed dump does).
    let frozenMs = 0;
    const thawAll = (): void => {
      // Connections are unlocked before their processes run again; kept locked for a kill.
      if (!opts.kill && !opts.keepConnections) connections!.release();
      thawTree(tree!, { leaveStopped: opts.leaveStopped ?? false });
      frozenMs = now() - frozenAt;
      lap('thaw');
    };
    if (!opts.kill) thawAll();
    checkGathered(fdImage);
    const bytes = writer.commit();
    lap('write');
    if (opts.kill) {
      // Killed while still frozen: they run no instruction after the state the image holds.
      for (const m of live) kill(m.pid, SIGKILL);
      thawAll();
      connections.handOver();
    }
    return {
      bytes, mappings: states.reduce((n, st) => n + st.mappings.length, 0), pages: counted.reduce((n, s) => n + s.saved, 0), zeroPages: counted.reduce((n, s) => n + s.zero, 0), fdImage, phases,
      tree: members, frozenMs, ...(opts.keepConnections ? { connections } : {}),
    };
  } catch (err) {
    writer.abort();
    // A failed dump leaves every process running (as it was: a stopped one stays stopped).
    connections?.release();
    if (tree) thawTree(tree, { leaveStopped: false });
    throw err;
  }
}
