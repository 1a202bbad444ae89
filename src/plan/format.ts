// A plan as people read it: one syscall a line, with the fd the kernel must return.

import { flagNames } from '../model/flags.js';
import type { Op } from './ops.js';
import { printable } from '../printable.js';

export function formatOp(op: Op): string {
  switch (op.op) {
    case 'pipe2':
      return `pipe2(${op.flags ? 'O_CLOEXEC' : '0'}) = [${op.fds[0]}, ${op.fds[1]}]    pipe ${op.pipe}`;
    case 'open':
      return `open("${printable(op.path, '"')}", ${flagNames(op.flags)}) = ${op.fd}    ${op.desc >= 0 ? `description ${op.desc}` : 'temporary'}`;
    case 'dup2':
      return op.cloexec ? `dup3(${op.from}, ${op.to}, O_CLOEXEC)` : `dup2(${op.from}, ${op.to})`;
    case 'dupfd':
      return `fcntl(${op.from}, ${op.cloexec ? 'F_DUPFD_CLOEXEC' : 'F_DUPFD'}, ${op.min}) = ${op.fd}`;
    case 'close':
      return `close(${op.fd})`;
    case 'setfl':
      return `fcntl(${op.fd}, F_SETFL, ${flagNames(op.flags)})`;
    case 'setfd':
      return `fcntl(${op.fd}, F_SETFD, ${op.cloexec ? 'FD_CLOEXEC' : '0'})`;
    case 'setpipesz':
      return `fcntl(${op.fd}, F_SETPIPE_SZ, ${op.size})`;
    case 'socketpair':
      return `${op.call} = [${op.fds[0]}, ${op.fds[1]}]    ${op.descs.map((d) => (d >= 0 ? `description ${d}` : 'temporary')).join(', ')}`;
    case 'create':
      return `${op.call} = ${op.fd}    description ${op.desc}`;
    case 'link':
      return `${op.call}    description ${op.desc} item ${op.item}`;
    case 'pty':
      return `${op.call}    description ${op.desc}`;
    case 'lseek':
      return `lseek(${op.fd}, ${op.offset}, SEEK_SET)`;
    case 'write':
      return `write(${op.fd}, <${op.bytes} bytes of pipe ${op.pipe}>)`;
    case 'prlimit':
      return `prlimit(0, RLIMIT_NOFILE, {${op.soft}, ${op.hard}})`;
    case 'fork':
      return `fork() = ${op.pid}    child process`;
    case 'commit':
      return '-- commit: everything above touched only new fd numbers --';
  }
}
