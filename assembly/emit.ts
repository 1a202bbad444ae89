// Plan emission: each op as a plan's words (src/plan/ops.ts), finished by src/plan/decode.ts.
// Every op that lets the kernel choose an fd number carries the number expected. The op codes and
// their words are listed in scripts/abi.mjs.

import {
  OP_PIPE2, OP_OPEN, OP_DUP2, OP_DUPFD, OP_CLOSE, OP_SETFL, OP_SETFD, OP_SETPIPESZ, OP_LSEEK, OP_WRITE,
  OP_PRLIMIT, OP_COMMIT, OP_CREATE, OP_SOCKETPAIR, OP_WORDS,
} from './abi';

/**
 * Words left free in front of the ops for the header index.ts writes there (5 words, and a
 * leading prlimit op when the soft limit must rise first), so that the output is this buffer
 * itself rather than a copy of it.
 */
export const HEADER_ROOM: i32 = 5 + OP_WORDS;
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
 * Room for more ops than a table of this size takes (1.84 per fd for bench/tables.ts pipeTable),
 * made at once: grown by doubling from small, the buffer left each smaller copy behind (the heap is
 * freed only between plans). Not zeroed: put writes every word before anything reads it, so the
 * room no op takes is never touched (in a fresh instance, never faulted in).
 */
export function expectWords(nFds: i32, nDescs: i32, nPipes: i32, nTarget: i32): void {
  const n = i64(HEADER_ROOM) + i64(OP_WORDS) * (2 * i64(nFds) + 3 * i64(nDescs) + 3 * i64(nPipes) + 2 * i64(nTarget) + 16);
  if (n > i64(words.length) && n < i64(1) << 28) grow(i32(n));
}

/** The buffer made `size` words (not zeroed: see expectWords), the words put so far kept. */
function grow(size: i32): void {
  const bigger = changetype<StaticArray<i32>>(__new(usize(size) << 2, idof<StaticArray<i32>>()));
  memory.copy(changetype<usize>(bigger), changetype<usize>(words), usize(used) << 2);
  words = bigger;
}

/**
 * One op as a plan's words (src/plan/ops.ts): its kind, five fields (0 where it has fewer), and
 * -1 where a plan keeps the index of its text (src/plan/decode.ts puts the texts in).
 */
function put(kind: i32, a: i32, b: i32, c: i32, d: i32, e: i32): void {
  if (used + OP_WORDS > words.length) grow(words.length * 2);
  const at = changetype<usize>(words) + (usize(used) << 2);
  store<i32>(at, kind);
  store<i32>(at, a, 4);
  store<i32>(at, b, 8);
  store<i32>(at, c, 12);
  store<i32>(at, d, 16);
  store<i32>(at, e, 20);
  store<i32>(at, -1, 24);
  used += OP_WORDS;
  ops++;
}

/** The words of one op at `at` in `out`, as put writes them (index.ts: the leading prlimit). */
export function putAt(out: StaticArray<i32>, at: i32, kind: i32, a: i32, b: i32): void {
  out[at] = kind;
  out[at + 1] = a;
  out[at + 2] = b;
  out[at + 3] = 0;
  out[at + 4] = 0;
  out[at + 5] = 0;
  out[at + 6] = -1;
}

function seen(fd: i32): void {
  if (fd > highestFd) highestFd = fd;
}

/** `pipe` is the input's object index (decode makes it the table's id). */
export function emitPipe2(flags: i32, r: i32, w: i32, pipe: i32): void {
  put(OP_PIPE2, flags, r, w, pipe, 0);
  seen(w);
}

/** socketpair(): fd0 and fd1 become desc0 and desc1 (-1: a temporary end), its kind fills them. */
export function emitSocketpair(cloexec: bool, fd0: i32, fd1: i32, desc0: i32, desc1: i32): void {
  put(OP_SOCKETPAIR, cloexec ? 1 : 0, fd0, fd1, desc0, desc1);
  seen(fd1);
}

/** By path (via -1): the path is pathDesc's, carried in the last field for decode. */
export function emitOpen(desc: i32, pathDesc: i32, via: i32, flags: i32, fd: i32): void {
  put(OP_OPEN, desc, via, flags, fd, via < 0 ? pathDesc : 0);
  seen(fd);
}

export function emitDup2(from: i32, to: i32, cloexec: bool): void {
  put(OP_DUP2, from, to, cloexec ? 1 : 0, 0, 0);
  seen(to);
}

export function emitDupfd(from: i32, min: i32, cloexec: bool, fd: i32): void {
  put(OP_DUPFD, from, min, cloexec ? 1 : 0, fd, 0);
  seen(fd);
}

export function emitClose(fd: i32): void {
  put(OP_CLOSE, fd, 0, 0, 0, 0);
}

export function emitSetfl(fd: i32, flags: i32): void {
  put(OP_SETFL, fd, flags, 0, 0, 0);
}

export function emitSetfd(fd: i32, cloexec: bool): void {
  put(OP_SETFD, fd, cloexec ? 1 : 0, 0, 0, 0);
}

export function emitSetPipeSize(fd: i32, size: i32): void {
  put(OP_SETPIPESZ, fd, size, 0, 0, 0);
}

/** `desc`, whose position decode puts in as the op's text, in the second field until then. */
export function emitLseek(fd: i32, desc: i32): void {
  put(OP_LSEEK, fd, desc, 0, 0, 0);
}

/** The object's bytes (`bytes` of them) written through fd; `pipe` is the input's index. */
export function emitWrite(fd: i32, pipe: i32, bytes: i32): void {
  put(OP_WRITE, fd, pipe, bytes, 0, 0);
}

/** A CLASS_SINGLE description: its kind makes it with one call (eventfd2) at fd. */
export function emitCreate(desc: i32, cloexec: bool, fd: i32): void {
  put(OP_CREATE, desc, cloexec ? 1 : 0, fd, 0, 0);
  seen(fd);
}

export function emitPrlimit(soft: i32, hard: i32): void {
  put(OP_PRLIMIT, soft, hard, 0, 0, 0);
}

export function emitCommit(): void {
  put(OP_COMMIT, 0, 0, 0, 0, 0);
}
