// restore (src/api.ts): restart a whole process, start a CMD with the image's fds, or install them
// in a running process.
import { pidfdProblem } from '../kinds/pidfd.js';
import { closeSync, existsSync, openSync, readFileSync, readSync } from 'node:fs';
import { basename, delimiter, join } from 'node:path';
import { SyscallError } from '../../bridge/errno.js';
import { badInput, CrError } from '../errors.js';
import type { Image } from '../image/format.js';
import { loadInput, type Input } from '../image/input.js';
import type { ProcessImage } from '../image/process-format.js';
import { onlyProcess, type FdTable, type FdTables } from '../model/fdtable.js';
import type { Plan } from '../plan/ops.js';
import { isRunning, readStatus } from '../proc/process.js';
import { checkPaths, checkUid } from '../replay/check.js';
import { mapPaths, parsePathMap, shorterFiles } from '../replay/map-paths.js';
import { restartProcess, type RestartOptions } from '../restart/restart.js';
import { readStat } from '../proc/tree.js';
import { jobTermios, onTerminal, shellTerminal, ShellJob } from '../restore/shell-job.js';
import { restartTree } from '../restart/restart-tree.js';
import { PAGE_THREAD_MIN, readyPageThread } from '../restart/page-thread.js';
import { restoreFresh } from '../restore/fresh.js';
import { restoreInto } from '../restore/into.js';
import type { ReplayStats } from '../replay/replay.js';
import { runSignalHandlers, waitChild } from '../restore/supervise.js';
import type { OnProgress } from '../progress.js';
import type { Phases } from '../timing.js';
import { imageAuthor, type Author } from '../trust/author.js';
import { checkConnections } from '../restore/connections.js';
import { checkHeadTrust } from '../trust/head.js';
import { tableCounts, isPid, type TableCounts } from './counts.js';
import { shown, type ShowResult } from './show.js';

export interface RestoreOptions {
  /** install the image's fds in this running process */
  into?: number;
  /** with into: close the process's other fds too */
  exact?: boolean;
  /** start this program (argv, PATH searched) with the image's fd table */
  command?: string[];
  /**
   * The pids of a restart: by default the ones the processes (and threads) had when dumped when cr
   * can give them (it has CAP_CHECKPOINT_RESTORE and every one is free), else new ones with a
   * warning; samePid: those or fail; newPid: new ones.
   */
  samePid?: boolean;
  newPid?: boolean;
  /** restore one user's image as another user's process */
  allowUidChange?: boolean;
  /** `OLD=NEW`: fd paths at or under OLD are opened at NEW instead (a file or FIFO moved since) */
  mapPaths?: string[];
  /** a new process in a session (and process group) of its own: signals to the caller's group do not reach it */
  setsid?: boolean;
  /**
   * The caller will not stay the restarted process's parent (the CLI's --detach): its
   * parent-death signal is then left unset, with a warning, since it would fire as the caller exits.
   */
  detach?: boolean;
  /** a restart: told as pages are written, bytes done of the image's total (docs/api.md) */
  onProgress?: OnProgress;
  /** a restart of a process that was job-control stopped when dumped: let it run (else it comes back stopped) */
  resume?: boolean;
  /**
   * restart as a job of the caller's controlling terminal (docs/restore.md, "On your terminal"):
   * the image's fds on its terminal opened on the caller's, the restarted process the terminal's
   * foreground group with the image's settings; wait for it with the result's job.
   */
  shellJob?: boolean;
}

export interface RestoreResult {
  /** restart: a whole-process image; command: a new CMD; into: a running process */
  mode: 'process' | 'command' | 'into';
  /** the restored process; for process and command a child of the caller: reap it (waitExit) */
  pid: number;
  /** what was restored only approximately, or left out (one line each) */
  warnings: string[];
  phases: Phases;
  /** the fd table restored */
  counts: TableCounts;
  /** the paths --map-path changed, `OLD -> NEW` each */
  mappedPaths: string[];
  /**
   * restart of a tree whose root leads its process group: that group (the root's pid), to which
   * signals meant for the restored program go, as a shell sends them to a job
   */
  group?: number;
  /** restart of a tree: each member's pid when dumped and now, in tree order (the root first) */
  members?: Array<{ was: number; now: number }>;
  /** restart: the process's name and pid as dumped, pages written */
  comm?: string;
  dumpedPid?: number;
  pages?: number;
  /** restart --shell-job: wait for the process with job.wait(pid), not waitExit (it gives the terminal back) */
  job?: ShellJob;
  /** command and into: the plan run, and what running it took */
  plan?: Plan;
  stats?: ReplayStats;
}

/**
 * A restore whose image is read and judged (trust, paths, users: docs/trust.md), nothing started
 * yet. `start()` runs it, once.
 */
export interface PreparedRestore {
  readonly mode: RestoreResult['mode'];
  /** the image as read */
  readonly image: ShowResult;
  start(): Promise<RestoreResult>;
}

/** Read image (a path, or `-` for stdin) and check everything a restore checks before it starts anything. */
export function prepareRestore(image: string, opts: RestoreOptions = {}): PreparedRestore {
  const dashes = opts.command !== undefined;
  if (dashes && opts.command!.length === 0) badInput('CMD is missing after "--"');
  if (opts.into !== undefined) {
    if (dashes) badInput('--into and -- CMD exclude each other: restore into a running process or start a new one');
    if (!isPid(opts.into)) badInput(`--into: ${JSON.stringify(opts.into)} is not a pid`);
  } else if (opts.exact) {
    badInput('--exact is for --into (a new process always gets exactly the image\'s fds)');
  }
  if (opts.samePid && (opts.into !== undefined || dashes)) badInput('--same-pid is for restarting a whole process (restore IMAGE alone)');
  if (opts.newPid && (opts.into !== undefined || dashes)) badInput('--new-pid is for restarting a whole process (restore IMAGE alone)');
  if (opts.samePid && opts.newPid) badInput('--same-pid and --new-pid exclude each other');
  if (opts.setsid && opts.into !== undefined) badInput('--setsid is for a new process, not --into');
  if (opts.shellJob) {
    if (opts.into !== undefined || dashes) badInput('--shell-job is for restarting a whole process (restore IMAGE alone)');
    if (opts.setsid) badInput('--shell-job and --setsid exclude each other: a job stays in the session of the terminal it is on');
    if (opts.detach) badInput('--shell-job and --detach exclude each other: cr waits for the job, to give the terminal back when it stops or ends');
  }
  const mode = opts.into !== undefined ? 'into' : dashes ? 'command' : 'process';
  const maps = (opts.mapPaths ?? []).map((text) => parsePathMap(text));
  // A large image's pages go in with a second thread, started now to be up when they come.
  if (mode === 'process' && image !== '-') readyPageThread(image);
  // IMAGE is read here, once; everything below works from this one Input.
  const input = loadInput(image, { keepPages: mode === 'process', deferPagesFrom: PAGE_THREAD_MIN });
  try {
    return prepared(input, mode, opts, maps);
  } catch (err) {
    // A checksum still being made (a large image's, by that thread) may find the cause.
    const corrupt = input.file.pages?.corruption();
    input.file.pages?.close();
    throw corrupt ?? err;
  }
}

/** prepareRestore's checks and its start(), from the image read. */
function prepared(input: Input, mode: 'into' | 'command' | 'process', opts: RestoreOptions, maps: ReturnType<typeof parsePathMap>[]): PreparedRestore {
  // A tree is restarted whole: -- CMD and --into take one process's fds, refused before anything
  // is judged or started.
  const members = input.process?.tree.length ?? 1;
  if (members > 1 && mode !== 'process') {
    badInput(`${input.file.path} holds a tree of ${members} processes; ${mode === 'into' ? '--into' : '-- CMD'} takes the fds of one process: restore IMAGE alone restarts the whole tree`);
  }
  const table = members > 1 ? wholeTable(input.tables) : onlyProcess(input.tables);
  // Paths moved since the dump, before anything judges them; then files cut short since.
  const moved = { mappedPaths: mapPaths(table, maps), warnings: shorterFiles(table) };
  // Established TCP connections: who may restore them, and whether they are free here.
  checkConnections(table.descs, mode, imageAuthor(input.file));
  let started = false;
  const once = (): void => {
    if (started) throw new CrError('this restore was started already');
    started = true;
  };
  // --shell-job: the terminal is cr's, refused before anything starts if there is none; the
  // image's fds on its own terminal opened on it, then judged with the others.
  const term = mode === 'process' && opts.shellJob ? shellTerminal() : null;
  if (term !== null) {
    try {
      onTerminal(table, input.process!.tree, term);
      const whole = members > 1 ? treeImageIdentity(input, table, opts) : processImageIdentity(input, opts);
      const start = async (): Promise<RestoreResult> => {
        once();
        const job = new ShellJob(term, jobTermios(table, whole.tree));
        try {
          const r = await (members > 1 ? restartWholeTree(whole, opts, moved, job) : restart(whole, opts, moved, job));
          return { ...r, job };
        } catch (err) {
          job.end();
          throw err;
        }
      };
      return { mode, image: shown(input), start };
    } catch (err) {
      closeSync(term.fd);
      throw err;
    }
  }
  if (mode === 'process' && members > 1) {
    const whole = treeImageIdentity(input, table, opts);
    return { mode, image: shown(input), start: async () => (once(), restartWholeTree(whole, opts, moved)) };
  }
  if (mode === 'process') {
    const whole = processImageIdentity(input, opts);
    return { mode, image: shown(input), start: async () => (once(), restart(whole, opts, moved)) };
  }
  const author = imageAuthor(input.file);
  const pidfds = pidfdProblem(table, input.tables.processes[0]!.pid);
  if (pidfds !== null) badInput(pidfds);
  checkTableInput(table, input.image, opts);
  return { mode, image: shown(input), start: async () => (once(), restoreTable(input, table, author, opts, moved)) };
}

/** Restore image: restart a whole process, start opts.command, or install the fds in opts.into. */
export async function restore(image: string, opts: RestoreOptions = {}): Promise<RestoreResult> {
  return prepareRestore(image, opts).start();
}

/** Wait until pid (a child of this process: a restored one) ends; its exit status, or 128 + the signal that killed it. */
export const waitExit = (pid: number): Promise<number> => waitChild(pid);

/**
 * Which process image this is, refusing anything else (an fd table alone cannot be run), and
 * refusing, before anything starts, paths into /proc, what its author could not have given the
 * process (src/trust/head.ts) and a change of user not asked for.
 */
function processImageIdentity(input: Input, opts: RestoreOptions): ProcessImage {
  if (input.process === undefined) {
    badInput(`${input.file.path} holds an fd table only (dump --fds-only): restore it with -- CMD or --into PID; restore IMAGE alone needs a whole-process image`);
  }
  const { head } = input.process.single();
  const { fdImage } = input.process;
  checkPaths(onlyProcess(fdImage.table));
  checkHeadTrust(head, imageAuthor(input.file));
  // The restart takes on the image's credentials, except that all-root ones are left as the
  // husk's (src/restart/process-attributes.ts setCreds): cr's own. The user it ends up as is
  // compared with the user the image says the process ran as.
  const { uid, gid, groups } = head.creds;
  const runsAs = [...uid, ...gid, ...groups].every((id) => id === 0) ? process.getuid!() : uid[0]!;
  checkUid(head.process.uid, runsAs, 'the restarted process (cr\'s uid, as the image\'s credentials are root\'s)', opts.allowUidChange ?? false);
  return input.process;
}

/** Every fd of every process with the shared objects: for what looks at each path once (map, checks). */
const wholeTable = (tables: FdTables): FdTable => ({ fds: tables.processes.flatMap((p) => p.fds), descs: tables.descs, pipes: tables.pipes, rlimit: tables.processes[0]!.rlimit });

/** processImageIdentity for a tree: the same checks for every live member. */
function treeImageIdentity(input: Input, table: FdTable, opts: RestoreOptions): ProcessImage {
  const image = input.process!;
  checkPaths(table);
  const author = imageAuthor(input.file);
  for (const { head } of image.members) {
    checkHeadTrust(head, author);
    const { uid, gid, groups } = head.creds;
    const runsAs = [...uid, ...gid, ...groups].every((id) => id === 0) ? process.getuid!() : uid[0]!;
    checkUid(head.process.uid, runsAs, `the restarted process ${head.process.pid} (cr's uid, as the image's credentials are root's)`, opts.allowUidChange ?? false);
  }
  return image;
}

/** /proc/self/status CapEff has CAP_CHECKPOINT_RESTORE (40) or CAP_SYS_ADMIN (21): clone3 set_tid may choose pids. */
function maySetPids(): boolean {
  const eff = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'latin1'))?.[1] ?? '0'}`);
  return ((eff >> 40n) & 1n) === 1n || ((eff >> 21n) & 1n) === 1n;
}

/**
 * Whether the restart gives every process and thread the id it had when dumped, and if not, why:
 * --same-pid promises them (one in use fails the restart before anything starts; the husk's clone3
 * refuses one taken meanwhile), --new-pid declines them, and by default they are given when cr
 * can give them all. A program that remembers a pid (its own: python's asyncio checks its loop
 * against getpid(); a child's) finds it true only with its old ids.
 */
function choosePids(image: ProcessImage, opts: RestoreOptions): { samePid: boolean; warning: string | null } {
  if (opts.newPid) return { samePid: false, warning: null };
  const ids = image.members.flatMap((m) => [m.head.process.pid, ...m.head.threads.map((t) => t.tid)]);
  const zombies = image.tree.filter((m) => m.zombie !== null).map((m) => m.pid);
  const used = [...ids, ...zombies].filter((id) => existsSync(`/proc/${id}`));
  if (opts.samePid) {
    if (used.length > 0) throw new CrError(`--same-pid: pid${used.length > 1 ? 's' : ''} ${used.join(', ')} ${used.length > 1 ? 'are' : 'is'} in use; nothing was started`);
    return { samePid: true, warning: null };
  }
  const pidMax = Number(readFileSync('/proc/sys/kernel/pid_max', 'latin1'));
  const why = !maySetPids()
    ? 'cr may not choose pids (that needs CAP_CHECKPOINT_RESTORE)'
    : used.length > 0
      ? `pid${used.length > 1 ? 's' : ''} ${used.slice(0, 5).join(', ')}${used.length > 5 ? ', ...' : ''} ${used.length > 1 ? 'are' : 'is'} in use`
      : [...ids, ...zombies].some((id) => id > pidMax)
        ? `a pid is above this machine's pid_max (${pidMax})`
        : null;
  if (why === null) return { samePid: true, warning: null };
  return { samePid: false, warning: `new pids, not the dumped ones: ${why}; a program that remembers its own pid (python's asyncio does) or another's (a shell waiting for its job) may misbehave` };
}

async function restartWholeTree(image: ProcessImage, opts: RestoreOptions, moved: Moved, job?: ShellJob): Promise<RestoreResult> {
  const root = image.tree[0]!;
  try {
    const pids = choosePids(image, opts);
    const r = restartTree(image, { samePid: pids.samePid, setsid: opts.setsid ?? false, detach: opts.detach ?? false, resume: opts.resume ?? false, ...jobOption(job) });
    return {
      mode: 'process', pid: r.pid, warnings: [...moved.warnings, ...(pids.warning ? [pids.warning] : []), ...r.warnings], phases: r.phases, counts: tableCounts(image.fdImage.table), mappedPaths: moved.mappedPaths,
      comm: root.comm, dumpedPid: root.pid, pages: r.pages, members: r.pids, ...(r.leadsGroup ? { group: r.pid } : {}),
    };
  } finally {
    image.file.pages?.close();
    await runSignalHandlers();
  }
}

/** The checks on an fd table and its image before a restore -- CMD or --into touches any process. */
function checkTableInput(table: FdTable, image: Image | undefined, opts: RestoreOptions): void {
  checkPaths(table);
  if (image === undefined) return;
  if (opts.into === undefined) {
    checkUid(image.process.uid, process.getuid!(), `CMD (as cr's uid)`, opts.allowUidChange ?? false);
    return;
  }
  let targetUid: number;
  try {
    targetUid = readStatus(opts.into).uid;
  } catch {
    return; // no such process: restoreInto says so
  }
  checkUid(image.process.uid, targetUid, `pid ${opts.into}`, opts.allowUidChange ?? false);
}

/** What the image's paths became before the restore: for its result. */
interface Moved {
  mappedPaths: string[];
  warnings: string[];
}

async function restart(image: ProcessImage, opts: RestoreOptions, moved: Moved, job?: ShellJob): Promise<RestoreResult> {
  const was = image.head.process;
  try {
    const pids = choosePids(image, opts);
    const stopped = image.tree[0]!.stopped && !(opts.resume ?? false);
    const r = restartProcess(image, {
      samePid: pids.samePid, setsid: opts.setsid ?? false, detach: opts.detach ?? false, onProgress: opts.onProgress, stopped, ...jobOption(job),
    });
    const stoppedNote = stopped ? [`it was stopped when dumped and is stopped again: kill -CONT ${r.pid} lets it run (restore --resume restarts it running)`] : [];
    return {
      mode: 'process', pid: r.pid, warnings: [...moved.warnings, ...(pids.warning ? [pids.warning] : []), ...r.warnings, ...stoppedNote], phases: r.phases, counts: tableCounts(image.fdImage.table), mappedPaths: moved.mappedPaths,
      comm: was.comm, dumpedPid: was.pid, pages: r.pages,
    };
  } finally {
    image.file.pages?.close();
    await runSignalHandlers();
  }
}

/** The restart's side of a shell job: the process in a group of its own, given the terminal before it runs. */
const jobOption = (job: ShellJob | undefined): { job?: RestartOptions['job'] } =>
  job === undefined ? {} : { job: { crSid: readStat(process.pid).sid, beforeGo: (pgid) => job.start(pgid) } };

/** Programs that run another one by exec: what they exec loses the close-on-exec fds. */
const EXEC_WRAPPERS = new Set(['env', 'sh', 'bash', 'dash', 'zsh', 'nice', 'nohup', 'timeout', 'setsid', 'sudo', 'runuser', 'setpriv', 'chrt', 'taskset', 'ionice', 'stdbuf', 'xargs', 'exec', 'npx', 'npm', 'uv', 'pipenv', 'poetry']);

/** CMD as the kernel would find it (PATH searched), for a look at its first bytes; null if not found. */
function resolveCommand(cmd: string): string | null {
  if (cmd.includes('/')) return cmd;
  for (const dir of (process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin').split(delimiter)) {
    const path = join(dir || '.', cmd);
    if (existsSync(path)) return path;
  }
  return null;
}

/** `#!` at the start of path: a script, whose interpreter runs it and may exec other programs. */
function isScript(path: string): boolean {
  try {
    const fd = openSync(path, 'r');
    try {
      const head = Buffer.alloc(2);
      return readSync(fd, head, 0, 2, 0) === 2 && head.toString('latin1') === '#!';
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

/**
 * restore -- CMD: the fds are put in place after CMD's exec, so CMD has them all, close-on-exec
 * ones included; but when CMD is a script or a wrapper that execs the real program, that second
 * exec closes them. One warning line, with the restore's others.
 */
function cloexecWarning(table: FdTable, argv: string[]): string[] {
  const cloexec = table.fds.filter((f) => f.cloexec).map((f) => f.fd).sort((a, b) => a - b);
  if (cloexec.length === 0) return [];
  const path = resolveCommand(argv[0]!);
  const why = EXEC_WRAPPERS.has(basename(argv[0]!)) ? 'a program that runs another by exec' : path !== null && isScript(path) ? 'a script' : null;
  if (why === null) return [];
  const shown = cloexec.length > 8 ? `${cloexec.slice(0, 8).join(', ')} and ${cloexec.length - 8} more` : cloexec.join(', ');
  return [`${argv[0]} is ${why}: the image's close-on-exec fd${cloexec.length === 1 ? '' : 's'} ${shown} will be closed in any program it execs`];
}

async function restoreTable(input: Input, table: FdTable, author: Author, opts: RestoreOptions, moved: Moved): Promise<RestoreResult> {
  const dropped = input.image?.dropped ?? [];
  const warnings = dropped.length > 0 ? [`the image left out ${dropped.map((d) => `fd ${d.fd} (${d.kind})`).join(', ')}; the restored process will not have them`] : [];
  warnings.push(...moved.warnings);
  if (opts.command !== undefined) warnings.push(...cloexecWarning(table, opts.command));
  try {
    const r = opts.into !== undefined ? restoreInto(table, opts.into, opts.exact ?? false, author) : restoreFresh(table, opts.command!, author, { setsid: opts.setsid ?? false });
    return {
      mode: opts.into !== undefined ? 'into' : 'command', pid: r.pid, warnings: [...warnings, ...r.plan.warnings], phases: r.phases,
      counts: tableCounts(input.tables), mappedPaths: moved.mappedPaths, plan: r.plan, stats: r.stats,
    };
  } catch (err) {
    // A target that exits mid-restore makes ptrace and /proc fail in many ways; say why once.
    const gone = opts.into !== undefined && (!isRunning(opts.into) || (err instanceof SyscallError && err.code === 'ESRCH'));
    if (opts.into === undefined || err instanceof CrError || !gone) throw err;
    throw new CrError(`pid ${opts.into} ended during the restore (${(err as Error).message.split('\n')[0]})`);
  } finally {
    await runSignalHandlers();
  }
}


