// fcntl(2) on cr's own fds: status flags (O_*) and descriptor flags (FD_CLOEXEC).
import { check } from './errno.js';
import { libc } from './libc.js';

export const F_DUPFD = 0;
export const F_GETFD = 1;
export const F_SETFD = 2;
export const F_GETFL = 3;
export const F_SETFL = 4;
export const F_DUPFD_CLOEXEC = 1030;
export const FD_CLOEXEC = 1;

export function fcntl(fd: number, cmd: number, arg = 0): number {
  return check(libc.fcntl(fd, cmd, 'long', arg), () => `fcntl(fd=${fd}, cmd=${cmd}, arg=${arg})`);
}

export function getFl(fd: number): number {
  return fcntl(fd, F_GETFL);
}

export function setFl(fd: number, flags: number): void {
  fcntl(fd, F_SETFL, flags);
}

export function getFd(fd: number): number {
  return fcntl(fd, F_GETFD);
}
