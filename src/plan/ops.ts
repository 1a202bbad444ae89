// The plan: a flat list of syscalls to run inside the target, in order.
// Produced by the wasm planner (assembly/), checked by the simulator (src/sim/),
// executed by replay. Every op that lets the kernel pick an fd number carries the
// number the planner expects; whoever runs the plan must stop if the kernel disagrees.

export type Op =
  /** pipe2(int[2], flags): read end lands at fds[0], write end at fds[1] */
  | { op: 'pipe2'; flags: number; fds: [number, number]; pipe: number }
  /**
   * open(path, flags, 0): `desc` is the image description being created, or -1 for
   * a temporary. `via` >= 0 means path is /proc/self/fd/<via> (another description
   * of the same pipe); otherwise path is the description's own path.
   */
  | { op: 'open'; desc: number; path: string; via: number; flags: number; fd: number }
  /** dup2(from, to) when cloexec is false, dup3(from, to, O_CLOEXEC) when true */
  | { op: 'dup2'; from: number; to: number; cloexec: boolean }
  /** fcntl(from, F_DUPFD or F_DUPFD_CLOEXEC, min): lands at fd */
  | { op: 'dupfd'; from: number; min: number; cloexec: boolean; fd: number }
  | { op: 'close'; fd: number }
  /** fcntl(fd, F_SETFL, flags) */
  | { op: 'setfl'; fd: number; flags: number }
  /** fcntl(fd, F_SETFD, cloexec ? FD_CLOEXEC : 0) */
  | { op: 'setfd'; fd: number; cloexec: boolean }
  /** fcntl(fd, F_SETPIPE_SZ, size) */
  | { op: 'setpipesz'; fd: number; size: number }
  /** lseek(fd, offset, SEEK_SET); offset in decimal (a directory's position may pass 2^53) */
  | { op: 'lseek'; fd: number; offset: string }
  /**
   * A description its kind makes with one call (an eventfd: eventfd2, then its counter
   * written), landing at fd, close-on-exec as given (src/kinds/, creation class CLASS_SINGLE);
   * `call` says it in words.
   */
  | { op: 'create'; desc: number; cloexec: boolean; fd: number; call: string }
  /**
   * A link its kind makes once every description exists (an epoll's item `item`: epoll_ctl ADD
   * of the description at `fd` watching the one at the item's fd number, src/plan/links.ts);
   * `call` says it in words.
   */
  | { op: 'link'; desc: number; item: number; fd: number; call: string }
  /**
   * The object of description `desc` made before the descriptions that come from it (a pty, for
   * its master and slaves, src/plan/ptys.ts): made through the lowest free number `lowest` and
   * held at `fd` (done false), or finished and closed at `fd` once every description exists (done
   * true); `call` says it in words.
   */
  | { op: 'pty'; desc: number; lowest: number; fd: number; done: boolean; call: string }
  /**
   * A pair its kind makes with one call (a unix socketpair, its queued bytes sent through each
   * end): ends `descs` (-1: a temporary end, closed later) landing at `fds`; `call` says it in words.
   */
  | { op: 'socketpair'; cloexec: boolean; fds: [number, number]; descs: [number, number]; call: string }
  /** write the pipe's queued bytes (all of Pipe.data, one write per packet if packets) into fd */
  | { op: 'write'; fd: number; pipe: number; bytes: number }
  /** prlimit(0, RLIMIT_NOFILE, {soft, hard}) */
  | { op: 'prlimit'; soft: number; hard: number }
  /**
   * fork(): the child `pid` of a tree starts with a copy of this process's fd table (src/plan/tree.ts).
   * Only in a tree's plan, after the forking process's own ops; replay hands it to its onFork.
   */
  | { op: 'fork'; pid: number }
  /**
   * Marker, no syscall: ops before it only create fds at numbers the target did not
   * have open, so undoing them (closing those numbers) restores the target exactly.
   */
  | { op: 'commit' };

export interface Plan {
  ops: Op[];
  /** a lower bound on the number of ops any plan for this input needs */
  lowerBound: number;
  /** index of the commit marker in ops */
  commit: number;
  /** things the plan could not do exactly (e.g. a hard limit above the target's) */
  warnings: string[];
}
