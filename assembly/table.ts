// The planner's input, decoded from the flat i32 words src/plan/encode.ts writes,
// and the grouping of fds into their descriptions (dup detection).

import {
  INPUT_VERSION, CLASS_PAIR_END, CLASS_REOPEN, CLASS_RENDEZVOUS, CLASS_INHERITED, MODE_FRESH, MODE_INTO_EXACT,
  DECODE_BAD_HEADER, DECODE_BAD_FD, DECODE_DUPLICATE_FD, DECODE_BAD_DESC, DECODE_BAD_PIPE,
  DECODE_DESC_WITHOUT_FD, DECODE_BAD_TARGET, DECODE_BAD_INHERITED, OBJECT_PACKETS, OBJECT_SOCKETPAIR,
} from './abi';

// Fds, sorted by number after decode.
export let nFds: i32 = 0;
export let fdNum: StaticArray<i32> = new StaticArray<i32>(0);
export let fdDesc: StaticArray<i32> = new StaticArray<i32>(0);
export let fdCloexec: StaticArray<bool> = new StaticArray<bool>(0);
/** per number up to maxImageFd: its index in fdNum, -1 for none (empty when maxImageFd >= MAX_FD_NUMBER) */
let fdAt: StaticArray<i32> = new StaticArray<i32>(0);
/** Twice the kernel's default fs.nr_open: image fds at or above it are refused (planner.ts). */
export const MAX_FD_NUMBER: i32 = 1 << 21;

// Descriptions: each a creation class (abi.ts CLASS_), never a kind. One record of DESC_WORDS
// words per description: the planner visits descriptions in the order of their numbers, which no
// cache follows, and reads most fields of each, so a field per array cost a miss per field.
export let nDescs: i32 = 0;
let descRecords = new StaticArray<i32>(0);
const DESC_SHIFT: i32 = 3;
const DESC_CLASS: i32 = 0;
/** F_GETFL the image wants */
const DESC_FLAGS: i32 = 1;
/** the shared object (a pipe) the description is on, -1 for none */
const DESC_PIPE: i32 = 2;
const DESC_SEEK: i32 = 3;
/** flags the creating call takes (open's, O_CLOEXEC aside: the planner adds it where the home wants it) */
const DESC_CALL_FLAGS: i32 = 4;
/** F_GETFL right after the creating call: what F_SETFL may have to change afterwards */
const DESC_AFTER: i32 = 5;
/** where the description's fds start in fdsOfDesc, and how many */
const DESC_FIRST: i32 = 6;
const DESC_COUNT: i32 = 7;

// @ts-ignore: decorator
@inline function descWord(d: i32, field: i32): i32 {
  return unchecked(descRecords[(d << DESC_SHIFT) + field]);
}

// @ts-ignore: decorator
@inline function setDescWord(d: i32, field: i32, value: i32): void {
  unchecked((descRecords[(d << DESC_SHIFT) + field] = value));
}

/** How description d comes to exist (abi.ts CLASS_). */
// @ts-ignore: decorator
@inline export function descClass(d: i32): i32 {
  return descWord(d, DESC_CLASS);
}

/** F_GETFL the image wants. */
// @ts-ignore: decorator
@inline export function descFlags(d: i32): i32 {
  return descWord(d, DESC_FLAGS);
}

/** The shared object (a pipe) the description is on, -1 for none. */
// @ts-ignore: decorator
@inline export function descPipe(d: i32): i32 {
  return descWord(d, DESC_PIPE);
}

/** Its offset is restored with lseek. */
// @ts-ignore: decorator
@inline export function descSeek(d: i32): bool {
  return descWord(d, DESC_SEEK) != 0;
}

/** Flags the creating call takes (open's, O_CLOEXEC aside: the planner adds it where the home wants it). */
// @ts-ignore: decorator
@inline export function descCallFlags(d: i32): i32 {
  return descWord(d, DESC_CALL_FLAGS);
}

/** F_GETFL right after the creating call: what F_SETFL may have to change afterwards. */
// @ts-ignore: decorator
@inline export function descAfter(d: i32): i32 {
  return descWord(d, DESC_AFTER);
}

/** Where the description's fds start in fdsOfDesc. */
// @ts-ignore: decorator
@inline export function descFirst(d: i32): i32 {
  return descWord(d, DESC_FIRST);
}

/** How many fds the description has. */
// @ts-ignore: decorator
@inline export function descCount(d: i32): i32 {
  return descWord(d, DESC_COUNT);
}

/**
 * the description's fds, ascending: fdsOfDesc[descFirst(d) .. descFirst(d) + descCount(d)), each one
 * word, its number and its close-on-exec bit (fdWordNumber, fdWordCloexec): the planner wants both,
 * and reached through fdNum and fdCloexec they cost a cache miss each at 10^6 fds
 */
export let fdsOfDesc: StaticArray<i32> = new StaticArray<i32>(0);

// Objects (pipes, socket pairs): one record of PIPE_WORDS words each, for the reason descriptions
// have one. Decode fills what the input says, pairing.ts how the descriptions pair up.
export let nPipes: i32 = 0;
let pipeRecords = new StaticArray<i32>(0);
const PIPE_SHIFT: i32 = 3;
const PIPE_CAPACITY: i32 = 0;
const PIPE_DATA_LEN: i32 = 1;
const PIPE_BITS: i32 = 2;
/** pairing.ts: the read and write description pipe2() made (a socket pair's two ends), -1 for none */
const PIPE_READ: i32 = 3;
const PIPE_WRITE: i32 = 4;
/** pairing.ts: where the object's descriptions start in descsOfPipe, and how many */
const PIPE_FIRST: i32 = 5;
const PIPE_COUNT: i32 = 6;
/** PIPE_BITS: a pipe whose bytes are packets (O_DIRECT writes) */
const PIPE_PACKETS: i32 = 1;
/** PIPE_BITS: a socket pair (OBJECT_SOCKETPAIR), not a pipe */
const PIPE_SOCKET: i32 = 2;
/** PIPE_BITS: a FIFO (its descriptions are CLASS_RENDEZVOUS), set by pairing.ts */
const PIPE_FIFO: i32 = 4;

// @ts-ignore: decorator
@inline function pipeWord(q: i32, field: i32): i32 {
  return unchecked(pipeRecords[(q << PIPE_SHIFT) + field]);
}

// @ts-ignore: decorator
@inline function setPipeWord(q: i32, field: i32, value: i32): void {
  unchecked((pipeRecords[(q << PIPE_SHIFT) + field] = value));
}

// @ts-ignore: decorator
@inline export function pipeCapacity(q: i32): i32 {
  return pipeWord(q, PIPE_CAPACITY);
}

/** Bytes queued in the object. */
// @ts-ignore: decorator
@inline export function pipeDataLen(q: i32): i32 {
  return pipeWord(q, PIPE_DATA_LEN);
}

/** A pipe whose bytes are packets (O_DIRECT writes). */
// @ts-ignore: decorator
@inline export function pipePackets(q: i32): bool {
  return (pipeWord(q, PIPE_BITS) & PIPE_PACKETS) != 0;
}

/** The object is a socket pair (OBJECT_SOCKETPAIR), not a pipe. */
// @ts-ignore: decorator
@inline export function pipeIsSocket(q: i32): bool {
  return (pipeWord(q, PIPE_BITS) & PIPE_SOCKET) != 0;
}

/** The object is a FIFO (pairing.ts). */
// @ts-ignore: decorator
@inline export function pipeIsFifo(q: i32): bool {
  return (pipeWord(q, PIPE_BITS) & PIPE_FIFO) != 0;
}

export function setPipeIsFifo(q: i32, fifo: bool): void {
  setPipeWord(q, PIPE_BITS, (pipeWord(q, PIPE_BITS) & ~PIPE_FIFO) | (fifo ? PIPE_FIFO : 0));
}

/**
 * The read description pipe2() made, or -1 when that end was closed; for a socket pair, its first
 * end by index (pairing.ts).
 */
// @ts-ignore: decorator
@inline export function pipe2Read(q: i32): i32 {
  return pipeWord(q, PIPE_READ);
}

export function setPipe2Read(q: i32, d: i32): void {
  setPipeWord(q, PIPE_READ, d);
}

/** The write description pipe2() made, or -1; for a socket pair, its second end (pairing.ts). */
// @ts-ignore: decorator
@inline export function pipe2Write(q: i32): i32 {
  return pipeWord(q, PIPE_WRITE);
}

export function setPipe2Write(q: i32, d: i32): void {
  setPipeWord(q, PIPE_WRITE, d);
}

/** Where the object's descriptions start in pairing.ts's descsOfPipe. */
// @ts-ignore: decorator
@inline export function pipeFirst(q: i32): i32 {
  return pipeWord(q, PIPE_FIRST);
}

/** How many descriptions are on the object. */
// @ts-ignore: decorator
@inline export function pipeCount(q: i32): i32 {
  return pipeWord(q, PIPE_COUNT);
}

export function setPipeMembers(q: i32, first: i32, count: i32): void {
  setPipeWord(q, PIPE_FIRST, first);
  setPipeWord(q, PIPE_COUNT, count);
}

// The target and the limits.
export let nTarget: i32 = 0;
export let targetFd: StaticArray<i32> = new StaticArray<i32>(0);
/** per target fd: the CLASS_INHERITED description it already holds, -1 for none (a file the plan knows nothing of) */
export let targetDesc: StaticArray<i32> = new StaticArray<i32>(0);
export let targetCloexec: StaticArray<bool> = new StaticArray<bool>(0);
/** per description: the lowest target fd holding it (CLASS_INHERITED), else -1 */
export let descSource: StaticArray<i32> = new StaticArray<i32>(0);
export let imageSoft: i32 = 0;
export let imageHard: i32 = 0;
export let targetSoft: i32 = 0;
export let targetHard: i32 = 0;
export let mode: i32 = MODE_FRESH;
export let maxImageFd: i32 = -1;
export let maxTargetFd: i32 = -1;

/** Why decode refused the input (0: it did not). */
export let decodeError: i32 = 0;
export let decodeErrorArg: i32 = 0;

function fail(code: i32, arg: i32): bool {
  decodeError = code;
  decodeErrorArg = arg;
  return false;
}

/**
 * Layout: [version, nFds, nDescs, nPipes, nTarget, imageSoft, imageHard, targetSoft,
 * targetHard, mode], then nFds x [fd, desc, cloexec], nDescs x [class, flags, object, seek, callFlags, flagsAfter],
 * nPipes x [capacity, dataLen, object flags (OBJECT_)], nTarget x [fd, desc (-1: none), cloexec].
 */
export function decode(input: StaticArray<i32>): bool {
  decodeError = 0;
  const len = input.length;
  if (len < 10 || input[0] != INPUT_VERSION) return fail(DECODE_BAD_HEADER, 0);
  nFds = input[1];
  nDescs = input[2];
  nPipes = input[3];
  nTarget = input[4];
  imageSoft = input[5];
  imageHard = input[6];
  targetSoft = input[7];
  targetHard = input[8];
  mode = input[9];
  if (nFds < 0 || nDescs < 0 || nPipes < 0 || nTarget < 0) return fail(DECODE_BAD_HEADER, 1);
  if (i64(10) + i64(nFds) * 3 + i64(nDescs) * 6 + i64(nPipes) * 3 + i64(nTarget) * 3 != i64(len)) return fail(DECODE_BAD_HEADER, 2);
  if (imageSoft < 0 || imageHard < imageSoft || targetSoft < 0 || targetHard < targetSoft) return fail(DECODE_BAD_HEADER, 3);
  if (mode < MODE_FRESH || mode > MODE_INTO_EXACT) return fail(DECODE_BAD_HEADER, 4);

  let p = 10;
  let highest = -1;
  for (let i = 0; i < nFds; i++) {
    const fd = input[p];
    const desc = input[p + 1];
    if (fd < 0) return fail(DECODE_BAD_FD, i);
    if (desc < 0 || desc >= nDescs) return fail(DECODE_BAD_DESC, i);
    if (fd > highest) highest = fd;
    p += 3;
  }
  if (!sortFds(input, highest)) return false;

  descRecords = new StaticArray<i32>(nDescs << DESC_SHIFT);
  for (let d = 0; d < nDescs; d++) {
    const cls = input[p];
    const pipe = input[p + 2];
    if (cls < CLASS_PAIR_END || cls > CLASS_INHERITED) return fail(DECODE_BAD_DESC, d);
    if (onObject(cls) != (pipe >= 0) || pipe >= nPipes) return fail(DECODE_BAD_DESC, d);
    setDescWord(d, DESC_CLASS, cls);
    setDescWord(d, DESC_FLAGS, input[p + 1]);
    setDescWord(d, DESC_PIPE, pipe);
    setDescWord(d, DESC_SEEK, input[p + 3] != 0 ? 1 : 0);
    setDescWord(d, DESC_CALL_FLAGS, input[p + 4]);
    setDescWord(d, DESC_AFTER, input[p + 5]);
    p += 6;
  }

  pipeRecords = new StaticArray<i32>(nPipes << PIPE_SHIFT);
  for (let q = 0; q < nPipes; q++) {
    if (input[p] <= 0 || input[p + 1] < 0 || input[p + 1] > input[p]) return fail(DECODE_BAD_PIPE, q);
    setPipeWord(q, PIPE_CAPACITY, input[p]);
    setPipeWord(q, PIPE_DATA_LEN, input[p + 1]);
    setPipeWord(q, PIPE_BITS, ((input[p + 2] & OBJECT_PACKETS) != 0 ? PIPE_PACKETS : 0) | ((input[p + 2] & OBJECT_SOCKETPAIR) != 0 ? PIPE_SOCKET : 0));
    setPipeWord(q, PIPE_READ, -1);
    setPipeWord(q, PIPE_WRITE, -1);
    p += 3;
  }

  const targetKeys = new StaticArray<i64>(nTarget);
  for (let t = 0; t < nTarget; t++) {
    // A target may hold fds at or above its limits (they were lowered after): legal.
    const fd = input[p + 3 * t];
    if (fd < 0 || fd >= 1 << 30) return fail(DECODE_BAD_TARGET, t);
    targetKeys[t] = (i64(fd) << 32) | i64(t);
  }
  sortI64(targetKeys);
  targetFd = new StaticArray<i32>(nTarget);
  targetDesc = new StaticArray<i32>(nTarget);
  targetCloexec = new StaticArray<bool>(nTarget);
  descSource = new StaticArray<i32>(nDescs);
  for (let d = 0; d < nDescs; d++) descSource[d] = -1;
  maxTargetFd = -1;
  for (let t = 0; t < nTarget; t++) {
    const at = p + 3 * i32(targetKeys[t] & 0xffffffff);
    targetFd[t] = i32(targetKeys[t] >> 32);
    if (t > 0 && targetFd[t] == targetFd[t - 1]) return fail(DECODE_BAD_TARGET, t);
    maxTargetFd = targetFd[t];
    const d = input[at + 1];
    if (d < -1 || d >= nDescs) return fail(DECODE_BAD_INHERITED, t);
    targetDesc[t] = d;
    targetCloexec[t] = input[at + 2] != 0;
    if (d < 0) continue;
    // Inherited fds exist only in a process forked for the restore: one cr may rearrange at will.
    if (descClass(d) != CLASS_INHERITED || mode != MODE_FRESH) return fail(DECODE_BAD_INHERITED, t);
    if (descSource[d] < 0) descSource[d] = targetFd[t];
  }
  for (let d = 0; d < nDescs; d++) if (descClass(d) == CLASS_INHERITED && descSource[d] < 0) return fail(DECODE_BAD_INHERITED, nTarget + d);
  return countByDesc();
}

/**
 * fdNum, fdDesc, fdCloexec sorted by number, and fdAt. Numbers a plan can take (below
 * MAX_FD_NUMBER) are put in order through fdAt itself, one pass over the input and one over the
 * numbers; others by a sort of (fd, input index) keys, which keeps equal numbers adjacent. A
 * duplicate is reported at the lowest number that has one, either way.
 */
function sortFds(input: StaticArray<i32>, highest: i32): bool {
  fdNum = new StaticArray<i32>(nFds);
  fdDesc = new StaticArray<i32>(nFds);
  fdCloexec = new StaticArray<bool>(nFds);
  maxImageFd = highest;
  if (highest >= MAX_FD_NUMBER) {
    fdAt = new StaticArray<i32>(0);
    const keys = new StaticArray<i64>(nFds);
    for (let i = 0; i < nFds; i++) keys[i] = (i64(input[10 + 3 * i]) << 32) | i64(i);
    sortI64(keys);
    for (let i = 0; i < nFds; i++) {
      const fd = i32(keys[i] >> 32);
      const at = i32(keys[i] & 0xffffffff);
      if (i > 0 && fd == fdNum[i - 1]) return fail(DECODE_DUPLICATE_FD, fd);
      fdNum[i] = fd;
      fdDesc[i] = input[10 + 3 * at + 1];
      fdCloexec[i] = input[10 + 3 * at + 2] != 0;
    }
    return true;
  }
  fdAt = new StaticArray<i32>(highest + 1);
  memory.fill(changetype<usize>(fdAt), 0xff, usize(fdAt.length) * 4);
  // Each number's fd goes in as its description and close-on-exec bit (desc << 1 | bit: the input
  // cannot hold 2^30 descriptions), so the sweep below reads nothing but fdAt, in order, instead
  // of each fd's words at random in the input.
  let duplicate = i32.MAX_VALUE;
  for (let i = 0; i < nFds; i++) {
    const at = 10 + 3 * i;
    const fd = unchecked(input[at]);
    if (unchecked(fdAt[fd]) >= 0) duplicate = min(duplicate, fd);
    unchecked((fdAt[fd] = (unchecked(input[at + 1]) << 1) | (unchecked(input[at + 2]) != 0 ? 1 : 0)));
  }
  if (duplicate != i32.MAX_VALUE) return fail(DECODE_DUPLICATE_FD, duplicate);
  // fdAt: each fd -> its index in number order
  let k = 0;
  for (let fd = 0; fd <= highest; fd++) {
    const packed = unchecked(fdAt[fd]);
    if (packed < 0) continue;
    unchecked((fdNum[k] = fd));
    unchecked((fdDesc[k] = packed >> 1));
    unchecked((fdCloexec[k] = (packed & 1) != 0));
    unchecked((fdAt[fd] = k));
    k++;
  }
  return true;
}

/** Classes whose descriptions share an object (a pipe, with its bytes and capacity). */
export function onObject(cls: i32): bool {
  return cls == CLASS_PAIR_END || cls == CLASS_REOPEN || cls == CLASS_RENDEZVOUS;
}

/** per description (the input's numbering): its lowest fd number (countByDesc) */
let lowestFd = new StaticArray<i32>(0);

/**
 * How many fds each description has (each has one at least), and its lowest number. Which they are, in fdsOfDesc, comes
 * once the planner's numbering is known (`renumber`).
 */
function countByDesc(): bool {
  // From the highest fd down, so that the last store of lowestFd is the lowest number.
  // Counted in an array of their own (4 bytes a description), not in the records (32): the fds
  // come in order of number, their descriptions in none.
  lowestFd = new StaticArray<i32>(nDescs);
  const counts = new StaticArray<i32>(nDescs);
  for (let i = nFds - 1; i >= 0; i--) {
    const d = unchecked(fdDesc[i]);
    unchecked((counts[d]++));
    unchecked((lowestFd[d] = fdNum[i]));
  }
  for (let d = 0; d < nDescs; d++) {
    const count = unchecked(counts[d]);
    if (count == 0) return fail(DECODE_DESC_WITHOUT_FD, d);
    setDescWord(d, DESC_COUNT, count);
  }
  return true;
}

// The planner's numbering. The input numbers descriptions and objects in whatever order the
// table lists them, which need not follow their fd numbers (bench/tables.ts pipeTable's do not),
// while the planner visits them in the order of their lowest numbers: each visit was a cache miss
// in every record it read (descriptions, objects, their fds, homes), several a unit at 10^6 fds.
// After pairing, `renumber` puts both in that order; every op and error names the input's index
// again (inputDesc, inputPipe), and wherever the input's order decides the plan, the planner
// follows it (planner.ts: ties between units, fixFlags, burst).
/** per description in the planner's numbering: its index in the input */
let descInput = new StaticArray<i32>(0);
/** per input description: its index in the planner's numbering */
let descOf = new StaticArray<i32>(0);
let pipeInput = new StaticArray<i32>(0);
let pipeOf = new StaticArray<i32>(0);

/** The input's index of description d (-1 for -1: no description). */
// @ts-ignore: decorator
@inline export function inputDesc(d: i32): i32 {
  return d < 0 ? d : unchecked(descInput[d]);
}

/** The planner's index of the input's description i. */
// @ts-ignore: decorator
@inline export function plannerDesc(i: i32): i32 {
  return unchecked(descOf[i]);
}

/** The input's index of object q. */
// @ts-ignore: decorator
@inline export function inputPipe(q: i32): i32 {
  return unchecked(pipeInput[q]);
}

/** The planner's index of the input's object i. */
// @ts-ignore: decorator
@inline export function plannerPipe(i: i32): i32 {
  return unchecked(pipeOf[i]);
}

/**
 * Renumbers descriptions and objects by units (an object with its descriptions, or a description
 * on none) in order of each unit's lowest fd number; an object's descriptions keep the input's
 * order among themselves, so comparing their indices compares the input's. `members`: pairing.ts's
 * descriptions of each object (descsOfPipe), rewritten here in the new numbering along with each
 * object's place in it.
 */
export function renumber(members: StaticArray<i32>): void {
  descInput = new StaticArray<i32>(nDescs);
  descOf = new StaticArray<i32>(nDescs);
  pipeInput = new StaticArray<i32>(nPipes);
  pipeOf = new StaticArray<i32>(nPipes);
  if (maxImageFd >= MAX_FD_NUMBER) {
    // No plan is made (planner.ts refuses such a table): the input's numbering stays.
    for (let d = 0; d < nDescs; d++) unchecked((descInput[d] = descOf[d] = d));
    for (let q = 0; q < nPipes; q++) unchecked((pipeInput[q] = pipeOf[q] = q));
    groupByDesc(null);
    return;
  }
  // Every step below reads in order and scatters its writes, or reads at random where nothing
  // waits on what it reads: a loop that branched on each unit's record, or followed one record
  // to the next, waited for each miss in turn and cost as much as the planning it sped up.
  // Each unit's key, its lowest number, marks where it starts in a table by number.
  const pipeKey = new StaticArray<i32>(nPipes);
  memory.fill(changetype<usize>(pipeKey), 0x7f, usize(nPipes) * 4);
  const unitAt = new StaticArray<i32>(maxImageFd + 1);
  memory.fill(changetype<usize>(unitAt), 0xff, usize(maxImageFd + 1) * 4);
  for (let d = 0; d < nDescs; d++) {
    const q = descWord(d, DESC_PIPE);
    if (q < 0) unchecked((unitAt[lowestFd[d]] = nPipes + d));
    else unchecked((pipeKey[q] = min(pipeKey[q], lowestFd[d])));
  }
  for (let q = 0; q < nPipes; q++) unchecked((unitAt[pipeKey[q]] = q));
  // Units by key: where each object's descriptions start in the new numbering.
  const pipeStart = pipeKey; // its keys are read for the last time above
  let nd = 0;
  let nq = 0;
  for (let n = 0; n <= maxImageFd; n++) {
    const u = unchecked(unitAt[n]);
    if (u < 0) continue;
    if (u >= nPipes) {
      unchecked((descOf[u - nPipes] = nd));
      unchecked((descInput[nd++] = u - nPipes));
      continue;
    }
    unchecked((pipeOf[u] = nq));
    unchecked((pipeInput[nq++] = u));
    unchecked((pipeStart[u] = nd));
    nd += pipeCount(u);
  }
  // An object's descriptions in the input's order from its start.
  for (let q = 0; q < nPipes; q++) {
    const first = pipeFirst(q);
    const start = unchecked(pipeStart[q]);
    for (let k = 0; k < pipeCount(q); k++) {
      const d = unchecked(members[first + k]);
      unchecked((descOf[d] = start + k));
      unchecked((descInput[start + k] = d));
    }
  }

  const oldDescs = descRecords;
  const oldSource = descSource;
  descRecords = new StaticArray<i32>(nDescs << DESC_SHIFT);
  descSource = new StaticArray<i32>(nDescs);
  for (let d = 0; d < nDescs; d++) {
    const from = unchecked(descInput[d]);
    const src = changetype<usize>(oldDescs) + (usize(from) << (DESC_SHIFT + 2));
    const dst = changetype<usize>(descRecords) + (usize(d) << (DESC_SHIFT + 2));
    // The eight words: CLASS and FLAGS, PIPE and SEEK, CALL_FLAGS and AFTER, FIRST and COUNT.
    store<u64>(dst, load<u64>(src));
    store<u64>(dst + 8, load<u64>(src + 8));
    store<u64>(dst + 16, load<u64>(src + 16));
    store<u64>(dst + 24, load<u64>(src + 24));
    const q = descWord(d, DESC_PIPE);
    if (q >= 0) setDescWord(d, DESC_PIPE, unchecked(pipeOf[q]));
    unchecked((descSource[d] = oldSource[from]));
  }
  const oldPipes = pipeRecords;
  pipeRecords = new StaticArray<i32>(nPipes << PIPE_SHIFT);
  let grouped = 0;
  for (let q = 0; q < nPipes; q++) {
    const src = changetype<usize>(oldPipes) + (usize(unchecked(pipeInput[q])) << (PIPE_SHIFT + 2));
    const dst = changetype<usize>(pipeRecords) + (usize(q) << (PIPE_SHIFT + 2));
    // The eight words as four loads and stores, as the descriptions' (a memory.copy call each cost more).
    store<u64>(dst, load<u64>(src));
    store<u64>(dst + 8, load<u64>(src + 8));
    store<u64>(dst + 16, load<u64>(src + 16));
    store<u64>(dst + 24, load<u64>(src + 24));
    const r = pipe2Read(q);
    const w = pipe2Write(q);
    if (r >= 0) setPipe2Read(q, unchecked(descOf[r]));
    if (w >= 0) setPipe2Write(q, unchecked(descOf[w]));
    // Its descriptions are now the consecutive numbers from its start, and the objects' groups
    // follow one another in the objects' new order: `members` is rewritten so (read above for
    // the last time in the input's numbering), with no second counting pass over the objects.
    const start = unchecked(pipeStart[unchecked(pipeInput[q])]);
    const count = pipeCount(q);
    setPipeMembers(q, grouped, count);
    for (let k = 0; k < count; k++) unchecked((members[grouped + k] = start + k));
    grouped += count;
  }
  for (let t = 0; t < nTarget; t++) if (unchecked(targetDesc[t]) >= 0) unchecked((targetDesc[t] = descOf[targetDesc[t]]));
  groupByDesc(descOf);
}

/**
 * Dup detection: the fds of each description, ascending, in fdsOfDesc (stable: fds are visited in
 * order of number), its ranges in the order of the descriptions. `renumbered`: each fd's
 * description is the input's, to be made the planner's (in the same pass: one fewer over the fds).
 */
function groupByDesc(renumbered: StaticArray<i32> | null): void {
  fdsOfDesc = new StaticArray<i32>(nFds);
  /** per description: where its next fd goes (an array of its own, as countByDesc's counts) */
  const next = new StaticArray<i32>(nDescs);
  let first = 0;
  for (let d = 0; d < nDescs; d++) {
    setDescWord(d, DESC_FIRST, first);
    unchecked((next[d] = first));
    first += descWord(d, DESC_COUNT);
  }
  for (let i = 0; i < nFds; i++) {
    let d = unchecked(fdDesc[i]);
    if (renumbered !== null) {
      d = unchecked(renumbered[d]);
      unchecked((fdDesc[i] = d));
    }
    const at = unchecked(next[d]);
    unchecked((next[d] = at + 1));
    unchecked((fdsOfDesc[at] = (unchecked(fdNum[i]) << 1) | (unchecked(fdCloexec[i]) ? 1 : 0)));
  }
}

/** The number of an fdsOfDesc word (exact for any non-negative fd). */
// @ts-ignore: decorator
@inline export function fdWordNumber(word: i32): i32 {
  return i32(u32(word) >> 1);
}

/** The close-on-exec bit of an fdsOfDesc word. */
// @ts-ignore: decorator
@inline export function fdWordCloexec(word: i32): bool {
  return (word & 1) != 0;
}

/**
 * The index in fdNum of fd number `fd`, -1 for none: a table by number when the numbers are few
 * enough to plan at all (below MAX_FD_NUMBER), else a binary search (fdNum is sorted).
 */
export function fdIndex(fd: i32): i32 {
  if (fd < 0) return -1;
  if (fdAt.length > 0) return fd < fdAt.length ? unchecked(fdAt[fd]) : -1;
  let lo = 0;
  let hi = nFds - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = unchecked(fdNum[mid]);
    if (v == fd) return mid;
    if (v < fd) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Below this many keys insertion sort beats the radix sort's passes over its histograms. */
const SMALL_SORT: i32 = 32;
/** the radix sort's second buffer, kept between sorts (it only grows) */
let sortScratch = new StaticArray<i64>(0);
/** one 256-entry histogram per byte of the key */
let byteCounts = new StaticArray<i32>(8 * 256);

/** The sort's buffers, made anew on a fresh heap (index.ts `input`). */
export function newSortBuffers(): void {
  sortScratch = new StaticArray<i64>(0);
  byteCounts = new StaticArray<i32>(8 * 256);
}

/**
 * Sort non-negative keys ascending: an LSD radix sort by bytes, O(n) per byte that differs among
 * the keys (bytes every key shares are skipped: fd numbers and indices use 3 or 4 of the 8).
 * Stable, no comparator closure; small arrays by insertion sort. Sorts the first `count` keys
 * (all when -1).
 */
export function sortI64(a: StaticArray<i64>, count: i32 = -1): void {
  const n = count < 0 ? a.length : count;
  if (n < SMALL_SORT) {
    insertionSort(a, n);
    return;
  }
  let anyOne: u64 = 0;
  let allOne: u64 = u64.MAX_VALUE;
  // Keys often come in order already (units numbered by their lowest fd, table.ts renumber):
  // then there is nothing to do.
  let descents = 0;
  let last: u64 = 0;
  for (let i = 0; i < n; i++) {
    const v = u64(unchecked(a[i]));
    anyOne |= v;
    allOne &= v;
    descents += i32(v < last);
    last = v;
  }
  const varying = anyOne ^ allOne;
  if (varying == 0 || descents == 0) return;
  if (sortScratch.length < n) sortScratch = new StaticArray<i64>(n);
  let from = changetype<usize>(a);
  let to = changetype<usize>(sortScratch);
  const counts = changetype<usize>(byteCounts);
  memory.fill(counts, 0, 8 * 256 * 4);
  for (let i = 0; i < n; i++) {
    const v = u64(unchecked(a[i]));
    for (let b = 0; b < 8; b++) {
      if (((varying >> u64(b << 3)) & 0xff) == 0) continue;
      const at = counts + ((usize(b) << 8) + usize((v >> u64(b << 3)) & 0xff)) * 4;
      store<i32>(at, load<i32>(at) + 1);
    }
  }
  for (let b = 0; b < 8; b++) {
    if (((varying >> u64(b << 3)) & 0xff) == 0) continue;
    // counts -> the first position of each byte value
    const base = counts + (usize(b) << 8) * 4;
    let sum = 0;
    for (let v = 0; v < 256; v++) {
      const c = load<i32>(base + usize(v) * 4);
      store<i32>(base + usize(v) * 4, sum);
      sum += c;
    }
    const shift = u64(b << 3);
    for (let i = 0; i < n; i++) {
      const v = load<u64>(from + usize(i) * 8);
      const slot = base + usize((v >> shift) & 0xff) * 4;
      const pos = load<i32>(slot);
      store<i32>(slot, pos + 1);
      store<u64>(to + usize(pos) * 8, v);
    }
    const t = from;
    from = to;
    to = t;
  }
  if (from != changetype<usize>(a)) memory.copy(changetype<usize>(a), from, usize(n) * 8);
}

function insertionSort(a: StaticArray<i64>, n: i32): void {
  for (let i = 1; i < n; i++) {
    const v = unchecked(a[i]);
    let j = i - 1;
    while (j >= 0 && unchecked(a[j]) > v) {
      unchecked((a[j + 1] = a[j]));
      j--;
    }
    unchecked((a[j + 1] = v));
  }
}
