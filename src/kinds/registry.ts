// Every kind of fd cr can dump and restore, one module each. A Record over DescKind: a kind in the
// Desc union without its module here is a compile error. Order matters to dump: the first module
// that recognises an fd has it (O_PATH first: an O_PATH fd on a file is not an open file).
import type { DescKind } from '../model/fdtable.js';
import { chr } from './chr.js';
import { deleted } from './deleted.js';
import { dir } from './dir.js';
import { epoll } from './epoll.js';
import { eventfd } from './eventfd.js';
import { inet } from './inet.js';
import { fifo } from './fifo.js';
import { file } from './file.js';
import type { DescOf, KindModule } from './kind.js';
import { inotify } from './inotify.js';
import { memfd } from './memfd.js';
import { opath } from './opath.js';
import { signalfd } from './signalfd.js';
import { pidfd } from './pidfd.js';
import { timerfd } from './timerfd.js';
import { pipe } from './pipe.js';
import { ptmx, pts } from './pty.js';
import { unix } from './unix.js';

export const KINDS: { readonly [K in DescKind]: KindModule<K> } = { opath, pipe, fifo, memfd, deleted, file, ptmx, pts, chr, eventfd, dir, epoll, timerfd, signalfd, unix, inet, inotify, pidfd };

export const KIND_NAMES = Object.keys(KINDS) as DescKind[];

/** The module of a description's kind, typed for that description. */
export function kindOf<K extends DescKind>(d: DescOf<K>): KindModule<K> {
  return KINDS[d.kind as K] as KindModule<K>;
}
