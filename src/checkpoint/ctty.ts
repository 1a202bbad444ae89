// The settings of a process's controlling terminal, for restore --shell-job to give the terminal
// it lands on: read through a copy (pidfd_getfd) of an fd the process holds on it, so cr opens no
// terminal of its own (an open could make it cr's controlling tty, or block on a modem line).
import { closeSync, readdirSync, statSync } from 'node:fs';
import { pidfdGetfd, pidfdOpen } from '../../bridge/pidfd.js';
import { getTermios } from '../../bridge/tty.js';
import type { TreeMember } from '../model/tree.js';

/** member with its terminal's termios added, when one of its fds is on that terminal. */
export function withCttyTermios(member: TreeMember): TreeMember {
  if (member.ctty === undefined || member.zombie !== null) return member;
  const fd = fdOnDevice(member.pid, member.ctty.rdev);
  if (fd === undefined) return member;
  const pidfd = pidfdOpen(member.pid);
  try {
    const mine = pidfdGetfd(pidfd, fd);
    try {
      return { ...member, ctty: { ...member.ctty, termios: getTermios(mine).toString('hex') } };
    } finally {
      closeSync(mine);
    }
  } finally {
    closeSync(pidfd);
  }
}

/** The lowest fd of pid on the character device rdev. */
function fdOnDevice(pid: number, rdev: number): number | undefined {
  const fds = readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b);
  for (const fd of fds) {
    try {
      const st = statSync(`/proc/${pid}/fd/${fd}`);
      if (st.isCharacterDevice() && st.rdev === rdev) return fd;
    } catch {
      // closed meanwhile by no one (the process is frozen), or a path gone: not this one
    }
  }
  return undefined;
}
