// restartTree: bring a whole tree back from a process image of several members (docs/trees.md).
// The processes are made as husks by makeTree (parents, sessions, groups, fds), zombies end as
// recorded, then each live member is rebuilt exactly as a single restart rebuilds its husk
// (rebuild: memory, registers, signals, state). All or nothing: no member runs an instruction of
// its own until every member is complete; any failure kills every process made. Then all go at
// once, members that were job-control stopped stopped again.
import { detach } from '../../bridge/ptrace.js';
import { kill, SIGSTOP } from '../../bridge/signal.js';
import { CrError } from '../errors.js';
import type { ProcessImage } from '../image/process-format.js';
import { viewOf } from '../model/fdtable.js';
import { MAX_PID, type TreeMember } from '../model/tree.js';
import { stopwatch } from '../timing.js';
import { planSegments, removeMadeSegments, type SegmentPlan } from './sysv-shm.js';
import { SysvIpc } from './sysv-ipc.js';
import { imageAuthor } from '../trust/author.js';
import { becomeAuthor, fsIdentityOf, fsSwitchFor } from '../trust/fsids.js';
import { checkHeadTrust } from '../trust/head.js';
import { AREA_BYTES } from './husk.js';
import { type Carried, carryObjects, checkMappedFiles, checkVdso, freeRange, huskMappings, vdsoKey } from './memory.js';
import { rebuild, type RestartOptions } from './restart.js';
import { deferSeals, mappedDescs, unnamedFiles } from './unnamed-files.js';
import { releaseConnections } from '../restore/connections.js';
import { endZombies, killTree, makeTree, type MadeTree } from './tree.js';
import { pointPidfds } from './pidfds.js';

export interface TreeRestartResult {
  /** the root's pid: cr's child */
  pid: number;
  /** the root leads its process group (the tree's job, as a shell sees it) */
  leadsGroup: boolean;
  /** every member, in tree order: its pid when dumped and now */
  pids: Array<{ was: number; now: number }>;
  /** pages written, all members */
  pages: number;
  /** things restored only approximately, each said once */
  warnings: string[];
  phases: Array<[string, number]>;
}

/**
 * With --setsid the root leads a session of its own: the root's session and group, which were
 * outside the tree, become the root's, for every member in them.
 */
function inOwnSession(tree: readonly TreeMember[]): TreeMember[] {
  const root = tree[0]!;
  if (root.sid === root.pid) return [...tree];
  return tree.map((m) => ({
    ...m,
    sid: m.sid === root.sid ? root.pid : m.sid,
    pgid: m.pgid === root.pgid ? root.pid : m.pgid,
  }));
}

/**
 * The tree as restored as a job: the root leads a group of its own in cr's session (never a
 * session of its own: it could then not be a job of cr's terminal). Members in the root's session
 * and group go with it; sessions and groups members led stay theirs.
 */
function asJob(tree: readonly TreeMember[], crSid: number): TreeMember[] {
  const root = tree[0]!;
  const pids = new Set(tree.map((m) => m.pid));
  // An id no member has, standing for cr's session (outside the tree).
  const outside = root.sid !== root.pid ? root.sid : pids.has(crSid) ? MAX_PID + 1 : crSid;
  return tree.map((m) => ({
    ...m,
    sid: m.sid === root.sid ? outside : m.sid,
    pgid: m.pgid === root.pgid ? root.pid : m.pgid,
  }));
}

/** Restart every member of image (read and checked whole by ProcessImage). */
export function restartTree(image: ProcessImage, opts: RestartOptions & { resume?: boolean } = {}): TreeRestartResult {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const phases: Array<[string, number]> = [];
  const lap = stopwatch(phases);
  const tree = opts.job ? asJob(image.tree, opts.job.crSid) : opts.setsid ? inOwnSession(image.tree) : image.tree;
  // What the image may give each process is bounded by what its author has (docs/trust.md).
  const author = imageAuthor(image.file);
  // The tree's System V segments, attached again or made again, once each: shared object numbers
  // are the image's, and a segment several members map is one object (made in the root husk).
  const segments: Map<number, SegmentPlan> = planSegments(image.members.flatMap((m) => m.head.mappings), author);
  // Semaphore sets and queues: found again, or made again once, by the first member that used each.
  const ipc = SysvIpc.plan(image.members.map((m) => m.head), author);
  const vdsoChecked = new Set<string>();
  for (const m of image.members) {
    checkHeadTrust(m.head, author);
    checkMappedFiles(m.head.mappings);
    const vdso = vdsoKey(m.head.mappings, m.head.vdsoSha256);
    if (!vdsoChecked.has(vdso)) checkVdso(process.pid, m.head.mappings, m.head.vdsoSha256);
    vdsoChecked.add(vdso);
  }
  fsSwitchFor(author, fsIdentityOf(process.pid), `the husk (as cr's user)`);
  // One area for all husks (they are copies of the root): free in every member's image.
  const taken = image.members.flatMap((m) => m.head.mappings);
  // The shared objects several members map, made in the root husk before its forks.
  let carried: Carried = new Map();
  lap('check');
  // The memfds members map shared get their seals once mapped (unnamed-files.ts).
  const fdTables = image.fdImage.table;
  const mapped = mappedDescs(image.members.flatMap((m) => m.head.mappings));
  let made: MadeTree;
  try {
    made = makeTree(tree, { ...fdTables, descs: deferSeals(fdTables.descs, mapped) }, {
      samePid: opts.samePid ?? false,
      timeoutMs,
      area: (pid) => BigInt(freeRange(AREA_BYTES, [...taken, ...huskMappings(pid)])),
      // Every path (fds, file mappings, executables, cwd) is opened with the author's fs ids: taken
      // on in the root husk before its first open, inherited by every husk it forks.
      first: (husk) => {
        const opener = fsIdentityOf(husk.pid);
        const ids = fsSwitchFor(author, opener, `the husk (pid ${husk.pid})`);
        if (ids) husk.run((inj) => becomeAuthor(inj, ids, opener));
        // After the author's fs ids: a System V segment made again is the author's to make.
        carried = carryObjects(husk, image.members.map((m) => m.head.mappings), segments, [...taken, ...huskMappings(husk.pid)]);
      },
    });
  } catch (err) {
    // makeTree killed its husks: a segment the root's made again (carryObjects) goes too.
    removeMadeSegments(segments);
    throw err;
  }
  lap('tree');
  const warnings = new Set<string>(made.warnings);
  const index = new Map<number, number>(tree.map((m, i) => [m.pid, i]));
  let pages = 0;
  try {
    // Every member exists (zombies still as husks): each pidfd points at its process now.
    const now = new Map(tree.map((m, i) => [m.pid, made.pids[i]!]));
    image.members.forEach((m, k) => pointPidfds(made.husks[index.get(m.pid)!]!, viewOf(image.fdImage.table, k), (dumped) => now.get(dumped)!));
    endZombies(tree, made);
    lap('zombies');
    const parentsOfZombies = new Set(tree.filter((m) => m.zombie !== null).map((m) => m.ppid));
    // A memfd several members map is sealed once, by the last of them rebuilt: every mapping of
    // it exists by then (a seal may forbid the later ones).
    const lastMapper = new Map<number, number>();
    image.members.forEach((m, j) => {
      for (const desc of mappedDescs(m.head.mappings)) lastMapper.set(desc, j);
    });
    for (const [j, m] of image.members.entries()) {
      const i = index.get(m.pid)!;
      const unnamed = unnamedFiles(m.head.mappings, fdTables.processes[j]!.fds, fdTables.descs, m.head.unheld);
      for (const [desc, f] of unnamed) if (lastMapper.get(desc) !== j) f.seals = 0;
      const husk = made.husks[i]!;
      // A member's parent is a member, which stays; the root's is cr, gone at once with --detach.
      const r = rebuild(husk, m.head, m.runs, { parentStays: i > 0 || !opts.detach, samePid: opts.samePid ?? false, drainSigchld: parentsOfZombies.has(m.pid), segments, ipc, carried, unnamed }, () => {});
      pages += r.pages;
      for (const w of r.warnings) warnings.add(w);
    }
    // TCP connections out of repair mode once every member holds its sockets: the two ends of a
    // loopback connection between members both exist.
    const fdsOf = new Map(image.fdImage.table.processes.map((p) => [p.pid, p.fds]));
    image.file.pages?.verify();
    releaseConnections(tree.flatMap((m, i) => (m.zombie === null ? [{ pid: made.pids[i]!, fds: fdsOf.get(m.pid) ?? [] }] : [])), image.fdImage.table.descs);
    lap('members');
  } catch (err) {
    killTree(made);
    ipc.removeMade();
    removeMadeSegments(segments);
    // Damage a large image's checksum finds (made by a thread meanwhile) is the cause to give.
    const corrupt = image.file.pages?.corruption();
    const message = corrupt ? corrupt.message : err instanceof Error ? err.message : String(err);
    throw new CrError(`${message}; the ${made.pids.filter((p) => p > 0).length} processes of the half-restored tree were killed`, err instanceof CrError ? err.code : 1);
  }
  // Every member is complete: let them all go, leaves first, the root last, each member's threads
  // before it (a thread left traced would be killed with its process when cr exits: EXITKILL).
  // A member that was stopped by job control gets its SIGSTOP queued before it goes, so it
  // stops again at once. With --resume none is.
  const stopped = tree.flatMap((m, i) => (m.stopped && m.zombie === null && !opts.resume ? [made.pids[i]!] : []));
  for (const pid of stopped) kill(pid, SIGSTOP);
  if (stopped.length > 0) warnings.add(`${stopped.length === 1 ? `pid ${stopped[0]} was` : `pids ${stopped.join(', ')} were`} stopped when dumped and ${stopped.length === 1 ? 'is' : 'are'} stopped again: kill -CONT lets ${stopped.length === 1 ? 'it' : 'them'} run (restore --resume restarts ${stopped.length === 1 ? 'it' : 'them'} running)`);
  // A job gets the terminal before any member runs (its root leads the job's group).
  opts.job?.beforeGo(made.pids[0]!);
  for (let i = tree.length - 1; i >= 0; i--) {
    if (tree[i]!.zombie !== null) continue;
    for (const tid of made.husks[i]!.threads) detach(tid);
    detach(made.pids[i]!);
  }
  lap('detach');
  return { pid: made.pids[0]!, leadsGroup: tree[0]!.pgid === tree[0]!.pid, pids: tree.map((m, i) => ({ was: m.pid, now: made.pids[i]! })), pages, warnings: [...warnings], phases };
}
