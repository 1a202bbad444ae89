// The one place koffi is loaded: raw libc declarations, untyped at the edge, wrapped by the
// other bridge modules. Calls glibc does not wrap go through syscall(2).
import { createRequire } from 'node:module';
import type Koffi from 'koffi';

/**
 * koffi's native module. koffi's own entry finds it (a package per platform, then a read of
 * Node's ELF header to choose glibc's build or musl's) and wraps it for deprecated names cr does
 * not use, which cost about twice the loading of the library itself (31 against 11 ms CPU in
 * process, load 10), in every command that loads the bridge. cr runs on x86_64 Linux with glibc
 * (libc.so.6 below), so that build, a pinned dependency of koffi, is loaded directly; wherever it
 * is not installed or does not load, koffi's entry finds the right one.
 */
function loadKoffi(): typeof Koffi {
  const require = createRequire(import.meta.url);
  try {
    return require('@koromix/koffi-linux-x64/linux_x64/koffi.node') as typeof Koffi;
  } catch {
    return require('koffi') as typeof Koffi;
  }
}

const koffi = loadKoffi();

const lib = koffi.load('libc.so.6');

/**
 * A function of the running node itself or of a library it was linked with, declared from its C
 * prototype (OpenSSL's: Node exports it for native addons). The program's own symbols are opened
 * on the first call. Throws where the symbol is not there (a node built without OpenSSL).
 */
let own: ReturnType<typeof koffi.load> | undefined;
export const nodeFunction = (prototype: string): ((...args: unknown[]) => unknown) => (own ??= koffi.load(null)).func(prototype);

/**
 * A shared library other than libc, by its soname, for functions declared from their C
 * prototypes (libxxhash's: src/image/checksum.ts). Throws where it is not installed.
 */
export const loadLibrary = (soname: string): { func(prototype: string): (...args: unknown[]) => unknown } => koffi.load(soname);

/** errno left by the last foreign call (koffi saves it right after the call returns). */
export const lastErrno = (): number => koffi.errno();
/** Clear errno, for calls whose -1 result can be a value (PTRACE_PEEKDATA). */
export const clearErrno = (): void => {
  koffi.errno(0);
};

/** Address of a Buffer's bytes, for structures that hold pointers built by hand. */
export const addressOf = (buf: Buffer): bigint => koffi.address(buf);

// Declared for the process_vm_readv/writev prototypes below, which name it.
koffi.struct('iovec', { base: 'void *', len: 'size_t' });

export const libc = {
  strerror: lib.func('const char *strerror(int errnum)') as (errnum: number) => string,
  syscall: lib.func('long syscall(long nr, ...)') as (nr: number, ...typedArgs: unknown[]) => number,
  ptrace: lib.func('ptrace', 'long', ['int', 'int', 'uintptr_t', 'uintptr_t']) as (
    req: number,
    pid: number,
    addr: bigint | number,
    data: bigint | number,
  ) => number | bigint,
  ptraceBuf: lib.func('ptrace', 'long', ['int', 'int', 'uintptr_t', 'void *']) as (
    req: number,
    pid: number,
    addr: bigint | number,
    data: Buffer,
  ) => number,
  waitpid: lib.func('int waitpid(int pid, _Out_ int *status, int options)') as (
    pid: number,
    status: Int32Array,
    options: number,
  ) => number,
  kill: lib.func('int kill(int pid, int sig)') as (pid: number, sig: number) => number,
  /** signal(2) with the handler as a number: only SIG_DFL (0) and SIG_IGN (1) are passed */
  signal: lib.func('intptr_t signal(int sig, intptr_t handler)') as (sig: number, handler: number) => number | bigint,
  tgkill: lib.func('int tgkill(int tgid, int tid, int sig)') as (tgid: number, tid: number, sig: number) => number,
  pipe2: lib.func('int pipe2(_Out_ int *fds, int flags)') as (fds: Int32Array, flags: number) => number,
  tee: lib.func('long tee(int fdIn, int fdOut, size_t len, unsigned int flags)') as (
    fdIn: number,
    fdOut: number,
    len: number,
    flags: number,
  ) => number,
  splice: lib.func('long splice(int fdIn, void *offIn, int fdOut, void *offOut, size_t len, unsigned int flags)') as (
    fdIn: number,
    offIn: null,
    fdOut: number,
    offOut: null,
    len: number,
    flags: number,
  ) => number,
  ioctl: lib.func('int ioctl(int fd, unsigned long request, ...)') as (fd: number, request: number, ...typedArgs: unknown[]) => number,
  fcntl: lib.func('int fcntl(int fd, int cmd, ...)') as (fd: number, cmd: number, ...typedArgs: unknown[]) => number,
  open: lib.func('int open(const char *path, int flags, ...)') as (path: string, flags: number, ...typedArgs: unknown[]) => number,
  openat: lib.func('int openat(int dirfd, const char *path, int flags, ...)') as (dirfd: number, path: string, flags: number, ...typedArgs: unknown[]) => number,
  linkat: lib.func('int linkat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, int flags)') as (
    olddirfd: number,
    oldpath: string,
    newdirfd: number,
    newpath: string,
    flags: number,
  ) => number,
  renameat2: lib.func('int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags)') as (
    olddirfd: number,
    oldpath: string,
    newdirfd: number,
    newpath: string,
    flags: number,
  ) => number,
  close: lib.func('int close(int fd)') as (fd: number) => number,
  flock: lib.func('int flock(int fd, int op)') as (fd: number, op: number) => number,
  readlinkat: lib.func('long readlinkat(int dirfd, const char *path, _Out_ void *buf, size_t len)') as (dirfd: number, path: string, buf: Buffer, len: number) => number,
  ioctlBuf: lib.func('int ioctl(int fd, unsigned long request, void *arg)') as (fd: number, request: number, arg: Buffer) => number,
  read: lib.func('long read(int fd, _Out_ void *buf, size_t len)') as (fd: number, buf: Buffer, len: number) => number,
  write: lib.func('long write(int fd, const void *buf, size_t len)') as (fd: number, buf: Buffer, len: number) => number,
  prlimit: lib.func('int prlimit(int pid, int resource, const void *newLimit, _Out_ void *oldLimit)') as (
    pid: number,
    resource: number,
    newLimit: Buffer | null,
    oldLimit: Buffer,
  ) => number,
  processVmReadv: lib.func(
    'long process_vm_readv(int pid, const iovec *local, unsigned long lc, const iovec *remote, unsigned long rc, unsigned long flags)',
  ) as (pid: number, local: object, lc: number, remote: object, rc: number, flags: number) => number,
  processVmWritev: lib.func(
    'long process_vm_writev(int pid, const iovec *local, unsigned long lc, const iovec *remote, unsigned long rc, unsigned long flags)',
  ) as (pid: number, local: object, lc: number, remote: object, rc: number, flags: number) => number,
  /** the same calls with iovec arrays built by hand (many ranges in one call) */
  processVmReadvRaw: lib.func('long process_vm_readv(int pid, void *local, unsigned long lc, void *remote, unsigned long rc, unsigned long flags)') as (
    pid: number, local: Buffer, lc: number, remote: Buffer, rc: number, flags: number) => number,
  processVmWritevRaw: lib.func('long process_vm_writev(int pid, void *local, unsigned long lc, void *remote, unsigned long rc, unsigned long flags)') as (
    pid: number, local: Buffer, lc: number, remote: Buffer, rc: number, flags: number) => number,
  posixSpawnp: lib.func(
    'int posix_spawnp(_Out_ int *pid, const char *file, const void *actions, const void *attr, const char **argv, const char **envp)',
  ) as (pid: Int32Array, file: string, actions: Buffer, attr: Buffer, argv: (string | null)[], envp: (string | null)[]) => number,
  faInit: lib.func('int posix_spawn_file_actions_init(void *fa)') as (fa: Buffer) => number,
  faDestroy: lib.func('int posix_spawn_file_actions_destroy(void *fa)') as (fa: Buffer) => number,
  faAddDup2: lib.func('int posix_spawn_file_actions_adddup2(void *fa, int fd, int newFd)') as (
    fa: Buffer,
    fd: number,
    newFd: number,
  ) => number,
  faAddClose: lib.func('int posix_spawn_file_actions_addclose(void *fa, int fd)') as (fa: Buffer, fd: number) => number,
  faAddClosefrom: lib.func('int posix_spawn_file_actions_addclosefrom_np(void *fa, int from)') as (
    fa: Buffer,
    from: number,
  ) => number,
  faAddChdir: lib.func('int posix_spawn_file_actions_addchdir_np(void *fa, const char *path)') as (
    fa: Buffer,
    path: string,
  ) => number,
  attrInit: lib.func('int posix_spawnattr_init(void *attr)') as (attr: Buffer) => number,
  attrDestroy: lib.func('int posix_spawnattr_destroy(void *attr)') as (attr: Buffer) => number,
  attrSetFlags: lib.func('int posix_spawnattr_setflags(void *attr, short flags)') as (attr: Buffer, flags: number) => number,
  attrSetSigmask: lib.func('int posix_spawnattr_setsigmask(void *attr, const void *set)') as (attr: Buffer, set: Buffer) => number,
  attrSetSigdefault: lib.func('int posix_spawnattr_setsigdefault(void *attr, const void *set)') as (
    attr: Buffer,
    set: Buffer,
  ) => number,
  sigemptyset: lib.func('int sigemptyset(void *set)') as (set: Buffer) => number,
  sigfillset: lib.func('int sigfillset(void *set)') as (set: Buffer) => number,
  getsockopt: lib.func('int getsockopt(int fd, int level, int name, _Out_ void *value, _Inout_ int *len)') as (
    fd: number,
    level: number,
    name: number,
    value: Buffer,
    len: Int32Array,
  ) => number,
  setsockopt: lib.func('int setsockopt(int fd, int level, int name, const void *value, int len)') as (
    fd: number,
    level: number,
    name: number,
    value: Buffer,
    len: number,
  ) => number,
  getsockname: lib.func('int getsockname(int fd, _Out_ void *addr, _Inout_ int *len)') as (fd: number, addr: Buffer, len: Int32Array) => number,
  getpeername: lib.func('int getpeername(int fd, _Out_ void *addr, _Inout_ int *len)') as (fd: number, addr: Buffer, len: Int32Array) => number,
  recvmsg: lib.func('long recvmsg(int fd, _Inout_ void *msg, int flags)') as (fd: number, msg: Buffer, flags: number) => number,
  bind: lib.func('int bind(int fd, const void *addr, int len)') as (fd: number, addr: Buffer, len: number) => number,
  connect: lib.func('int connect(int fd, const void *addr, int len)') as (fd: number, addr: Buffer, len: number) => number,
  socket: lib.func('int socket(int domain, int type, int protocol)') as (domain: number, type: number, protocol: number) => number,
  send: lib.func('long send(int fd, const void *buf, size_t len, int flags)') as (fd: number, buf: Buffer, len: number, flags: number) => number,
  recv: lib.func('long recv(int fd, _Out_ void *buf, size_t len, int flags)') as (fd: number, buf: Buffer, len: number, flags: number) => number,
  schedYield: lib.func('int sched_yield()') as () => number,
  // struct passwd on x86_64: name, passwd (8 bytes each), uid, gid (4 each), gecos, dir, shell.
  getpwuidR: lib.func('int getpwuid_r(uint32_t uid, void *pwd, void *buf, size_t buflen, void *result)') as (
    uid: number,
    pwd: Buffer,
    buf: Buffer,
    buflen: number,
    result: Buffer,
  ) => number,
  getgrouplist: lib.func('int getgrouplist(const char *user, uint32_t group, _Inout_ uint32_t *groups, _Inout_ int *ngroups)') as (
    user: string,
    group: number,
    groups: Uint32Array,
    ngroups: Int32Array,
  ) => number,
};
