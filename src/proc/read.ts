// Reading a /proc file whole through one buffer reused by every read. /proc files say their size
// is 0, so node's readFileSync reads each into a fresh 64 KiB buffer: an allocation and its page
// faults per file, which a dump, reading hundreds of them while the process is frozen, paid in
// tens of milliseconds (a profile of the tracer scan: half its time in allocating).
import { closeFd, openFile, readFd } from '../../bridge/file.js';
import { O_CLOEXEC, O_RDONLY } from '../model/fdtable.js';

let buf = Buffer.allocUnsafe(64 * 1024);

/** The bytes of the file, in the shared buffer: valid until the next read. */
function readShared(path: string): Buffer {
  const fd = openFile(path, O_RDONLY | O_CLOEXEC);
  try {
    let got = 0;
    for (;;) {
      if (got === buf.length) {
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, got);
        buf = bigger;
      }
      const n = readFd(fd, buf.subarray(got));
      if (n === 0) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    closeFd(fd);
  }
}

/** The whole file as text (latin1 by default: one char per byte, as /proc's numbers and names are). A failure is a SyscallError, its code the errno's name. */
export function readProc(path: string, encoding: 'latin1' | 'utf8' = 'latin1'): string {
  return readShared(path).toString(encoding);
}

/** The whole file's bytes, a copy of their own. */
export function readProcBytes(path: string): Buffer {
  return Buffer.from(readShared(path));
}
