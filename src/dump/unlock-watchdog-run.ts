// The watchdog program (src/dump/unlock-watchdog.ts says why and how it is started): its
// arguments name the sockets (`PID:FD:INO`), the pipe from cr is at WATCHDOG_PIPE_FD. Blocks in
// one read; WATCHDOG_DONE: exit; end of file (cr died): unlock each socket that still is what it
// was, whatever else fails.
import { fstatSync, readSync } from 'node:fs';
import { withSocket } from '../kinds/socket-read.js';
import { unlock } from '../kinds/tcp-repair.js';
import { WATCHDOG_DONE, WATCHDOG_PIPE_FD } from './unlock-watchdog.js';

const word = Buffer.alloc(1);
let got = 0;
for (;;) {
  try {
    got = readSync(WATCHDOG_PIPE_FD, word, 0, 1, null);
    break;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EINTR' && code !== 'EAGAIN') break;
  }
}
if (!(got === 1 && word[0] === WATCHDOG_DONE)) {
  for (const arg of process.argv.slice(2)) {
    const [pid, fd, ino] = arg.split(':').map(Number) as [number, number, number];
    try {
      // The process ran on once cr died: the fd may be another socket by now, which is not touched.
      withSocket(pid, fd, (own) => {
        if (fstatSync(own).ino === ino) unlock(own, true);
      });
    } catch {
      // gone, or not ours to change: the others still are
    }
  }
}
