// Random parts of the names cr gives its temporary files (an image being written, a journal, a
// stand-in directory): read from /dev/urandom, the kernel's generator, without loading
// node:crypto (about 10 ms CPU and 250 page faults, as much as the rest of a dump's modules:
// docs/performance.md). Where /dev/urandom cannot be read (a chroot without /dev), node:crypto's.
import { closeSync, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';

/** `bytes` random bytes, as 2 * `bytes` hex digits. */
export function randomHex(bytes: number): string {
  const buf = Buffer.alloc(bytes);
  try {
    const fd = openSync('/dev/urandom', 'r');
    try {
      // /dev/urandom gives a read of at most 32 MiB whole (drivers/char/random.c).
      if (readSync(fd, buf, 0, bytes, null) === bytes) return buf.toString('hex');
    } finally {
      closeSync(fd);
    }
  } catch {
    // unreadable: node:crypto's below
  }
  const { randomBytes } = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto');
  return randomBytes(bytes).toString('hex');
}
