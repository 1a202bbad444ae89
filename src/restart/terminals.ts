// Controlling terminals a tree's restart gives back (docs/trees.md, "Terminals"): a member that
// leads its session, whose controlling terminal was a pty of the image (one whose master a member
// holds, as `script` holds its shell's), gets the new pty as its controlling terminal and the
// recorded foreground group on it. The kernel's rules: TIOCSCTTY makes a tty the caller's
// controlling terminal when it is a session leader with none and no other session has that tty
// (a new pty has none), and makes the caller's group the foreground; a child forked after it
// shares the session, and so the terminal (so the leader calls it just after its setsid(), before
// the children of its session are forked). TIOCSPGRP moves the foreground to another group of the
// session once it exists (after every setpgid). Either ioctl on the master acts on its slave.
// Pure planning here; the calls are made by makeTree (src/restart/tree.ts).
import { TIOCSCTTY, TIOCSPGRP } from '../../bridge/tty.js';
import { imagePty } from '../kinds/pty.js';
import type { Desc, FdTables } from '../model/fdtable.js';
import type { TreePlan } from '../plan/tree.js';

export { TIOCSCTTY, TIOCSPGRP };

/** What the terminal steps need of a member of the tree (src/model/tree.ts's TreeMember has it). */
export interface TerminalMember {
  pid: number;
  pgid: number;
  sid: number;
  zombie: unknown;
  /** its controlling terminal when dumped: device number and the foreground group (tpgid) */
  ctty?: { rdev: number; fg?: number };
}

/** A session leader's terminal, given back. */
export interface TerminalStep {
  /** the member (tree index) that leads the session */
  member: number;
  /** an fd the member holds on that pty when it calls setsid() (its own or one it carries): TIOCSCTTY on it */
  fd: number;
  /** the member (tree index) whose group is to be the terminal's foreground; undefined: the leader's, as TIOCSCTTY leaves it */
  foreground?: number;
}

/** The pty master of description id `d` is on: its own id, or a slave's master. */
const ptyOf = (d: Desc | undefined): number | undefined => (d?.kind === 'ptmx' ? d.id : d?.kind === 'pts' ? d.master : undefined);

/**
 * The terminal steps of a tree: `members` in tree order, `tables` the live members' fds (in the
 * same order), `plan` their tree plan (what each carries). Warnings name what cannot be given
 * back: a leader holding no fd on its pty when its session is made, a foreground group no live
 * member is in.
 */
export function terminalSteps(members: readonly TerminalMember[], tables: FdTables, plan: TreePlan): { steps: TerminalStep[]; warnings: string[] } {
  const descs = new Map<number, Desc>(tables.descs.map((d) => [d.id, d]));
  const planOf = new Map<number, number>(tables.processes.map((p, k) => [p.pid, k]));
  const steps: TerminalStep[] = [];
  const warnings: string[] = [];
  members.forEach((m, i) => {
    if (m.zombie !== null || m.sid !== m.pid || m.ctty === undefined) return;
    const pty = imagePty(m.ctty.rdev, tables.descs);
    if (pty === undefined) return; // a terminal outside the image (the user's): not cr's to give
    const k = planOf.get(m.pid)!;
    const held = [...tables.processes[k]!.fds, ...plan.processes[k]!.carries];
    // A slave before the master (the terminal as its programs see it), lowest fd first.
    const first = held
      .flatMap((f) => {
        const d = descs.get(f.desc);
        return ptyOf(d) === pty.id ? [{ fd: f.fd, slave: d!.kind === 'pts' }] : [];
      })
      .sort((a, b) => Number(b.slave) - Number(a.slave) || a.fd - b.fd)[0];
    if (first === undefined) {
      warnings.push(`process ${m.pid} gets no controlling terminal: its terminal, the image's pty (was /dev/pts/${pty.index}), is not among its fds when its session is made`);
      return;
    }
    const step: TerminalStep = { member: i, fd: first.fd };
    const fg = m.ctty.fg;
    if (fg !== undefined && fg !== m.pgid) {
      const j = members.findIndex((x) => x.zombie === null && x.pgid === fg && x.sid === m.pid);
      if (j < 0) warnings.push(`process ${m.pid}'s terminal had group ${fg} in the foreground, in which no live process of its session is: its own group is`);
      else step.foreground = j;
    }
    steps.push(step);
  });
  return { steps, warnings };
}
