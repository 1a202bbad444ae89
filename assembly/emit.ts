// Plan emission: ops as flat i32 words, decoded by src/plan/decode.ts.
// Every op that lets the kernel choose an fd number carries the number expected. The op codes and
// their words are listed in scripts/abi.mjs.

import {
  OP_PIPE2, OP_OPEN, OP_DUP2, OP_DUPFD, OP_CLOSE, OP_SETFL, OP_SETFD, OP_SETPIPESZ, OP_LSEEK, OP_WRITE,
  OP_PRLIMIT, OP_COMMIT, OP_CREATE, OP_SOCKETPAIR,
} from './abi';

/**
 * Words left free in front of the ops for the header index.ts writes there, so that the output is
 * this buffer itself rather than a copy of it (26 MB at 10^6 fds, every page of it fresh memory).
 */
export const HEADER_ROOM: i32 = 8;
let words = new StaticArray<i32>(1024);
let used: i32 = HEADER_ROOM;
let ops: i32 = 0;
/** highest fd number any op names: decides whether the soft limit must be raised first */
export let highestFd: i32 = -1;

/** The buffer the ops are written to, made anew on a fresh heap (index.ts `input`). */
export function newEmitBuffer(): void {
  words = new StaticArray<i32>(1024);
}

export function resetEmit(): void {
  used = HEADER_ROOM;
  ops = 0;
  highestFd = -1;
}

export function opCount(): i32 {
  return ops;
}

/** Words of ops emitted; they start at HEADER_ROOM in wordsOut(). */
export function wordCount(): i32 {
  return used - HEADER_ROOM;
}

export function wordsOut(): StaticArray<i32> {
  return words;
}

/**
 * Room for about the ops a table of this size takes, made at once: grown by doubling from small,
 * the buffer left each smaller copy behind (the heap is freed only between plans).
 */
export function expectWords(nFds: i32, nDescs: i32, nPipes: i32, nTarget: i32): void {
  const n = i64(HEADER_ROOM) + 5 * i64(nFds) + 2 * i64(nDescs) + 4 * i64(nPipes) + 2 * i64(nTarget) + 64;
  if (n > i64(words.length) && n < i64(1) << 28) {
    const bigger = new StaticArray<i32>(i32(n));
    memory.copy(changetype<usize>(bigger), changetype<usize>(words), usize(used) << 2);
    words = bigger;
  }
}

function reserve(n: i32): void {
  if (used + n <= words.length) return;
  let size = words.length * 2;
  while (size < used + n) size *= 2;
  const bigger = new StaticArray<i32>(size);
  memory.copy(changetype<usize>(bigger), changetype<usize>(words), usize(used) << 2);
  words = bigger;
}

function put(w: i32): void {
  unchecked((words[used++] = w));
}

function seen(fd: i32): void {
  if (fd > highestFd) highestFd = fd;
}

export function emitPipe2(flags: i32, r: i32, w: i32, pipe: i32): void {
  reserve(5);
  put(OP_PIPE2); put(flags); put(r); put(w); put(pipe);
  seen(w);
  ops++;
}

/** socketpair(): fd0 and fd1 become desc0 and desc1 (-1: a temporary end), its kind fills them. */
export function emitSocketpair(cloexec: bool, fd0: i32, fd1: i32, desc0: i32, desc1: i32): void {
  reserve(6);
  put(OP_SOCKETPAIR); put(cloexec ? 1 : 0); put(fd0); put(fd1); put(desc0); put(desc1);
  seen(fd1);
  ops++;
}

export function emitOpen(desc: i32, pathDesc: i32, via: i32, flags: i32, fd: i32): void {
  reserve(6);
  put(OP_OPEN); put(desc); put(pathDesc); put(via); put(flags); put(fd);
  seen(fd);
  ops++;
}

export function emitDup2(from: i32, to: i32, cloexec: bool): void {
  reserve(4);
  put(OP_DUP2); put(from); put(to); put(cloexec ? 1 : 0);
  seen(to);
  ops++;
}

export function emitDupfd(from: i32, min: i32, cloexec: bool, fd: i32): void {
  reserve(5);
  put(OP_DUPFD); put(from); put(min); put(cloexec ? 1 : 0); put(fd);
  seen(fd);
  ops++;
}

export function emitClose(fd: i32): void {
  reserve(2);
  put(OP_CLOSE); put(fd);
  ops++;
}

export function emitSetfl(fd: i32, flags: i32): void {
  reserve(3);
  put(OP_SETFL); put(fd); put(flags);
  ops++;
}

export function emitSetfd(fd: i32, cloexec: bool): void {
  reserve(3);
  put(OP_SETFD); put(fd); put(cloexec ? 1 : 0);
  ops++;
}

export function emitSetPipeSize(fd: i32, size: i32): void {
  reserve(3);
  put(OP_SETPIPESZ); put(fd); put(size);
  ops++;
}

export function emitLseek(fd: i32, desc: i32): void {
  reserve(3);
  put(OP_LSEEK); put(fd); put(desc);
  ops++;
}

export function emitWrite(fd: i32, pipe: i32): void {
  reserve(3);
  put(OP_WRITE); put(fd); put(pipe);
  ops++;
}

/** A CLASS_SINGLE description: its kind makes it with one call (eventfd2) at fd. */
export function emitCreate(desc: i32, cloexec: bool, fd: i32): void {
  reserve(4);
  put(OP_CREATE); put(desc); put(cloexec ? 1 : 0); put(fd);
  seen(fd);
  ops++;
}

export function emitPrlimit(soft: i32, hard: i32): void {
  reserve(3);
  put(OP_PRLIMIT); put(soft); put(hard);
  ops++;
}

export function emitCommit(): void {
  reserve(1);
  put(OP_COMMIT);
  ops++;
}
