// bridge/ on real processes: each call's happy path and an errno path.
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, readdirSync, readlinkSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { errnoName, SyscallError } from '../bridge/errno.js';
import { closeFd, openFile, readFd, writeFd } from '../bridge/file.js';
import { kcmpFile } from '../bridge/kcmp.js';
import { readMemory, writeMemory, writeMemoryForce } from '../bridge/memory.js';
import { pidfdGetfd, pidfdOpen } from '../bridge/pidfd.js';
import { getPipeSize, pipe2, setPipeSize, splice, tee } from '../bridge/pipe.js';
import {
  cont, detach, getRegs, getRseqConfiguration, getSiginfo, getSigmask, interrupt, peekSiginfo, PTRACE_EVENT_STOP, seize,
  seizeAndStop, setRegs, setSigmask,
} from '../bridge/ptrace.js';
import { prlimit, RLIMIT_NOFILE } from '../bridge/rlimit.js';
import { kill, SIGKILL, SIGTERM, SIGTRAP, SIGUSR1, tgkill } from '../bridge/signal.js';
import { sha256 } from '../bridge/sha256.js';
import { reap, spawn } from '../bridge/spawn.js';
import { isatty, settleInput } from '../bridge/tty.js';
import { waitpid, waitStop, WNOHANG } from '../bridge/wait.js';
import { lastErrno, libc } from '../bridge/libc.js';
import { TIOCGPTPEER, TIOCINQ, TIOCSPTLCK } from '../src/kinds/pty.js';
import { O_CLOEXEC, O_CREAT, O_NONBLOCK, O_RDONLY, O_RDWR, O_TRUNC } from '../src/model/fdtable.js';
import { randomHex } from '../src/random-name.js';
import { imageChecksum, xxh3Implementations } from '../src/image/checksum.js';
import { waitInSyscall, withProcess } from './helpers/processes.js';

const NO_PID = 4_000_000; // above pid_max's largest possible value (2^22)

function throwsErrno(fn: () => unknown, code: string, callPart: string): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, SyscallError);
    const e = err as SyscallError;
    assert.is(e.code, code);
    assert.is(errnoName(e.errno), code);
    assert.ok(e.message.includes(callPart), e.message);
    assert.ok(e.message.includes(code), e.message);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

async function withPipe<T>(fn: (r: number, w: number) => T | Promise<T>, flags = 0): Promise<T> {
  const [r, w] = pipe2(flags);
  try {
    return await fn(r, w);
  } finally {
    closeFd(r);
    closeFd(w);
  }
}

/** An fd's file status flags as the kernel reports them, close-on-exec (O_CLOEXEC) included. */
const fdFlags = (fd: number): number => parseInt(/^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'latin1'))![1]!, 8);

const pipeInode = (fd: number, pid = process.pid): string => readlinkSync(`/proc/${pid}/fd/${fd}`);

/** Entry point of the dynamic loader in pid, from AT_BASE and the loader's ELF header. */
function loaderEntry(pid: number): bigint {
  const auxv = readFileSync(`/proc/${pid}/auxv`);
  let base = 0n;
  for (let i = 0; i < auxv.length; i += 16) if (auxv.readBigUInt64LE(i) === 7n) base = auxv.readBigUInt64LE(i + 8);
  const line = readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n').find((l) => l.startsWith(base.toString(16).padStart(8, '0') + '-'));
  assert.ok(line, 'AT_BASE mapping');
  const elf = readFileSync(line!.slice(line!.indexOf('/')));
  return base + elf.readBigUInt64LE(24);
}

test('spawn: child has exactly the fds asked for, crossed pairs included', async () => {
  await withPipe((r1, w1) =>
    withPipe(async (r2, w2) => {
      // Our w1 becomes child fd r2 and our w2 becomes child fd r1: each target is another's source.
      // Stopped at exec, so the loader has not yet opened (and closed) the libraries.
      await withProcess(['sleep', '30'], { fds: [[w1, r2], [w2, r1], [r1, 9]], stopAtExec: true }, (pid) => {
        assert.equal(readdirSync(`/proc/${pid}/fd`).map(Number).sort((a, b) => a - b), [r1, r2, 9].sort((a, b) => a - b));
        assert.is(pipeInode(r2, pid), pipeInode(w1));
        assert.is(pipeInode(r1, pid), pipeInode(w2));
        assert.is(kcmpFile(pid, r2, process.pid, w1), 0);
        assert.is(kcmpFile(pid, 9, process.pid, r1), 0);
      });
    }),
  );
});

test('spawn: exit status, cwd and env reach the child; a missing program is ENOENT', () => {
  const pid = spawn(['sh', '-c', 'test "$PWD" = /tmp && test "$CR_X" = y && exit 7'], { cwd: '/tmp', env: { CR_X: 'y', PATH: '/usr/bin:/bin' } });
  const r = reap(pid, 5000);
  assert.is(r.kind, 'exited');
  assert.is(r.code, 7);
  throwsErrno(() => spawn(['/nonexistent/cr-prog']), 'ENOENT', 'posix_spawnp(');
});

test('spawn stopAtExec: stopped at the loader entry, traced by us, runs normally after detach', async () => {
  const pid = spawn(['sh', '-c', 'exit 5'], { stopAtExec: true });
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(status, /State:\s+t/);
    assert.match(status, new RegExp(`TracerPid:\\s+${process.pid}\\n`));
    assert.is(getRegs(pid).rip, loaderEntry(pid));
    assert.is(readlinkSync(`/proc/${pid}/exe`), '/usr/bin/dash');
    detach(pid);
    const r = reap(pid, 5000);
    assert.is(r.kind, 'exited');
    assert.is(r.code, 5);
  } finally {
    try { kill(pid, SIGKILL); } catch { /* already reaped */ }
  }
});

test('spawn stopAtExec: a program that cannot be executed is an error, not a stopped child', () => {
  try {
    spawn(['/nonexistent/cr-prog'], { stopAtExec: true, fds: [] });
    assert.unreachable('should throw');
  } catch (err) {
    assert.match((err as Error).message, /before exec/);
  }
});

test('ptrace: seize a missing pid is ESRCH; regs round-trip; event-stop siginfo; detach resumes', async () => {
  throwsErrno(() => seize(NO_PID, 0), 'ESRCH', `ptrace(PTRACE_SEIZE, pid=${NO_PID}`);
  throwsErrno(() => interrupt(NO_PID), 'ESRCH', 'PTRACE_INTERRUPT');
  await withProcess(['sleep', '30'], {}, (pid) => {
    const stop = seizeAndStop(pid);
    assert.is(stop.event, PTRACE_EVENT_STOP);
    const info = getSiginfo(pid);
    assert.is(info.signo, SIGTRAP);
    assert.is(info.code >> 8, PTRACE_EVENT_STOP);
    const regs = getRegs(pid);
    setRegs(pid, { ...regs, r12: 0x1234n });
    assert.is(getRegs(pid).r12, 0x1234n);
    setRegs(pid, regs);
    assert.equal(getRegs(pid), regs);
    cont(pid);
    interrupt(pid);
    assert.is(waitStop(pid, 5000).event, PTRACE_EVENT_STOP);
    detach(pid);
    assert.match(readFileSync(`/proc/${pid}/status`, 'utf8'), /TracerPid:\s+0\n/);
    assert.is(waitpid(pid, WNOHANG), null);
  });
});

test('ptrace: signal mask get/set, queued siginfo peeked without dequeuing, rseq area', async () => {
  await withProcess(['sleep', '30'], { fds: [] }, (pid) => {
    waitInSyscall(pid, 230); // clock_nanosleep: start-up (rseq registration) done
    seizeAndStop(pid);
    const mask = getSigmask(pid);
    assert.is(mask.length, 8);
    setSigmask(pid, Buffer.alloc(8, 0xff));
    assert.is(getSigmask(pid).readBigUInt64LE(0), 0xfffffffffffbfeffn); // SIGKILL, SIGSTOP never blocked
    setSigmask(pid, mask);
    assert.equal(getSigmask(pid), mask);
    kill(pid, SIGUSR1);
    const queued = peekSiginfo(pid, true);
    assert.is(queued.length, 1);
    assert.is(queued[0]!.readInt32LE(0), SIGUSR1);
    assert.is(peekSiginfo(pid, true).length, 1); // still queued
    assert.is(peekSiginfo(pid, false).length, 0);
    assert.is(getRseqConfiguration(pid)?.signature, 0x53053053); // glibc registers rseq at start-up
  });
  throwsErrno(() => getSigmask(NO_PID), 'ESRCH', 'PTRACE_GETSIGMASK');
});

test('wait: WNOHANG on a running child is null; waitStop times out with a message', async () => {
  await withProcess(['sleep', '30'], {}, (pid) => {
    assert.is(waitpid(pid, WNOHANG), null);
    assert.throws(() => waitStop(pid, 20), /no state change within 20 ms/);
    kill(pid, SIGTERM);
    const r = reap(pid, 5000);
    assert.is(r.kind, 'signaled');
    assert.is(r.signal, SIGTERM);
  });
  throwsErrno(() => waitpid(NO_PID, WNOHANG), 'ECHILD', 'waitpid(pid=');
});

test('signal: kill and tgkill of a missing pid are ESRCH', () => {
  throwsErrno(() => kill(NO_PID, 0), 'ESRCH', `kill(pid=${NO_PID}`);
  throwsErrno(() => tgkill(NO_PID, NO_PID, SIGTERM), 'ESRCH', 'tgkill(');
});

test('kcmp: two dups of one pipe end are 0, two pipes are not; a bad fd is EBADF', async () => {
  await withPipe((r, w) => {
    const self = pidfdOpen(process.pid);
    let dup: number;
    try {
      dup = pidfdGetfd(self, r); // a second fd on r's description, as F_DUPFD would give
    } finally {
      closeFd(self);
    }
    try {
      assert.is(kcmpFile(process.pid, r, process.pid, dup), 0);
      assert.is.not(kcmpFile(process.pid, r, process.pid, w), 0);
    } finally {
      closeFd(dup);
    }
    throwsErrno(() => kcmpFile(process.pid, r, process.pid, 999), 'EBADF', 'kcmp(');
  });
});

test('pidfd: getfd takes a child fd into ours (close-on-exec); a missing fd is EBADF', async () => {
  await withPipe(async (r, w) => {
    await withProcess(['sleep', '30'], { fds: [[w, 5]], stopAtExec: true }, (pid) => {
      const pidfd = pidfdOpen(pid);
      try {
        const fd = pidfdGetfd(pidfd, 5);
        try {
          assert.is(kcmpFile(process.pid, fd, process.pid, w), 0);
          assert.is(fdFlags(fd) & O_CLOEXEC, O_CLOEXEC);
          writeFd(fd, Buffer.from('via pidfd'));
          const buf = Buffer.alloc(32);
          assert.is(buf.subarray(0, readFd(r, buf)).toString(), 'via pidfd');
        } finally {
          closeFd(fd);
        }
        throwsErrno(() => pidfdGetfd(pidfd, 7), 'EBADF', 'pidfd_getfd(');
      } finally {
        closeFd(pidfd);
      }
    });
  });
  throwsErrno(() => pidfdOpen(NO_PID), 'ESRCH', 'pidfd_open(');
});

test('pipe: tee copies and leaves the bytes; splice moves them; sizes; tee on a file is EINVAL', async () => {
  await withPipe((r1, w1) =>
    withPipe((r2, w2) => {
      writeFd(w1, Buffer.from('hello'));
      assert.is(tee(r1, w2, 100, 0), 5);
      const buf = Buffer.alloc(16);
      assert.is(buf.subarray(0, readFd(r2, buf)).toString(), 'hello');
      assert.is(splice(r1, w2, 100, 0), 5);
      throwsErrno(() => readFd(r1, buf), 'EAGAIN', `read(fd=${r1}`);
      assert.is(buf.subarray(0, readFd(r2, buf)).toString(), 'hello');
      assert.is(setPipeSize(w1, 100_000), 131072);
      assert.is(getPipeSize(r1), 131072);
      throwsErrno(() => setPipeSize(w1, 1 << 30), 'EPERM', 'F_SETPIPE_SZ');
    }),
    O_NONBLOCK,
  );
  const fd = openFile('/etc/hostname', O_RDONLY);
  try {
    await withPipe((_r, w) => throwsErrno(() => tee(fd, w, 10, 0), 'EINVAL', 'tee('));
  } finally {
    closeFd(fd);
  }
});

test('file: write/read a file; missing path is ENOENT; bad fd is EBADF', () => {
  const path = join(tmpdir(), `cr-bridge-${process.pid}`);
  const fd = openFile(path, O_RDWR | O_CREAT | O_TRUNC, 0o600);
  try {
    assert.is(writeFd(fd, Buffer.from('abc')), 3);
    assert.is(fdFlags(fd) & O_CLOEXEC, 0);
    assert.is(fdFlags(fd) & 3, O_RDWR);
  } finally {
    closeFd(fd);
    unlinkSync(path);
  }
  throwsErrno(() => openFile('/nonexistent/x', O_RDONLY), 'ENOENT', 'open("/nonexistent/x"');
  throwsErrno(() => closeFd(999), 'EBADF', 'close(fd=999)');
});

test('rlimit: read and lower a child NOFILE limit; raising the hard limit is EPERM', async () => {
  await withProcess(['sleep', '30'], {}, (pid) => {
    const old = prlimit(pid, RLIMIT_NOFILE, { soft: 100, hard: 200 });
    assert.ok(old.hard >= 200);
    assert.equal(prlimit(pid, RLIMIT_NOFILE), { soft: 100, hard: 200 });
    assert.match(readFileSync(`/proc/${pid}/limits`, 'utf8'), /Max open files\s+100\s+200/);
    throwsErrno(() => prlimit(pid, RLIMIT_NOFILE, { soft: 100, hard: 1 << 30 }), 'EPERM', `prlimit(pid=${pid}`);
  });
});

test('memory: read code, write the stack, force-write read-only code; EFAULT on bad address', async () => {
  await withProcess(['true'], { stopAtExec: true, fds: [] }, (pid) => {
    const rip = getRegs(pid).rip;
    const code = readMemory(pid, rip, 16);
    const maps = readFileSync(`/proc/${pid}/maps`, 'utf8');
    const loader = maps.split('\n').find((l) => l.includes('ld-linux'))!;
    const loaderBase = BigInt('0x' + loader.split('-')[0]);
    const file = readFileSync(loader.slice(loader.indexOf('/')));
    assert.equal(code, file.subarray(Number(rip - loaderBase), Number(rip - loaderBase) + 16));

    const sp = getRegs(pid).rsp - 256n;
    writeMemory(pid, sp, Buffer.from('scratch!'));
    assert.is(readMemory(pid, sp, 8).toString(), 'scratch!');

    throwsErrno(() => writeMemory(pid, rip, Buffer.from([0xcc])), 'EFAULT', 'process_vm_writev(');
    writeMemoryForce(pid, rip, Buffer.from([0xcc]));
    assert.is(readMemory(pid, rip, 1)[0], 0xcc);
    writeMemoryForce(pid, rip, code.subarray(0, 1));
    throwsErrno(() => readMemory(pid, 16n, 8), 'EFAULT', `process_vm_readv(pid=${pid}, addr=0x10`);
  });
});

test('sha256: the OpenSSL in node, called through koffi, agrees with node:crypto at every block boundary and on views', () => {
  for (const n of [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 8191, 8192, 1 << 20]) {
    const whole = Buffer.alloc(n + 5);
    for (let i = 0; i < whole.length; i++) whole[i] = (i * 131 + n) & 255;
    const bytes = new Uint8Array(whole.buffer, whole.byteOffset + 5, n);
    assert.equal(sha256(bytes).toString('hex'), createHash('sha256').update(bytes).digest('hex'), `${n} bytes`);
    // The same bytes in pieces (EVP_DigestUpdate), split at every size class, none and empty ones included.
    const pieces = [0, 1, 63, 64, 65, 4096].flatMap((cut) => (cut < n ? [bytes.subarray(0, cut), bytes.subarray(cut, cut), bytes.subarray(cut)] : []));
    for (let i = 0; i < pieces.length; i += 3) {
      assert.equal(sha256(pieces.slice(i, i + 3)).toString('hex'), createHash('sha256').update(bytes).digest('hex'), `${n} bytes in pieces`);
    }
  }
  assert.equal(sha256([]).toString('hex'), createHash('sha256').digest('hex'), 'no pieces');
});

const digest1 = (impl: { withSeed(seed?: bigint): { update(b: Uint8Array): unknown; digest(): bigint } }, bytes: Uint8Array): bigint => {
  const s = impl.withSeed(0n);
  s.update(bytes);
  return s.digest();
};

test('XXH3: the system libxxhash, called through koffi, agrees with @node-rs/xxhash at every length class, on views and fed in pieces', () => {
  const { system, nodeRs } = xxh3Implementations();
  // libapt-pkg depends on libxxhash0: on this machine the system's is the one used.
  assert.ok(system, 'libxxhash.so.0 (0.8 or later) loads');
  for (const n of [0, 1, 3, 4, 8, 9, 16, 17, 128, 129, 240, 241, 1023, 1024, 1025, 8191, 8192, (1 << 20) + 13]) {
    const whole = Buffer.alloc(n + 5);
    for (let i = 0; i < whole.length; i++) whole[i] = (i * 131 + n) & 255;
    const bytes = new Uint8Array(whole.buffer, whole.byteOffset + 5, n);
    const digest = (impl: NonNullable<typeof system>, pieces: number): bigint => {
      const s = impl.withSeed(0n);
      const step = Math.ceil(n / pieces) || 1;
      for (let at = 0; at < n || (at === 0 && n === 0); at += step) s.update(bytes.subarray(at, Math.min(n, at + step)));
      return s.digest();
    };
    const want = digest(nodeRs, 1);
    assert.is(digest(system!, 1), want, `${n} bytes`);
    assert.is(digest(system!, 7), want, `${n} bytes in 7 pieces`);
  }
  // A digest taken midway leaves the state as it was (the image writer hashes its END record after it).
  const both = Buffer.alloc(5000, 7);
  const midway = system!.withSeed(0n);
  midway.update(both.subarray(0, 300));
  assert.is(midway.digest(), digest1(nodeRs, both.subarray(0, 300)));
  midway.update(both.subarray(300));
  assert.is(midway.digest(), digest1(nodeRs, both));
  // The END record's bytes, whichever implementation hashes (the empty input's XXH3-64 is 2d06800538d394c2).
  assert.is(imageChecksum(new Uint8Array(0)).readBigUInt64LE(0), 0x2d06800538d394c2n);
});

test('isatty: a pty master is a terminal; a pipe, /dev/null and a closed fd are not', () => {
  const [r, w] = pipe2(O_CLOEXEC);
  const devNull = openSync('/dev/null', 'r');
  const ptmx = openSync('/dev/ptmx', 'r+');
  try {
    assert.ok(isatty(ptmx));
    assert.not.ok(isatty(r));
    assert.not.ok(isatty(w));
    assert.not.ok(isatty(devNull));
  } finally {
    for (const fd of [r, w, devNull, ptmx]) closeSync(fd);
  }
  assert.not.ok(isatty(r));
});

test('settleInput: TIOCINQ right after a write to either side of a pty counts every byte written', () => {
  const queued = (fd: number): number => {
    const count = Buffer.alloc(4);
    assert.is(libc.ioctlBuf(fd, Number(TIOCINQ), count), 0, 'TIOCINQ');
    return count.readInt32LE(0);
  };
  // Without settleInput the count read 0 in most tries here: the bytes were still in the flip buffer.
  for (let i = 0; i < 200; i++) {
    const master = openSync('/dev/ptmx', 'r+');
    let slave = -1;
    try {
      assert.is(libc.ioctlBuf(master, Number(TIOCSPTLCK), Buffer.alloc(4)), 0, 'TIOCSPTLCK');
      slave = libc.ioctl(master, Number(TIOCGPTPEER), 'int', Number(O_RDWR | O_CLOEXEC));
      assert.ok(slave >= 0, `TIOCGPTPEER: errno ${lastErrno()}`);
      writeFd(slave, Buffer.from('unread output'));
      settleInput(master);
      assert.is(queued(master), 13, `try ${i}: the slave's output at the master`);
      writeFd(master, Buffer.from('typed line\n'));
      settleInput(slave);
      assert.is(queued(slave), 11, `try ${i}: a line typed at the master, at the slave`);
    } finally {
      if (slave >= 0) closeSync(slave);
      closeSync(master);
    }
  }
});

test('randomHex: 2n hex digits, a new draw each time', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 64; i++) {
    const hex = randomHex(8);
    assert.match(hex, /^[0-9a-f]{16}$/);
    seen.add(hex);
  }
  assert.is(seen.size, 64);
  assert.match(randomHex(6), /^[0-9a-f]{12}$/);
});

test.run();
