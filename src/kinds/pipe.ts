// An end of an anonymous pipe. Recognised by its link `pipe:[ino]`; ends with one inode are one
// Pipe (its bytes and capacity are gathered by src/dump/pipes.ts). pipe2() makes the two ends
// (CLASS_PAIR_END: no O_LARGEFILE, which pipe2 never sets); an end opened again through
// /proc/PID/fd/N is reopened the same way at restore (CLASS_REOPEN: O_LARGEFILE, which open sets).
import { CLASS_PAIR_END, CLASS_REOPEN } from '../abi.js';
import { badInput } from '../errors.js';
import { O_ACCMODE, O_ASYNC, O_CREAT, O_DIRECT, O_EXCL, O_LARGEFILE, O_NOFOLLOW, O_TRUNC } from '../model/fdtable.js';
import { get, integer } from '../model/json.js';
import { oddFlags, RESTORABLE_FLAGS } from './common.js';
import type { KindModule } from './kind.js';

const MAX_ID = 2 ** 31 - 1;

export const pipe: KindModule<'pipe'> = {
  kind: 'pipe',
  recognise(e) {
    // `pipe:[ino]` is pipefs's name for its inodes: only an anonymous pipe has it, and it names
    // the pipe (one pipefs), so no stat is needed.
    if (!e.link.startsWith('pipe:')) return null;
    const odd = oddFlags(e, RESTORABLE_FLAGS, 'pipe');
    if (odd) return odd;
    return { kind: 'pipe', pipeKey: e.link, describe: (id, p) => ({ id, kind: 'pipe', flags: e.flags, pipe: p!.id }) };
  },
  fields: ['pipe'],
  parse(obj, where, id, flags) {
    // f_flags keeps O_NOFOLLOW, but /proc/PID/fd/N is a symlink: reopening a pipe with it is ELOOP.
    if ((flags & O_NOFOLLOW) !== 0) badInput(`${where}.flags: a pipe end cannot have O_NOFOLLOW (its reopen through /proc would fail with ELOOP)`);
    return { id, kind: 'pipe', flags, pipe: integer(get(obj, 'pipe'), `${where}.pipe`, 0, MAX_ID) };
  },
  creation(d) {
    if ((d.flags & O_LARGEFILE) === 0) return { cls: CLASS_PAIR_END, seek: false, callFlags: 0, after: d.flags & O_ACCMODE };
    // A reopen takes the end's flags but O_DIRECT (fifo_open refuses it) and O_ASYNC (only
    // F_SETFL puts a pipe on its fasync list): both come by F_SETFL after the data.
    const callFlags = (d.flags & ~(O_CREAT | O_EXCL | O_TRUNC | O_DIRECT | O_ASYNC)) >>> 0;
    return { cls: CLASS_REOPEN, seek: false, callFlags, after: (callFlags | O_LARGEFILE) >>> 0 };
  },
  simCheck: () => null,
  detail: () => '',
  diff: () => [],
};
