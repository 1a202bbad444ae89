// src/inject on real processes: results, errors, and a tracee left exactly as it was, including
// one blocked in a syscall that must restart after we leave.
import { readFileSync, readlinkSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SyscallError } from '../bridge/errno.js';
import { closeFd, readFd, writeFd } from '../bridge/file.js';
import { pidfdGetfd, pidfdOpen } from '../bridge/pidfd.js';
import { pipe2 } from '../bridge/pipe.js';
import { detach, getRegs, getSiginfo, PTRACE_EVENT_STOP, seizeAndStop } from '../bridge/ptrace.js';
import { kill, SIGCONT, SIGSTOP, SIGUSR1 } from '../bridge/signal.js';
import { reap } from '../bridge/spawn.js';
import { waitpid, waitStop, WNOHANG, WUNTRACED } from '../bridge/wait.js';
import { Injector } from '../src/inject/injector.js';
import { SYS } from '../src/inject/syscalls.js';
import { buildC, waitInSyscall, withProcess } from './helpers/processes.js';

const ERESTARTSYS = -512n;
const ERESTART_RESTARTBLOCK = -516n;
const SYS_clock_nanosleep = 230;
const SYS_restart_syscall = 219;
const SYS_rt_sigsuspend = 130;

const sigField = (pid: number, field: string): string =>
  new RegExp(`${field}:\\s+(\\w+)`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]!;
const sigBlk = (pid: number): string => sigField(pid, 'SigBlk');
const signalState = (pid: number): string[] => ['SigBlk', 'SigIgn', 'SigCgt', 'SigPnd', 'ShdPnd'].map((f) => sigField(pid, f));

test('getpid, pipe2 and an errno: results land in the tracee; registers and signal state are restored', async () => {
  // SIGTRAP ignored (inherited through exec): injection must leave that disposition alone.
  await withProcess(['sh', '-c', 'trap "" TRAP; exec sleep 30'], { fds: [] }, (pid) => {
    waitInSyscall(pid, SYS_clock_nanosleep);
    seizeAndStop(pid);
    const before = getRegs(pid);
    const signalsBefore = signalState(pid);
    assert.is(BigInt(`0x${signalsBefore[1]}`) & (1n << 4n), 1n << 4n, 'SIGTRAP ignored');
    const mapsBefore = readFileSync(`/proc/${pid}/maps`, 'utf8');
    const inj = Injector.attach(pid);
    try {
      assert.is(sigBlk(pid), 'fffffffffffbfeff'); // everything but SIGKILL and SIGSTOP
      assert.is(inj.syscall(SYS.getpid), BigInt(pid));
      const fds = inj.scratch(8);
      inj.call('pipe2', SYS.pipe2, fds, 0n);
      const [r, w] = [inj.read(fds, 8).readInt32LE(0), inj.read(fds, 8).readInt32LE(4)];
      const link = readlinkSync(`/proc/${pid}/fd/${r}`);
      assert.match(link, /^pipe:\[\d+\]$/);
      assert.is(readlinkSync(`/proc/${pid}/fd/${w}`), link);
      assert.is(inj.syscall(SYS.close, 999n), -9n);
      try {
        inj.call('close', SYS.close, 999n);
        assert.unreachable('close(999) should fail');
      } catch (err) {
        assert.instance(err, SyscallError);
        assert.is((err as SyscallError).code, 'EBADF');
        assert.is((err as SyscallError).message, `close(0x3e7) injected in pid ${pid}: EBADF (Bad file descriptor)`);
      }
    } finally {
      inj.finish();
    }
    assert.equal(getRegs(pid), before);
    assert.equal(signalState(pid), signalsBefore);
    assert.is(getSiginfo(pid).code >> 8, PTRACE_EVENT_STOP);
    assert.is(readFileSync(`/proc/${pid}/maps`, 'utf8'), mapsBefore); // scratch unmapped
  });
});

test('a reader blocked in read() resumes its read after injection and gets the bytes', async () => {
  const [inR, inW] = pipe2(0);
  const [outR, outW] = pipe2(0);
  try {
    await withProcess(['head', '-c', '5'], { fds: [[inR, 0], [outW, 1]] }, (pid) => {
      waitInSyscall(pid, SYS.read);
      seizeAndStop(pid);
      const before = getRegs(pid);
      // How the kernel left the interrupted read: it will restart it when the tracee resumes.
      assert.is(before.orig_rax, BigInt(SYS.read));
      assert.is(before.rax, ERESTARTSYS);
      const inj = Injector.attach(pid);
      try {
        for (let i = 0; i < 3; i++) assert.is(inj.syscall(SYS.getppid), BigInt(process.pid));
        const fds = inj.scratch(8);
        inj.call('pipe2', SYS.pipe2, fds, 0n);
        inj.call('close', SYS.close, BigInt(inj.read(fds, 8).readInt32LE(0)));
        inj.call('close', SYS.close, BigInt(inj.read(fds, 8).readInt32LE(4)));
      } finally {
        inj.finish();
      }
      assert.equal(getRegs(pid), before);
      detach(pid);
      writeFd(inW, Buffer.from('hello'));
      const r = reap(pid, 5000);
      assert.is(r.kind, 'exited');
      assert.is(r.code, 0);
      const buf = Buffer.alloc(16);
      assert.is(buf.subarray(0, readFd(outR, buf)).toString(), 'hello');
    });
  } finally {
    for (const fd of [inR, inW, outR, outW]) closeFd(fd);
  }
});

// Exits 0 when clock_nanosleep completes, 3 when it reports EINTR, 4 on any other error.
const SLEEPER = `
#include <errno.h>
#include <time.h>
int main(void) {
  struct timespec ts = { 0, 300 * 1000 * 1000 };
  int rc = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, 0);
  return rc == 0 ? 0 : rc == EINTR ? 3 : 4;
}
`;

test('a sleeper interrupted in clock_nanosleep restarts through restart_syscall and completes', async () => {
  await withProcess([buildC(SLEEPER)], { fds: [] }, (pid) => {
    waitInSyscall(pid, SYS_clock_nanosleep);
    seizeAndStop(pid);
    const before = getRegs(pid);
    assert.is(before.rax, ERESTART_RESTARTBLOCK);
    const inj = Injector.attach(pid);
    try {
      inj.call('getpid', SYS.getpid);
      const page = inj.call('mmap', SYS.mmap, 0n, 4096n, 3n, 0x22n, -1n, 0n);
      inj.call('munmap', SYS.munmap, page, 4096n);
    } finally {
      inj.finish();
    }
    assert.equal(getRegs(pid), before);
    detach(pid);
    const r = reap(pid, 5000);
    assert.is(r.kind, 'exited');
    assert.is(r.code, 0);
  });
});

test('at the exec stop: give the new program an fd it then writes to', async () => {
  await withProcess(['sh', '-c', 'echo hi >&7; exit 4'], { fds: [], stopAtExec: true }, (pid) => {
    const inj = Injector.attach(pid);
    let ours = -1;
    try {
      const fds = inj.scratch(8);
      inj.call('pipe2', SYS.pipe2, fds, 0n);
      const r = inj.read(fds, 8).readInt32LE(0);
      const w = inj.read(fds, 8).readInt32LE(4);
      inj.call('dup2', SYS.dup2, BigInt(w), 7n);
      inj.call('close', SYS.close, BigInt(w));
      const pidfd = pidfdOpen(pid);
      try {
        ours = pidfdGetfd(pidfd, r);
      } finally {
        closeFd(pidfd);
      }
      inj.call('close', SYS.close, BigInt(r));
    } finally {
      inj.finish();
    }
    try {
      detach(pid);
      const r = reap(pid, 5000);
      assert.is(r.code, 4);
      const buf = Buffer.alloc(16);
      assert.is(buf.subarray(0, readFd(ours, buf)).toString(), 'hi\n');
    } finally {
      closeFd(ours);
    }
  });
});

test('an injected call that blocks is interrupted at the timeout; finish still restores the tracee', async () => {
  await withProcess(['sleep', '30'], { fds: [] }, (pid) => {
    waitInSyscall(pid, SYS_clock_nanosleep);
    seizeAndStop(pid);
    const before = getRegs(pid);
    const inj = Injector.attach(pid, { timeoutMs: 100 });
    try {
      const fds = inj.scratch(8);
      inj.call('pipe2', SYS.pipe2, fds, 0n);
      const r = inj.read(fds, 8).readInt32LE(0);
      assert.throws(() => inj.call('read', SYS.read, BigInt(r), fds, 1n), /did not return within 100 ms/);
      assert.is(inj.syscall(SYS.getpid), BigInt(pid));
    } finally {
      inj.finish();
    }
    assert.equal(getRegs(pid), before);
    detach(pid);
    waitInSyscall(pid, [SYS_clock_nanosleep, SYS_restart_syscall]); // back to sleeping, where it was
    assert.is(waitpid(pid, WNOHANG), null);
  });
});

// Catches SIGUSR1 (SA_RESTART) and reports it, then echoes one read from stdin.
const CATCHER = `
#include <signal.h>
#include <unistd.h>
static void onUsr1(int sig) { (void)sig; write(1, "usr1;", 5); }
int main(void) {
  struct sigaction sa = { 0 };
  sa.sa_handler = onUsr1;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, 0);
  char buf[64];
  ssize_t n = read(0, buf, sizeof buf);
  if (n > 0) write(1, buf, n);
  return n > 0 ? 0 : 3;
}
`;

test('a signal sent during injection waits for finish, then is handled; the read restarts', async () => {
  const [inR, inW] = pipe2(0);
  const [outR, outW] = pipe2(0);
  try {
    await withProcess([buildC(CATCHER)], { fds: [[inR, 0], [outW, 1]] }, (pid) => {
      waitInSyscall(pid, SYS.read);
      seizeAndStop(pid);
      const inj = Injector.attach(pid);
      try {
        kill(pid, SIGUSR1);
        assert.is(inj.syscall(SYS.getpid), BigInt(pid));
        assert.match(sigField(pid, 'ShdPnd'), /0000000000000200$/); // pending, blocked by us
      } finally {
        inj.finish();
      }
      detach(pid);
      const buf = Buffer.alloc(64);
      assert.is(buf.subarray(0, readFd(outR, buf)).toString(), 'usr1;');
      writeFd(inW, Buffer.from('data'));
      const r = reap(pid, 5000);
      assert.is(r.code, 0);
      assert.is(buf.subarray(0, readFd(outR, buf)).toString(), 'data');
    });
  } finally {
    for (const fd of [inR, inW, outR, outW]) closeFd(fd);
  }
});

test('SIGSTOP cannot be blocked: it is held during injection and takes effect after finish', async () => {
  await withProcess(['sleep', '30'], { fds: [] }, (pid) => {
    waitInSyscall(pid, SYS_clock_nanosleep);
    seizeAndStop(pid);
    const inj = Injector.attach(pid);
    try {
      kill(pid, SIGSTOP);
      assert.is(inj.syscall(SYS.getpid), BigInt(pid)); // would have stopped here, had it not been held
      assert.is(inj.syscall(SYS.getppid), BigInt(process.pid));
    } finally {
      inj.finish();
    }
    detach(pid);
    const stopped = waitStop(pid, 5000, WUNTRACED);
    assert.is(stopped.kind, 'stopped');
    assert.is(stopped.signal, SIGSTOP);
    kill(pid, SIGCONT);
    waitInSyscall(pid, [SYS_clock_nanosleep, SYS_restart_syscall]);
  });
});

// Blocks SIGUSR1, then waits in sigsuspend() with an empty temporary mask. Exits 0 if, after
// the handler ran, its own mask is back to {SIGUSR1}; 5 if not.
const SUSPENDER = `
#include <signal.h>
#include <unistd.h>
static void onUsr1(int sig) { (void)sig; }
int main(void) {
  struct sigaction sa = { 0 };
  sa.sa_handler = onUsr1;
  sigaction(SIGUSR1, &sa, 0);
  sigset_t usr1, none, now;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &usr1, 0);
  sigsuspend(&none);
  sigprocmask(SIG_SETMASK, 0, &now);
  return sigismember(&now, SIGUSR1) ? 0 : 5;
}
`;

test('a tracee in sigsuspend (temporary mask) keeps its real mask through injection', async () => {
  await withProcess([buildC(SUSPENDER)], { fds: [] }, (pid) => {
    waitInSyscall(pid, SYS_rt_sigsuspend);
    seizeAndStop(pid);
    const inj = Injector.attach(pid);
    try {
      inj.call('getpid', SYS.getpid);
    } finally {
      inj.finish();
    }
    detach(pid);
    waitInSyscall(pid, SYS_rt_sigsuspend); // restarted, waiting again
    kill(pid, SIGUSR1);
    const r = reap(pid, 5000);
    assert.is(r.kind, 'exited');
    assert.is(r.code, 0);
  });
});

test.run();
