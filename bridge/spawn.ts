// Starting processes cr will trace, with posix_spawn through koffi: libuv never learns of them,
// so its SIGCHLD handling cannot reap them or steal their ptrace stops. cr reaps them itself.
import { fstatSync, readdirSync, readlinkSync } from 'node:fs';
import { SyscallError } from './errno.js';
import { libc } from './libc.js';
import { closeFd, writeFd } from './file.js';
import { pipe2 } from './pipe.js';
import { cont, PTRACE_EVENT_EXEC, PTRACE_O_EXITKILL, PTRACE_O_TRACEEXEC, seize } from './ptrace.js';
import { kill, SIGKILL } from './signal.js';
import { waitpid, waitStop, WALL, type WaitResult } from './wait.js';
import { now } from './clock.js';

const ESRCH = 3;
const O_CLOEXEC = 0o2000000;
const ECHILD = 10;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
/** glibc's extension: setsid() in the child (bits/spawn.h). */
const POSIX_SPAWN_SETSID = 0x80;

export interface SpawnOptions {
  /** Environment; default process.env. */
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** [our fd, child fd] pairs: the only fds open in the child. Default: our 0, 1, 2 (those open). */
  fds?: Array<[number, number]>;
  /**
   * Return the child seized (options: PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL | ptraceOptions)
   * and stopped at PTRACE_EVENT_EXEC of argv[0]: the new program has not run an instruction.
   */
  stopAtExec?: boolean;
  ptraceOptions?: number;
  /** Bound on each wait while bringing a stopAtExec child to its exec stop. */
  timeoutMs?: number;
  /** A session (and process group) of its own: a signal to the spawner's group does not reach it. */
  setsid?: boolean;
}

/**
 * A stopAtExec child waits for one line on a gate pipe before it execs argv, so cr can seize it
 * first. Waiting in read() and not in a stop: if cr dies before its seize, the gate's write end
 * closes with cr, read() sees end of file and the shell exits; a child stopped by itself would be
 * left stopped for good. Once seized, PTRACE_O_EXITKILL ends it with cr. dash takes redirections
 * of fds 0-9 only, so the gate is a single digit the child is not given for anything else.
 */
const GATE_WORD = 'go';
const gateScript = (fd: number): string[] => ['/bin/sh', '-c', `read -r w <&${fd} && [ "$w" = ${GATE_WORD} ] || exit 127; exec ${fd}<&-; exec "$@"`, 'sh'];

function gateFd(fds: Array<[number, number]>): number {
  const taken = new Set(fds.map(([, dst]) => dst));
  for (const fd of [3, 4, 5, 6, 7, 8, 9, 0, 1, 2]) if (!taken.has(fd)) return fd;
  throw new Error('spawn: stopAtExec needs one of the fds 0-9 free for its gate');
}

const isOpen = (fd: number): boolean => {
  try {
    fstatSync(fd);
    return true;
  } catch {
    return false;
  }
};

const defaultFds = (): Array<[number, number]> => ([[0, 0], [1, 1], [2, 2]] as Array<[number, number]>).filter(([fd]) => isOpen(fd));

/** posix_spawn*() report errors as their result, not in errno. */
function spawnCheck(result: number, describe: () => string): void {
  if (result !== 0) throw new SyscallError(describe(), result);
}

/**
 * File actions giving the child exactly `fds`. Sources are first parked above every fd involved,
 * so a target that is also another pair's source cannot be clobbered before it is copied.
 */
function fileActions(fa: Buffer, fds: Array<[number, number]>, cwd: string | undefined): void {
  const describe = () => `posix_spawn_file_actions(fds=${JSON.stringify(fds)})`;
  const high = Math.max(2, ...fds.flat()) + 1;
  fds.forEach(([src], i) => spawnCheck(libc.faAddDup2(fa, src, high + i), describe));
  const targets = new Set<number>();
  fds.forEach(([, dst], i) => {
    targets.add(dst);
    spawnCheck(libc.faAddDup2(fa, high + i, dst), describe);
  });
  for (let fd = 0; fd < high; fd++) if (!targets.has(fd)) spawnCheck(libc.faAddClose(fa, fd), describe);
  spawnCheck(libc.faAddClosefrom(fa, high), describe);
  if (cwd !== undefined) spawnCheck(libc.faAddChdir(fa, cwd), describe);
}

/** SIGCANCEL and SIGSETXID, which glibc keeps for its threads and hides from sigfillset. */
const GLIBC_INTERNAL_SIGNALS = [32, 33];

function posixSpawn(argv: string[], options: SpawnOptions): number {
  if (argv.length === 0) throw new Error('spawn: empty argv');
  const fds = options.fds ?? defaultFds();
  const env = Object.entries(options.env ?? process.env)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${v}`);
  const fa = Buffer.alloc(256); // posix_spawn_file_actions_t is 80 bytes on x86_64 glibc
  const attr = Buffer.alloc(512); // posix_spawnattr_t is 336
  const sigs = Buffer.alloc(128);
  const describe = () => `posix_spawnp(${JSON.stringify(argv)})`;
  spawnCheck(libc.faInit(fa), describe);
  spawnCheck(libc.attrInit(attr), describe);
  try {
    fileActions(fa, fds, options.cwd);
    // Node ignores SIGPIPE and ignored signals survive exec: give the child default dispositions
    // and an empty mask, as a shell would. glibc's sigfillset leaves out its own signals 32 and
    // 33, and its posix_spawn sets those to SIG_IGN in the child unless asked for SIG_DFL, so
    // every child would inherit them ignored: their bits are set by hand.
    libc.sigfillset(sigs);
    for (const sig of GLIBC_INTERNAL_SIGNALS) sigs[(sig - 1) >> 3]! |= 1 << ((sig - 1) & 7);
    spawnCheck(libc.attrSetSigdefault(attr, sigs), describe);
    libc.sigemptyset(sigs);
    spawnCheck(libc.attrSetSigmask(attr, sigs), describe);
    spawnCheck(libc.attrSetFlags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | (options.setsid ? POSIX_SPAWN_SETSID : 0)), describe);
    const pid = new Int32Array(1);
    spawnCheck(libc.posixSpawnp(pid, argv[0]!, fa, attr, [...argv, null], [...env, null]), describe);
    return pid[0]!;
  } finally {
    libc.faDestroy(fa);
    libc.attrDestroy(attr);
  }
}

/**
 * Seize the child waiting at its gate, open the gate, and follow it to PTRACE_EVENT_EXEC of
 * argv[0]. posix_spawn returns once the child's old memory is released, which is before the
 * kernel reports the shell's own exec: a seize that quick sees that exec too. The two are told
 * apart by the gate: the shell closes it before its exec of argv, so an exec stop with the gate
 * still open is the shell's. Returns null at argv's exec stop, or how the child ended (reaped).
 */
function traceToExec(pid: number, gate: { fd: number; write: number }, options: number, timeoutMs: number): WaitResult | null {
  const gateLink = `pipe:[${fstatSync(gate.write).ino}]`;
  const gateOpen = (): boolean => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${gate.fd}`) === gateLink;
    } catch {
      return false;
    }
  };
  try {
    seize(pid, options);
    writeFd(gate.write, Buffer.from(`${GATE_WORD}\n`));
  } finally {
    closeFd(gate.write);
  }
  for (;;) {
    const result = waitStop(pid, timeoutMs);
    if (result.kind !== 'stopped') return result;
    if (result.event === PTRACE_EVENT_EXEC && !gateOpen()) return null;
    // The shell's own exec, or a signal it received before its exec (its own to handle).
    cont(pid, result.event === 0 ? result.signal : 0);
  }
}

export function spawn(argv: string[], options: SpawnOptions = {}): number {
  if (!options.stopAtExec) return posixSpawn(argv, options);
  const fds = options.fds ?? defaultFds();
  const gate = gateFd(fds);
  const [gateRead, gateWrite] = pipe2(O_CLOEXEC);
  let pid: number;
  try {
    pid = posixSpawn([...gateScript(gate), ...argv], { ...options, fds: [...fds, [gateRead, gate]] });
  } catch (err) {
    closeFd(gateWrite);
    throw err;
  } finally {
    closeFd(gateRead);
  }
  let ended: WaitResult | null;
  try {
    ended = traceToExec(pid, { fd: gate, write: gateWrite }, PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL | (options.ptraceOptions ?? 0), options.timeoutMs ?? 5000);
  } catch (err) {
    killAndReap(pid);
    throw err;
  }
  if (ended) {
    const how = ended.kind === 'exited' ? `exit status ${ended.code}` : `signal ${ended.signal}`;
    throw new Error(`spawn(${JSON.stringify(argv)}): the child ended before exec (${how}); is argv[0] an executable?`);
  }
  return pid;
}

const isGone = (r: WaitResult): boolean => r.kind === 'exited' || r.kind === 'signaled';

/** Wait for our child to end; after timeoutMs kill it with SIGKILL. Stops along the way are skipped. */
export function reap(pid: number, timeoutMs: number): WaitResult {
  const deadline = now() + timeoutMs;
  for (;;) {
    const left = deadline - now();
    if (left <= 0) return killAndReap(pid);
    let result: WaitResult;
    try {
      result = waitStop(pid, left);
    } catch (err) {
      if (err instanceof SyscallError) throw err;
      return killAndReap(pid); // timed out
    }
    if (isGone(result)) return result;
  }
}

/**
 * SIGKILL our child (traced or not, stopped or not) and wait until it is gone. Its other threads
 * that we trace (a restart's husk makes them) are reaped first: a traced thread stays a zombie
 * until its tracer waits for it, and the leader's own exit is reported only after its threads'.
 */
export function killAndReap(pid: number): WaitResult {
  try {
    kill(pid, SIGKILL);
  } catch (err) {
    if (!(err instanceof SyscallError && err.errno === ESRCH)) throw err;
  }
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    // gone already, or not a process
  }
  for (const tid of tids.map(Number).filter((t) => t !== pid)) {
    try {
      while (!isGone(waitpid(tid, WALL)!));
    } catch (err) {
      // ECHILD: not traced by us (or reaped already)
      if (!(err instanceof SyscallError && err.errno === ECHILD)) throw err;
    }
  }
  for (;;) {
    const result = waitpid(pid, WALL);
    if (result && isGone(result)) return result;
  }
}
