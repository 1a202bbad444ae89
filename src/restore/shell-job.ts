// restore --shell-job: the restarted process (or tree) becomes a job of the terminal cr runs on,
// as a shell's job is (docs/restore.md, "On your terminal"). cr is the job's shell for as long as
// it waits: the job's group is the terminal's foreground group while cr is the foreground of its
// own shell, with the job's settings; when the job stops (Ctrl-Z, or SIGTTIN/SIGTTOU) cr takes the
// terminal back, puts its own settings back and stops itself, so the shell above sees the job
// stopped; continued (fg or bg) it gives the terminal on again if it is in the foreground and
// continues the job. When the job ends, the terminal and its settings are given back.
import { closeSync, constants as fsConstants, fstatSync, openSync, readlinkSync, statSync } from 'node:fs';
import { kill, SIGCONT, SIGSTOP } from '../../bridge/signal.js';
import { getTermios, ignoreSignal, setTermios, SIGTTOU, tcgetpgrp, tcsetpgrp } from '../../bridge/tty.js';
import { waitpid, WNOHANG, WUNTRACED } from '../../bridge/wait.js';
import { badInput } from '../errors.js';
import { imagePty } from '../kinds/pty.js';
import { devName, type FdTable } from '../model/fdtable.js';
import type { TreeMember } from '../model/tree.js';
import { readStat } from '../proc/tree.js';

const MAX_POLL_MS = 25;

/** cr's controlling terminal: an fd cr holds on it, its device number and a path that opens it. */
export interface Terminal {
  fd: number;
  rdev: number;
  path: string;
}

/** cr's controlling terminal, or a one-line refusal: a job needs a terminal to be the foreground of. */
export function shellTerminal(): Terminal {
  const rdev = readStat(process.pid).ttyNr;
  let fd: number;
  try {
    if (rdev === 0) throw new Error('no controlling terminal');
    fd = openSync('/dev/tty', fsConstants.O_RDWR | fsConstants.O_NOCTTY);
  } catch {
    badInput('--shell-job: cr has no terminal (no controlling tty); run it from a shell on a terminal, or restore without --shell-job');
  }
  try {
    return { fd, rdev, path: terminalPath(rdev) };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** A path naming device rdev: the one cr's fd 0, 1 or 2 was opened by, else /dev/pts/N for a pty. */
function terminalPath(rdev: number): string {
  for (const fd of [0, 1, 2]) {
    try {
      if (fstatSync(fd).rdev === rdev) {
        const path = readlinkSync(`/proc/self/fd/${fd}`);
        if (statSync(path).rdev === rdev) return path;
      }
    } catch {
      // closed, or not a path: try the next
    }
  }
  const major = (rdev >> 8) & 0xfff;
  const minor = (rdev & 0xff) | ((rdev >> 12) & ~0xff);
  if (major >= 136 && major < 144) {
    const path = `/dev/pts/${(major - 136) * 256 + minor}`;
    try {
      if (statSync(path).rdev === rdev) return path;
    } catch {
      // not there: refused below
    }
  }
  badInput(`--shell-job: cannot find a path to cr's terminal (device ${devName(rdev)})`);
}

/** The members' controlling terminals outside the image: the user's (a pty of the image is given back as one). */
const outsideTerminals = (table: FdTable, members: readonly TreeMember[]): TreeMember[] =>
  members.filter((m) => m.ctty !== undefined && imagePty(m.ctty.rdev, table.descs) === undefined);

/**
 * The image's fds on its controlling terminals (every member's, but a pty of the image), opened
 * on cr's terminal instead: their descriptions' paths and device numbers made cr's terminal's.
 * Returns how many changed.
 */
export function onTerminal(table: FdTable, members: readonly TreeMember[], term: Terminal): number {
  const ttys = new Set(outsideTerminals(table, members).map((m) => m.ctty!.rdev));
  let n = 0;
  for (const d of table.descs) {
    if (d.kind !== 'chr' || d.rdev === undefined || !ttys.has(d.rdev)) continue;
    d.path = term.path;
    d.rdev = term.rdev;
    n++;
  }
  return n;
}

/** The settings the image's root had on its terminal (or the first member's that had one, not a pty of the image). */
export function jobTermios(table: FdTable, tree: readonly TreeMember[]): Buffer | null {
  const t = outsideTerminals(table, tree).find((m) => m.ctty?.termios !== undefined)?.ctty?.termios;
  return t === undefined ? null : Buffer.from(t, 'hex');
}

export class ShellJob {
  /** cr's own settings on the terminal, given back when the job stops or ends */
  private readonly own: Buffer;
  private readonly crGroup: number;
  private readonly restoreTtou: () => void;
  private pgid = 0;
  /** the job is the terminal's foreground group, given by cr */
  private holding = false;
  private ended = false;

  /** `settings`: the job's termios (the image's), null to leave the terminal's as they are. */
  constructor(private readonly term: Terminal, private settings: Buffer | null) {
    this.own = getTermios(term.fd);
    this.crGroup = readStat(process.pid).pgid;
    // tcsetpgrp from a background group (cr's, while the job has the terminal) raises SIGTTOU
    // unless it is ignored: a shell ignores it the same way.
    this.restoreTtou = ignoreSignal(SIGTTOU);
  }

  /** Before the job's first instruction: its group (pgid) gets the terminal if cr has it. */
  start(pgid: number): void {
    this.pgid = pgid;
    if (this.foreground()) this.give();
  }

  /** Wait for the job's leader pid (cr's child) to end, as its shell; returns its exit status. */
  async wait(pid: number): Promise<number> {
    try {
      for (let delay = 1; ; delay = Math.min(MAX_POLL_MS, delay * 2)) {
        const r = waitpid(pid, WNOHANG | WUNTRACED);
        if (r?.kind === 'exited' || r?.kind === 'signaled') {
          this.takeBack();
          return r.kind === 'exited' ? r.code : 128 + r.signal;
        }
        if (r?.kind === 'stopped') {
          this.takeBack();
          // cr stops as its job did, so the shell above sees the job stopped; this returns once
          // the shell continues cr (fg, or bg).
          kill(process.pid, SIGSTOP);
          if (this.foreground()) this.give();
          kill(-this.pgid, SIGCONT);
          delay = 1;
          continue;
        }
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    } finally {
      this.end();
    }
  }

  /** Whether cr's group is the terminal's foreground (where a shell's job is when run with fg). */
  private foreground(): boolean {
    return tcgetpgrp(this.term.fd) === this.crGroup;
  }

  private give(): void {
    if (this.settings !== null) setTermios(this.term.fd, this.settings);
    tcsetpgrp(this.term.fd, this.pgid);
    this.holding = true;
  }

  /** The terminal back to cr's group with cr's settings, the job's kept for when it goes on. */
  private takeBack(): void {
    if (!this.holding) return;
    this.holding = false;
    this.settings = getTermios(this.term.fd);
    tcsetpgrp(this.term.fd, this.crGroup);
    setTermios(this.term.fd, this.own);
  }

  /** The terminal given back if the job has it; cr's fd on it closed, SIGTTOU's disposition as it was. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    try {
      this.takeBack();
    } catch {
      // the terminal hung up: nothing to give back
    }
    this.restoreTtou();
    try {
      closeSync(this.term.fd);
    } catch {
      // closed already
    }
  }
}
