// A pidfd (pidfd_open, clone's CLONE_PIDFD): a reference to a process. Recognised by its link
// `anon_inode:[pidfd]`; fdinfo's `Pid` names the process (-1 once it was reaped, 0 outside cr's
// pid namespace: both refused). Only a process of the image can be referred to again: dump
// refuses a pidfd of any other (src/checkpoint/refuse.ts), and an fds-only restore (`-- CMD`,
// `--into`) one of any process but the one dumped (pidfdProblem). Replay makes a pidfd of the
// process it runs in (pidfd_open of its own pid: CallQueue.self), which is what it is for a pidfd
// of itself; a whole restart then points each at its process as restored, once every member
// exists (src/restart/pidfds.ts). The simulator models the end of that: a pidfd of `pid`.
import { CLASS_SINGLE } from '../abi.js';
import { F_SETFD } from '../../bridge/fcntl.js';
import { badInput } from '../errors.js';
import { O_ACCMODE, O_APPEND, O_EXCL, O_NONBLOCK, O_RDWR, type FdTable } from '../model/fdtable.js';
import { get, integer } from '../model/json.js';
import { MAX_PID } from '../model/tree.js';
import { no, oddFlags } from './common.js';
import type { KindModule } from './kind.js';

/** What F_GETFL can show on a pidfd: O_RDWR, PIDFD_NONBLOCK (O_NONBLOCK), PIDFD_THREAD (O_EXCL), F_SETFL's O_APPEND. */
const PIDFD_FLAGS = O_RDWR | O_NONBLOCK | O_EXCL | O_APPEND;
/** pidfd_open's flags for a description: PIDFD_NONBLOCK and PIDFD_THREAD are the open flags. */
export const pidfdOpenFlags = (flags: number): number => flags & (O_NONBLOCK | O_EXCL);

const flagText = (flags: number): string => [flags & O_NONBLOCK ? 'PIDFD_NONBLOCK' : '', flags & O_EXCL ? 'PIDFD_THREAD' : ''].filter(Boolean).join('|') || '0';

export const pidfd: KindModule<'pidfd'> = {
  kind: 'pidfd',
  recognise(e) {
    if (e.link !== 'anon_inode:[pidfd]') return null;
    const odd = oddFlags(e, PIDFD_FLAGS, 'pidfd');
    if (odd) return odd;
    const pid = Number(e.info.get('Pid'));
    if (!Number.isInteger(pid)) return no(e, 'pidfd', 'this kernel does not show its process in fdinfo (Pid)');
    if (pid === -1) return no(e, 'pidfd', 'its process has exited and been reaped: a restore would have none to refer to');
    if (pid <= 0) return no(e, 'pidfd', 'its process is outside cr\'s pid namespace');
    return { kind: 'pidfd', describe: (id) => ({ id, kind: 'pidfd', flags: e.flags, pid }) };
  },
  fields: ['pid'],
  parse(obj, where, id, flags) {
    if ((flags & O_ACCMODE) !== O_RDWR || (flags & ~PIDFD_FLAGS) !== 0) badInput(`${where}.flags: a pidfd is O_RDWR with at most O_NONBLOCK, O_EXCL (PIDFD_THREAD) and O_APPEND`);
    return { id, kind: 'pidfd', flags, pid: integer(get(obj, 'pid'), `${where}.pid`, 1, MAX_PID) };
  },
  creation: (d) => ({ cls: CLASS_SINGLE, seek: false, callFlags: pidfdOpenFlags(d.flags), after: O_RDWR | pidfdOpenFlags(d.flags) }),
  create(d, cloexec, fd, q) {
    q.call('pidfd_open', [BigInt(q.self), BigInt(pidfdOpenFlags(d.flags))], BigInt(fd), `pidfd_open(${q.self}, ${flagText(d.flags)})`);
    // pidfd_open always gives a close-on-exec fd.
    if (!cloexec) q.call('fcntl', [BigInt(fd), BigInt(F_SETFD), 0n], 0n);
  },
  createText: (d, cloexec) => `pidfd_open(<pid of ${d.pid}>, ${flagText(d.flags)})${cloexec ? '' : ' + F_SETFD 0'}`,
  simCreate(proc, d, cloexec) {
    const fd = proc.pidfdOpen(d.pid, pidfdOpenFlags(d.flags));
    if (!cloexec) proc.setfd(fd, false);
    return fd;
  },
  simCheck: (d, sim) => (sim.target === d.pid ? null : `is a pidfd of ${sim.target}, the image says ${d.pid}`),
  detail: (d) => `pid ${d.pid}${d.flags & O_EXCL ? ' (thread)' : ''}`,
  diff: (a, b) => (a.pid === b.pid ? [] : [`pid ${a.pid} in A, ${b.pid} in B`]),
};

/**
 * Why an fds-only restore (one process's fds into `-- CMD` or `--into`) cannot give back the
 * pidfds of `table`, or null: a pidfd of any process but the one dumped (`self`) would have no
 * process to refer to.
 */
export function pidfdProblem(table: FdTable, self: number): string | null {
  for (const f of table.fds) {
    const d = table.descs.find((x) => x.id === f.desc);
    if (d?.kind === 'pidfd' && d.pid !== self) return `fd ${f.fd} is a pidfd of pid ${d.pid}, not of the process dumped: only a whole restart of its tree gives it back`;
  }
  return null;
}
