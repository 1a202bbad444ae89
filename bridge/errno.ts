// SyscallError: a failed libc/kernel call named with its arguments and the errno name,
// e.g. `ptrace(PTRACE_SEIZE, pid=123): EPERM (Operation not permitted)`.
import { constants } from 'node:os';
import { lastErrno, libc } from './libc.js';

const names = new Map<number, string>();
for (const [name, value] of Object.entries(constants.errno)) {
  // Aliases (EWOULDBLOCK = EAGAIN, EDEADLOCK = EDEADLK): keep the first, more common name.
  if (!names.has(value)) names.set(value, name);
}

/** Name of an errno value ('EPERM'), or `E<number>` when unknown. */
export function errnoName(errno: number): string {
  return names.get(errno) ?? `E${errno}`;
}

export class SyscallError extends Error {
  /** Name of the errno value, e.g. 'ESRCH'. */
  readonly code: string;
  constructor(
    /** The call with its arguments, e.g. `ptrace(PTRACE_SEIZE, pid=123)`. */
    readonly call: string,
    readonly errno: number,
  ) {
    const code = errnoName(errno);
    super(`${call}: ${code} (${libc.strerror(errno)})`);
    this.name = 'SyscallError';
    this.code = code;
  }
}

/**
 * Throw a SyscallError naming `describe()` when a libc call returned -1; otherwise return the
 * result. `describe` is a function so the fast path builds no strings.
 */
export function check(result: number, describe: () => string): number {
  if (result === -1) throw new SyscallError(describe(), lastErrno());
  return result;
}
