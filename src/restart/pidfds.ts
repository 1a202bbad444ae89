// The pidfds of a restarted process, pointed at their processes as restored. Replay made each a
// pidfd of the process it ran in (src/kinds/pidfd.ts: no other process of a tree need exist yet
// then, and a --same-pid husk is copied to its pid after); once every member exists, each pidfd
// is opened again for its process now and put in place with dup3. A description several members
// share (a pidfd inherited at fork) becomes one per member: a pidfd has no position, and only its
// O_NONBLOCK, set later with F_SETFL by one of them, would show the difference (docs/kinds.md).
import { O_CLOEXEC, type FdTable } from '../model/fdtable.js';
import { SYS } from '../inject/syscalls.js';
import { listFds } from '../proc/fds.js';
import { pidfdOpenFlags } from '../kinds/pidfd.js';
import type { Husk } from './husk.js';

/**
 * Point each pidfd of `table` in `husk` at `now(its dumped pid)`: pidfd_open, dup3 over the fd,
 * close. `fds`: the husk's fd numbers when the caller has just checked them, else read from /proc.
 */
export function pointPidfds(husk: Husk, table: FdTable, now: (dumped: number) => number, fds?: number[]): void {
  const descs = new Map(table.descs.map((d) => [d.id, d]));
  if (!table.fds.some((f) => descs.get(f.desc)?.kind === 'pidfd')) return;
  const open = new Set(fds ?? listFds(husk.pid));
  // The lowest free number: where pidfd_open puts the new one, before dup3 moves it.
  let spare = 0;
  while (open.has(spare)) spare++;
  const q = husk.queue();
  for (const f of table.fds) {
    const d = descs.get(f.desc);
    if (d?.kind !== 'pidfd') continue;
    const target = now(d.pid);
    q.add(`pidfd_open(${target})`, SYS.pidfd_open, [BigInt(target), BigInt(pidfdOpenFlags(d.flags))], BigInt(spare));
    q.add('dup3', SYS.dup3, [BigInt(spare), BigInt(f.fd), BigInt(f.cloexec ? O_CLOEXEC : 0)], BigInt(f.fd));
    q.add('close', SYS.close, [BigInt(spare)], 0n);
  }
  q.run();
}
