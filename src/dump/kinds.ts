// What kind of open file an fd is, and whether cr can checkpoint it: each kind's module
// (src/kinds/) recognises its own; what none of them takes is unsupported, with a reason dump
// prints (or records, under --skip-unsupported).
import { KINDS, KIND_NAMES } from '../kinds/registry.js';
import type { Recognised, Unsupported } from '../kinds/kind.js';
import type { ProcFd } from '../proc/fds.js';
import { printable } from '../printable.js';

export type { Recognised, Unsupported } from '../kinds/kind.js';

/** anon_inode:[eventfd] -> eventfd; eventpoll is better known as epoll. */
function anonKind(link: string): string | null {
  const m = /^anon_inode:\[?([^\]]*)\]?$/.exec(link);
  if (!m) return null;
  return m[1] === 'eventpoll' ? 'epoll' : m[1] || 'anon inode';
}

export function classify(e: ProcFd): Recognised | Unsupported {
  for (const name of KIND_NAMES) {
    const got = KINDS[name].recognise(e);
    if (got !== null) return got;
  }
  const no = (kind: string, reason: string): Unsupported => ({ fd: e.fd, kind, reason });
  // A file name is whatever the process (or anyone) chose: escaped wherever a message shows it.
  const link = printable(e.link);
  if (e.stat.isSocket()) return no('socket', `${link}: only unix, TCP and UDP sockets are supported`);
  const anon = anonKind(e.link);
  if (anon !== null) return no(anon, `${link}: ${anon} fds are not supported`);
  if (e.stat.isBlockDevice()) return no('block device', `${link}: block devices are not supported`);
  return no('unknown', `${link}: unknown kind of file`);
}

export const isUnsupported = (k: Recognised | Unsupported): k is Unsupported => 'reason' in k;
