// The process tree a whole-process image holds (docs/process-image.md, TREE; docs/trees.md): who
// is whose parent, the process groups and sessions, and which members are zombies. Pure data and
// its rules, shared by the dump (which refuses a tree breaking them before it writes anything) and
// the reader (which refuses an image breaking them).

/** How a zombie ended: exactly one of code and signal is set (the wait status, decoded). */
export interface ZombieExit {
  /** exit(code), 0..255; null when killed by a signal */
  code: number | null;
  /** the terminating signal, 1..64; null when it exited */
  signal: number | null;
  /** a core was dumped (only with a signal) */
  core: boolean;
}

/** One process of the tree. */
export interface TreeMember {
  pid: number;
  /** its parent's pid: a member listed before it, or for the root its parent outside the tree */
  ppid: number;
  /** process group id */
  pgid: number;
  /** session id */
  sid: number;
  /** /proc/PID/comm */
  comm: string;
  /** /proc/PID/cmdline (empty for a zombie: its memory is gone) */
  cmdline: string[];
  /** job-control stopped (state T) when dumped: restored stopped */
  stopped: boolean;
  /** a zombie (exited, not reaped by its parent): how it ended. It has no memory, fds or HEAD. */
  zombie: ZombieExit | null;
  /**
   * Its controlling terminal when dumped (a live member's; absent for none, and in images made
   * before cr recorded it): the device number (/proc/PID/stat tty_nr, as st_rdev encodes it) and
   * its struct termios2 as hex, when an fd of the member held the terminal; `fg`, the terminal's
   * foreground process group (tpgid), when it had one. restore --shell-job opens the image's fds
   * on this device on cr's terminal instead, with these settings; a session leader whose terminal
   * is a pty of the image gets it back with that foreground group (src/restart/terminals.ts).
   */
  ctty?: { rdev: number; termios?: string; fg?: number };
}

export const MAX_PID = 1 << 22;

/** The wait status as the kernel reports it (/proc/PID/stat exit_code, waitpid's status), decoded. */
export function decodeWaitStatus(status: number): ZombieExit {
  const signal = status & 0x7f;
  if (signal === 0) return { code: (status >> 8) & 0xff, signal: null, core: false };
  return { code: null, signal, core: (status & 0x80) !== 0 };
}

/** What a zombie's status reads as in one line: `exit 3`, `SIGTERM` (signal 15), with `core`. */
export function describeExit(z: ZombieExit, name: (sig: number) => string = (s) => `signal ${s}`): string {
  return z.signal === null ? `exit ${z.code}` : `${name(z.signal)}${z.core ? ' (core dumped)' : ''}`;
}

/**
 * The first reason `members` (pre-order, root first) is not a tree cr can hold, or null. The
 * rules (docs/trees.md, "Groups and sessions"):
 * - at least one member; the root is live; pids 1..2^22, each once; groups and sessions 0..2^22;
 * - every member but the root has a live member listed before it as its parent (a zombie has no
 *   children: the kernel gives an exiting process's children to a reaper);
 * - a session is either the root's (made outside the tree) or led by a member: its id is that
 *   member's pid and the leader's own sid;
 * - a process group is either the root's (outside, or the root itself), in the root's session, or
 *   led by a member: its id is that member's pid and the leader's own pgid; a group lies in one
 *   session (setpgid joins only a group of the caller's session);
 * - a session leader leads its group too (setsid makes pid = pgid = sid, and a session leader
 *   cannot setpgid).
 * A zombie's group and session are judged as anyone's: they are what it died in.
 */
export function treeProblem(members: readonly TreeMember[]): string | null {
  if (members.length === 0) return 'no processes';
  const root = members[0]!;
  if (root.zombie) return `the root ${root.pid} is a zombie`;
  const byPid = new Map<number, TreeMember>();
  for (const [i, m] of members.entries()) {
    if (!Number.isSafeInteger(m.pid) || m.pid < 1 || m.pid > MAX_PID) return `member ${i}: pid ${m.pid} is not 1..${MAX_PID}`;
    // Group or session 0: the kernel's first one, never left by a process that init started
    // without setsid (or one cr's pid namespace cannot see). Only an outside one can be 0: no
    // member leads it, so the rules below accept it only as the root's.
    for (const [k, v] of [['pgid', m.pgid], ['sid', m.sid]] as const) {
      if (!Number.isSafeInteger(v) || v < 0 || v > MAX_PID) return `member ${i}: ${k} ${v} is not 0..${MAX_PID}`;
    }
    if (!Number.isSafeInteger(m.ppid) || m.ppid < 0 || m.ppid > MAX_PID) return `member ${i}: ppid ${m.ppid} is not 0..${MAX_PID}`;
    if (byPid.has(m.pid)) return `pid ${m.pid} is in the tree twice`;
    if (i > 0) {
      const parent = byPid.get(m.ppid);
      if (!parent) return `process ${m.pid}: its parent ${m.ppid} is not in the tree before it`;
      if (parent.zombie) return `process ${m.pid}: its parent ${m.ppid} is a zombie`;
    }
    byPid.set(m.pid, m);
  }
  for (const m of members) {
    if (m.sid === m.pid && m.pgid !== m.pid) return `process ${m.pid} leads session ${m.sid} but is in group ${m.pgid}, not its own`;
    if (m.sid !== root.sid) {
      const leader = byPid.get(m.sid);
      if (!leader || leader.sid !== leader.pid) return `process ${m.pid} is in session ${m.sid}, which is neither the root's (${root.sid}) nor led by a member`;
    }
    if (m.pgid !== root.pgid) {
      const leader = byPid.get(m.pgid);
      if (!leader || leader.pgid !== leader.pid) return `process ${m.pid} is in group ${m.pgid}, which is neither the root's (${root.pgid}) nor led by a member`;
      if (leader.sid !== m.sid) return `process ${m.pid} is in group ${m.pgid} of session ${leader.sid} but in session ${m.sid}`;
    } else if (m.sid !== root.sid) {
      return `process ${m.pid} is in the root's group ${m.pgid} but in session ${m.sid}, not the root's ${root.sid}`;
    }
  }
  return null;
}

/** The live members, in tree order: those with a HEAD and an entry in the fd table. */
export const liveMembers = (members: readonly TreeMember[]): TreeMember[] => members.filter((m) => m.zombie === null);
