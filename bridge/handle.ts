// open_by_handle_at(2) and FIONREAD: where an inotify watch's inode is (its fdinfo file handle),
// and how many bytes of events an inotify description holds, through fds cr opened.
import { check } from './errno.js';
import { libc } from './libc.js';

const SYS_ioctl = 16;
const SYS_open_by_handle_at = 304;
const FIONREAD = 0x541b;

/** open_by_handle_at(mountFd, {type, bytes}, flags): an fd on the inode (needs CAP_DAC_READ_SEARCH). */
export function openByHandle(mountFd: number, type: number, handle: Buffer, flags: number): number {
  const fh = Buffer.alloc(8 + handle.length); // struct file_handle { u32 handle_bytes; int handle_type; u8 f_handle[]; }
  fh.writeUInt32LE(handle.length, 0);
  fh.writeInt32LE(type, 4);
  handle.copy(fh, 8);
  return check(libc.syscall(SYS_open_by_handle_at, 'int', mountFd, 'void *', fh, 'int', flags), () => `open_by_handle_at(${mountFd}, type ${type})`);
}

/** ioctl(fd, FIONREAD): bytes ready to read. */
export function bytesReady(fd: number): number {
  const n = Buffer.alloc(4);
  check(libc.syscall(SYS_ioctl, 'int', fd, 'ulong', FIONREAD, 'void *', n), () => `ioctl(${fd}, FIONREAD)`);
  return n.readInt32LE(0);
}
