// Reading and writing another process's memory: process_vm_readv/writev (no stop needed, honours
// page protections), and /proc/PID/mem for pages the tracee cannot write itself (code).
import { closeSync, openSync, writeSync } from 'node:fs';
import { check } from './errno.js';
import { libc } from './libc.js';

const hex = (addr: bigint): string => `0x${addr.toString(16)}`;

export function readMemory(pid: number, addr: bigint, len: number): Buffer {
  const buf = Buffer.alloc(len);
  const n = check(
    libc.processVmReadv(pid, { base: buf, len }, 1, { base: addr, len }, 1, 0),
    () => `process_vm_readv(pid=${pid}, addr=${hex(addr)}, len=${len})`,
  );
  if (n !== len) throw new Error(`process_vm_readv(pid=${pid}, addr=${hex(addr)}, len=${len}): short read of ${n} bytes`);
  return buf;
}

export function writeMemory(pid: number, addr: bigint, buf: Buffer): void {
  const len = buf.length;
  const n = check(
    libc.processVmWritev(pid, { base: buf, len }, 1, { base: addr, len }, 1, 0),
    () => `process_vm_writev(pid=${pid}, addr=${hex(addr)}, len=${len})`,
  );
  if (n !== len) throw new Error(`process_vm_writev(pid=${pid}, addr=${hex(addr)}, len=${len}): short write of ${n} bytes`);
}

/**
 * Write through /proc/PID/mem, which (for a ptrace-attached caller) writes read-only pages too,
 * copy-on-write, as a debugger patches code. Node's fs errors carry the errno name already.
 */
export function writeMemoryForce(pid: number, addr: bigint, buf: Buffer): void {
  const fd = openSync(`/proc/${pid}/mem`, 'r+');
  try {
    const n = writeSync(fd, buf, 0, buf.length, Number(addr));
    if (n !== buf.length) throw new Error(`write(/proc/${pid}/mem, addr=${hex(addr)}, len=${buf.length}): short write of ${n} bytes`);
  } finally {
    closeSync(fd);
  }
}
