// Sending signals, and the x86_64 Linux signal numbers.
import { check } from './errno.js';
import { libc } from './libc.js';

export const SIGHUP = 1;
export const SIGINT = 2;
export const SIGQUIT = 3;
export const SIGILL = 4;
export const SIGTRAP = 5;
export const SIGABRT = 6;
export const SIGBUS = 7;
export const SIGFPE = 8;
export const SIGKILL = 9;
export const SIGUSR1 = 10;
export const SIGSEGV = 11;
export const SIGUSR2 = 12;
export const SIGPIPE = 13;
export const SIGALRM = 14;
export const SIGTERM = 15;
export const SIGCHLD = 17;
export const SIGCONT = 18;
export const SIGSTOP = 19;
export const SIGTSTP = 20;
export const SIGTTIN = 21;
export const SIGTTOU = 22;

const names: Record<number, string> = {
  1: 'SIGHUP', 2: 'SIGINT', 3: 'SIGQUIT', 4: 'SIGILL', 5: 'SIGTRAP', 6: 'SIGABRT', 7: 'SIGBUS',
  8: 'SIGFPE', 9: 'SIGKILL', 10: 'SIGUSR1', 11: 'SIGSEGV', 12: 'SIGUSR2', 13: 'SIGPIPE',
  14: 'SIGALRM', 15: 'SIGTERM', 17: 'SIGCHLD', 18: 'SIGCONT', 19: 'SIGSTOP', 20: 'SIGTSTP',
  21: 'SIGTTIN', 22: 'SIGTTOU',
};

/** 'SIGKILL' for 9; `SIG<n>` for numbers without a name here (real-time signals). */
export function signalName(sig: number): string {
  return names[sig] ?? `SIG${sig}`;
}

export function kill(pid: number, sig: number): void {
  check(libc.kill(pid, sig), () => `kill(pid=${pid}, ${signalName(sig)})`);
}

export function tgkill(tgid: number, tid: number, sig: number): void {
  check(libc.tgkill(tgid, tid, sig), () => `tgkill(tgid=${tgid}, tid=${tid}, ${signalName(sig)})`);
}
