// The plan: which numbers each description is created at, in what order, and how
// the target's own fds are cleared, so that replay ends with exactly the image's table.
//
// Phases: (fresh targets) clear colliding fds; create each unit (a pipe, a FIFO, a
// description alone) in order of its lowest number and move its descriptions into place; fill in
// the dups; fix status flags and close-on-exec; commit; (live targets) dup into the
// numbers the target's own fds held and drop the staging; set RLIMIT_NOFILE.

import {
  nFds, nDescs, nPipes, nTarget, fdNum, fdDesc, fdCloexec, descClass, descFlags, descSeek,
  descFirst, descCount, fdsOfDesc, descPipe, pipeCapacity, pipeDataLen, pipePackets, targetFd,
  imageSoft, imageHard, targetSoft, targetHard, mode, maxImageFd, sortI64, fdIndex, descCallFlags,
  descAfter, targetDesc, targetCloexec, descSource, pipeIsSocket, MAX_FD_NUMBER, fdWordNumber, fdWordCloexec,
  pipeFirst, pipeCount, pipeIsFifo, pipe2Read, pipe2Write, inputDesc, inputPipe, plannerDesc, plannerPipe,
} from './table';
import {
  MODE_FRESH, MODE_INTO_EXACT, O_ACCMODE, O_RDONLY, O_WRONLY, O_RDWR, O_NONBLOCK, O_DIRECT, O_CLOEXEC,
  SETFL_MASK, DEFAULT_PIPE_CAPACITY, CLASS_SINGLE, CLASS_INHERITED, PLAN_OK, PLAN_FD_ABOVE_LIMIT, PLAN_NO_FREE_FD,
  PLAN_FD_TOO_HIGH,
} from './abi';
import { descsOfPipe } from './pairing';
import {
  initSlots, occupy, vacate, slotWord, nextFree, wantCloexec, locationOf, occupied, reserved, slotDesc,
  slotCloexec, setSlotCloexec, flagsNow, home, stagedAt, FOREIGN, TEMP, PLUG, limit as slotLimit,
} from './slots';
import { FdSet } from './fdset';
import { initMoves, beginUnit, addMember, touch, placeUnit } from './moves';
import {
  emitPipe2, emitOpen, emitDup2, emitClose, emitSetfl, emitSetfd, emitSetPipeSize, emitLseek,
  emitWrite, emitPrlimit, emitCommit, opCount, resetEmit, emitDupfd, emitCreate, emitSocketpair,
} from './emit';


export let planErrorArg: i32 = 0;
export let planErrorArg2: i32 = 0;
/** op index of the commit marker within the ops emitted here */
export let commitAt: i32 = 0;
/** the hard limit could not be restored: the image's is above the target's */
export let hardLimitLowered: bool = false;

function error(code: i32, arg: i32, arg2: i32): i32 {
  planErrorArg = arg;
  planErrorArg2 = arg2;
  return code;
}

/** Plan a restore of the decoded, paired input. Returns PLAN_OK or an error code. */
export function planRestore(): i32 {
  hardLimitLowered = false;
  if (maxImageFd >= targetHard) return error(PLAN_FD_ABOVE_LIMIT, maxImageFd, targetHard);
  // The plan tracks every number up to the highest in play: memory grows with it.
  if (maxImageFd >= MAX_FD_NUMBER) return error(PLAN_FD_TOO_HIGH, maxImageFd, MAX_FD_NUMBER - 1);

  // Ascending order lands most descriptions in place. A table with no number to
  // spare needs more care: a pipe whose read end sits above its write end can only be
  // swapped while some number is free, a description staged away from a live target
  // needs a spare number, and a temporary end needs a number that is free at that
  // moment (a dup's number is, until the dup is made). Later attempts take those first.
  const orders: StaticArray<i32> = [0, REVERSED_FIRST, REVERSED_FIRST | HOMELESS_FIRST, REVERSED_FIRST | HOMELESS_FIRST | DUPS_LAST];
  let code = PLAN_OK;
  for (let i = 0; i < orders.length; i++) {
    code = attempt(orders[i]);
    if (code != PLAN_NO_FREE_FD) break;
  }
  return code;
}

const REVERSED_FIRST: i32 = 1;
const HOMELESS_FIRST: i32 = 2;
const DUPS_LAST: i32 = 4;

function attempt(order: i32): i32 {
  resetEmit();
  // Numbers above every fd in play, one per description plus a few for temporaries,
  // are all any plan needs; the kernel's limit may be far higher.
  // Target fds at or above the working limit never meet an image fd (nor a number the
  // plan allocates): they are only kept or closed, so they need no slot.
  const highest = max(maxImageFd, highestTargetFdBelow(min(targetHard, MAX_FD_NUMBER)));
  const working = i32(min<i64>(min<i64>(i64(targetHard), i64(MAX_FD_NUMBER)), i64(highest) + 1 + i64(nDescs) + 8));
  initSlots(working);
  initMoves();
  inPlace = new StaticArray<i32>(nDescs);
  for (let d = 0; d < nDescs; d++) inPlace[d] = -1;
  for (let i = 0; i < nFds; i++) reserved.add(fdNum[i]);

  if (mode == MODE_FRESH) {
    emitCommit();
    commitAt = 0;
    takeOverFreshTarget();
  } else {
    for (let t = 0; t < nTarget; t++) if (targetFd[t] < slotLimit) occupy(targetFd[t], FOREIGN, false);
  }
  for (let i = 0; i < nFds; i++) if (slotDesc(fdNum[i]) == FOREIGN) reserved.remove(fdNum[i]);
  chooseHomes();
  for (let d = 0; d < nDescs; d++) if (inPlace[d] >= 0) home[d] = inPlace[d];
  choosePlugs();

  const units = unitOrder(order);
  for (let u = 0; u < units.length; u++) {
    if ((u & (WARM_UNITS - 1)) == 0) warmDupSlots(units, u + WARM_UNITS, u + 2 * WARM_UNITS);
    const unit = i32(units[u] & 0x7fffffff);
    plugGaps();
    beginUnit();
    const ok = unit < nPipes ? (pipeIsFifo(unit) ? createFifo(unit) : pipeIsSocket(unit) ? createSocketPair(unit) : createPipe(unit)) : createAlone(unit - nPipes);
    if (!ok || !placeUnit()) return error(PLAN_NO_FREE_FD, unit < nPipes ? 0 : 1, unit < nPipes ? inputPipe(unit) : inputDesc(unit - nPipes));
    if ((order & DUPS_LAST) == 0) fillDups(unit);
  }
  if ((order & DUPS_LAST) != 0) for (let u = 0; u < units.length; u++) fillDups(i32(units[u] & 0x7fffffff));
  for (let i = 0; i < plugsPlaced; i++) {
    emitClose(plugs[i]);
    vacate(plugs[i]);
  }
  fixFlags();
  if (mode != MODE_FRESH) {
    commitAt = opCount();
    emitCommit();
  }
  burst();
  return PLAN_OK;
}

/** The gaps to plug, ascending; the first plugsPlaced of them are plugged. */
let plugs = new StaticArray<i32>(0);
let plugsNext: i32 = 0;
/** plugs[0 .. plugsPlaced) are open (placed plugs are compacted to the front) */
let plugsPlaced: i32 = 0;

/**
 * A new fd lands at the lowest free number; one that lands in a gap (a number no
 * image fd wants) costs a dup2 and a close to move. Plugging a gap also costs two
 * ops (F_DUPFD, close) but serves every later creation. Plug the k lowest gaps for
 * the k that minimises 2k + 2 * (descriptions whose home lies above gap k+1), while
 * leaving numbers to spare for temporaries.
 *
 * Found by sweeps of the sets a word (64 numbers) at a time: gaps are the numbers in neither
 * `occupied` nor `reserved`, and the homes below a gap are counted in a set of homes (each a
 * number of its own description's, so no two alike) instead of a sorted list of them.
 */
function choosePlugs(): void {
  plugsPlaced = 0;
  plugsNext = 0;
  const homes = new FdSet(occupied.limit);
  let homesCount = 0;
  let highestHome = -1;
  for (let d = 0; d < nDescs; d++) {
    const h = unchecked(home[d]);
    if (h < 0) continue;
    homes.add(h);
    homesCount++;
    if (h > highestHome) highestHome = h;
  }
  const occ = occupied.words;
  const res = reserved.words;
  const below = homes.words;
  // Gaps below highestHome (the last word's bits from highestHome up masked off).
  const nWords = (highestHome + 63) >> 6;
  let gaps: i64 = 0;
  for (let w = 0; w < nWords; w++) gaps += i64(popcnt(gapBits(occ, res, w, highestHome)));
  const spare = i64(occupied.limit) - i64(nFds) - i64(nTarget);
  const most = i32(min<i64>(gaps, max<i64>(0, spare - 8)));
  if (most == 0) {
    plugs = new StaticArray<i32>(0);
    return;
  }
  // Plugging k gaps leaves gap k (0-based) the first open one: homes at or above it cost.
  let best = 0;
  let bestCost: i64 = i64.MAX_VALUE;
  let homesBefore = 0;
  let k = 0;
  for (let w = 0; w < nWords && k < most; w++) {
    let bits = gapBits(occ, res, w, highestHome);
    const homeBits = unchecked(below[w]);
    while (bits != 0 && k < most) {
      const bit = ctz(bits);
      const under = homesBefore + i32(popcnt(homeBits & ((u64(1) << bit) - 1)));
      const cost = 2 * i64(k) + 2 * i64(homesCount - under);
      if (cost < bestCost) {
        bestCost = cost;
        best = k;
      }
      bits &= bits - 1;
      k++;
    }
    homesBefore += i32(popcnt(homeBits));
  }
  // All `most` plugged: the first open number is highestHome itself, the one home not below it.
  if (2 * i64(most) + 2 < bestCost) best = most;
  plugs = new StaticArray<i32>(best);
  k = 0;
  for (let w = 0; w < nWords && k < best; w++) {
    let bits = gapBits(occ, res, w, highestHome);
    while (bits != 0 && k < best) {
      unchecked((plugs[k++] = (w << 6) + i32(ctz(bits))));
      bits &= bits - 1;
    }
  }
}

/** Word w of the numbers below `end` in neither set. */
// @ts-ignore: decorator
@inline function gapBits(occ: StaticArray<u64>, res: StaticArray<u64>, w: i32, end: i32): u64 {
  let bits = ~(unchecked(occ[w]) | unchecked(res[w]));
  if ((w + 1) << 6 > end) bits &= (u64(1) << u64(end & 63)) - 1;
  return bits;
}

/** Before a unit is created: plug the chosen gaps it would otherwise land in. */
function plugGaps(): void {
  while (plugsNext < plugs.length) {
    const g = plugs[plugsNext];
    if (occupied.has(g)) {
      plugsNext++; // a staging copy took it: no plug needed
      continue;
    }
    if (nextFree() != g) return;
    // Everything below g is open, so fd 0 is, unless g is 0 itself.
    const from = g > 0 ? 0 : occupied.lowestUsed();
    if (from < 0) return;
    emitDupfd(from, g, false, g);
    occupy(g, PLUG, false);
    plugs[plugsPlaced++] = g;
    plugsNext++;
  }
}

function highestTargetFdBelow(limit: i32): i32 {
  for (let t = nTarget - 1; t >= 0; t--) if (targetFd[t] < limit) return targetFd[t];
  return -1;
}

/** per description: the lowest of its own numbers an inherited fd already holds it at, else -1 */
let inPlace = new StaticArray<i32>(0);

/**
 * A process cr started has nothing to keep. Its fds at image numbers are closed now;
 * the others stay as plugs (new fds land above them, nearer their numbers) and are
 * closed at the end, unless the table is so full that every number counts.
 * An fd it inherited on a description of the image (CLASS_INHERITED) stays where it is when
 * that is one of the description's numbers; elsewhere it stays open until the description
 * has been dup'd from it, and goes like any other target fd.
 */
function takeOverFreshTarget(): void {
  let inUse: i64 = i64(nFds);
  for (let t = 0; t < nTarget; t++) if (fdIndex(targetFd[t]) < 0) inUse++;
  const tight = i64(targetHard) - inUse < 4;
  for (let t = 0; t < nTarget; t++) {
    const fd = targetFd[t];
    const d = targetDesc[t];
    if (d >= 0) {
      const i = fdIndex(fd);
      if (i >= 0 && fdDesc[i] == d) {
        occupy(fd, d, targetCloexec[t]);
        if (inPlace[d] < 0) inPlace[d] = fd;
      } else {
        occupy(fd, FOREIGN, false);
      }
      continue;
    }
    if (tight || fdIndex(fd) >= 0 || fd >= slotLimit) emitClose(fd);
    else occupy(fd, FOREIGN, false);
  }
}

/** Each description is created at its lowest number the target does not hold. */
function chooseHomes(): void {
  for (let d = 0; d < nDescs; d++) {
    for (let k = 0; k < descCount(d); k++) {
      const fd = fdWordNumber(fdsOfDesc[descFirst(d) + k]);
      if (slotDesc(fd) != FOREIGN) {
        home[d] = fd;
        break;
      }
    }
  }
}

/**
 * Units in order of their lowest home: new fds land at the lowest free number, so
 * creating low units first lands most descriptions on their own numbers. `order` may
 * put units with no home (all numbers held by a live target) and reversed pipes first.
 * Keys pack (priority, anchor, the input's unit, whose order breaks ties: table.ts renumber):
 * anchors are fd numbers, below 2^30. Returns the planner's units in that order.
 */
function unitOrder(order: i32): StaticArray<i64> {
  const homeless = (1 << 30) - 1;
  const nUnits = nPipes + nDescs;
  const anchor = new StaticArray<i32>(nUnits);
  for (let u = 0; u < nUnits; u++) anchor[u] = homeless;
  let count = nPipes;
  for (let d = 0; d < nDescs; d++) {
    const u = descPipe(d) >= 0 ? descPipe(d) : nPipes + d;
    if (descPipe(d) < 0) count++;
    if (home[d] >= 0 && home[d] < anchor[u]) anchor[u] = home[d];
  }
  const keys = new StaticArray<i64>(count);
  let k = 0;
  for (let u = 0; u < nUnits; u++) {
    if (u >= nPipes && descPipe(u - nPipes) >= 0) continue;
    let priority = 2;
    if ((order & HOMELESS_FIRST) != 0 && anchor[u] == homeless) priority = 0;
    else if ((order & REVERSED_FIRST) != 0 && u < nPipes && isReversed(u)) priority = 1;
    const input = u < nPipes ? inputPipe(u) : nPipes + inputDesc(u - nPipes);
    keys[k++] = (i64(priority) << 61) | (i64(anchor[u]) << 31) | i64(input);
  }
  sortI64(keys);
  for (let i = 0; i < count; i++) {
    const input = i32(keys[i] & 0x7fffffff);
    keys[i] = input < nPipes ? plannerPipe(input) : nPipes + plannerDesc(input - nPipes);
  }
  return keys;
}

/** pipe2 will put the read end below the write end: this pipe wants the opposite. */
function isReversed(q: i32): bool {
  const r = pipe2Read(q);
  const w = pipe2Write(q);
  return !pipeIsFifo(q) && !pipeIsSocket(q) && r >= 0 && w >= 0 && home[r] >= 0 && home[w] >= 0 && home[r] > home[w];
}

/** membersByHome's keys: one buffer for every unit (a unit's members are used before the next unit's) */
let memberKeys = new StaticArray<i64>(16);

/** The planner's buffers kept from unit to unit, made anew on a fresh heap (index.ts `input`). */
export function newPlannerBuffers(): void {
  memberKeys = new StaticArray<i64>(16);
}

/** The unit's descriptions in order of their homes (homeless ones last): memberKeys[0 .. returned count). */
function membersByHome(q: i32, readersFirst: bool): i32 {
  const n = pipeCount(q);
  if (memberKeys.length < n) memberKeys = new StaticArray<i64>(max(n, memberKeys.length * 2));
  for (let i = 0; i < n; i++) {
    const d = descsOfPipe[pipeFirst(q) + i];
    const writeOnly = (descFlags(d) & O_ACCMODE) == O_WRONLY;
    const h = home[d] >= 0 ? i64(home[d]) : i64(i32.MAX_VALUE);
    memberKeys[i] = (((readersFirst && writeOnly ? i64(1) : i64(0)) << 62) | (h << 31)) | i64(d);
  }
  sortI64(memberKeys, n);
  return n;
}

function keyDesc(key: i64): i32 {
  return i32(key & 0x7fffffff);
}

function newFd(): i32 {
  return nextFree();
}

function createPipe(q: i32): bool {
  const r0 = pipe2Read(q);
  const w0 = pipe2Write(q);
  const r = newFd();
  if (r < 0) return false;
  occupied.add(r);
  const w = nextFree();
  occupied.remove(r);
  if (w < 0) return false;
  const first = r0 >= 0 ? r0 : w0;
  const cloexec = first >= 0 && home[first] >= 0 && wantCloexec(home[first]);
  emitPipe2(cloexec ? O_CLOEXEC : 0, r, w, inputPipe(q));
  takePipe2End(r, r0, O_RDONLY, cloexec);
  takePipe2End(w, w0, O_WRONLY, cloexec);
  const members = membersByHome(q, false);
  for (let i = 0; i < members; i++) {
    const d = keyDesc(memberKeys[i]);
    if (d == r0 || d == w0) continue;
    // Another description on this pipe: open /proc/self/fd/<r> with its own access mode.
    const fd = newFd();
    if (fd < 0) return false;
    const flags = openFlags(d);
    emitOpen(inputDesc(d), -1, r, flags, fd);
    occupy(fd, d, (flags & O_CLOEXEC) != 0);
    flagsNow[d] = descAfter(d);
    addMember(d, fd);
  }
  fillPipe(q, r, w, w0);
  return true;
}

/**
 * A socket pair: one socketpair() makes both ends, alike, so the end with the lower home takes
 * the lower fd (never reversed); an end the image lacks (its peer closed) is a temporary, closed
 * once placed. Its kind writes each end's queued bytes through the other (the op itself).
 */
function createSocketPair(q: i32): bool {
  let a = pipe2Read(q);
  let b = pipe2Write(q);
  if (a >= 0 && b >= 0 && home[b] >= 0 && (home[a] < 0 || home[b] < home[a])) {
    const t = a;
    a = b;
    b = t;
  }
  const fd0 = newFd();
  if (fd0 < 0) return false;
  occupied.add(fd0);
  const fd1 = nextFree();
  occupied.remove(fd0);
  if (fd1 < 0) return false;
  const first = a >= 0 ? a : b;
  const cloexec = first >= 0 && home[first] >= 0 && wantCloexec(home[first]);
  emitSocketpair(cloexec, fd0, fd1, inputDesc(a), inputDesc(b));
  takePipe2End(fd0, a, O_RDWR, cloexec);
  takePipe2End(fd1, b, O_RDWR, cloexec);
  return true;
}

/** A pipe2() end landed at fd: the image's description d, or a temporary when d is -1. */
function takePipe2End(fd: i32, d: i32, access: i32, cloexec: bool): void {
  if (d < 0) {
    occupy(fd, TEMP, cloexec);
    touch(fd);
    return;
  }
  occupy(fd, d, cloexec);
  flagsNow[d] = access;
  addMember(d, fd);
}

function createFifo(q: i32): bool {
  // Readers first: opening a FIFO for writing needs a reader (it blocks, or fails
  // with ENXIO under O_NONBLOCK), so a FIFO with none gets a temporary one.
  const members = membersByHome(q, true);
  const pathDesc = keyDesc(memberKeys[0]);
  if ((descFlags(pathDesc) & O_ACCMODE) == O_WRONLY && openTemp(pathDesc, O_RDONLY | O_NONBLOCK) < 0) return false;
  let anyEnd = -1;
  let writer = -1;
  let writerDesc = -1;
  for (let i = 0; i < members; i++) {
    const d = keyDesc(memberKeys[i]);
    const fd = newFd();
    if (fd < 0) return false;
    if (anyEnd < 0) anyEnd = fd;
    const flags = openFlags(d);
    emitOpen(inputDesc(d), inputDesc(d), -1, flags, fd);
    occupy(fd, d, (flags & O_CLOEXEC) != 0);
    flagsNow[d] = descAfter(d);
    addMember(d, fd);
    if (writer < 0 && (descFlags(d) & O_ACCMODE) != O_RDONLY) {
      writer = fd;
      writerDesc = d;
    }
  }
  if (writer < 0 && pipeDataLen(q) > 0) {
    writer = openTemp(pathDesc, O_WRONLY | O_NONBLOCK);
    if (writer < 0) return false;
  }
  fillPipe(q, anyEnd, writer, writerDesc);
  return true;
}

function openTemp(pathDesc: i32, flags: i32): i32 {
  const fd = newFd();
  if (fd < 0) return -1;
  emitOpen(-1, inputDesc(pathDesc), -1, flags, fd);
  occupy(fd, TEMP, false);
  touch(fd);
  return fd;
}

/** Capacity first, then the bytes, once per pipe, through `writer` (the pipe2 end or a temporary). */
function fillPipe(q: i32, anyEnd: i32, writer: i32, writerDesc: i32): void {
  if (pipeCapacity(q) != DEFAULT_PIPE_CAPACITY) emitSetPipeSize(anyEnd, pipeCapacity(q));
  if (pipeDataLen(q) == 0) return;
  if (pipePackets(q)) {
    // Packet boundaries survive only if each packet is written in packet mode.
    const now = writerDesc >= 0 ? flagsNow[writerDesc] : O_WRONLY;
    emitSetfl(writer, now | O_DIRECT);
    if (writerDesc >= 0) flagsNow[writerDesc] = now | O_DIRECT;
  }
  emitWrite(writer, inputPipe(q), pipeDataLen(q));
}

/**
 * A description on no shared object: opened by its path, made by its kind's one call, or
 * dup'd from the fd it was inherited at (kept there when that is its home).
 */
function createAlone(d: i32): bool {
  if (inPlace[d] >= 0) {
    flagsNow[d] = descFlags(d);
    return true;
  }
  const fd = newFd();
  if (fd < 0) return false;
  const cloexec = home[d] >= 0 && wantCloexec(home[d]);
  if (descClass(d) == CLASS_INHERITED) {
    emitDupfd(descSource[d], 0, cloexec, fd);
    occupy(fd, d, cloexec);
    flagsNow[d] = descFlags(d);
    addMember(d, fd);
    return true;
  }
  if (descClass(d) == CLASS_SINGLE) emitCreate(inputDesc(d), cloexec, fd);
  else emitOpen(inputDesc(d), inputDesc(d), -1, openFlags(d), fd);
  occupy(fd, d, cloexec);
  flagsNow[d] = descAfter(d);
  if (descSeek(d)) emitLseek(fd, inputDesc(d));
  addMember(d, fd);
  return true;
}

/**
 * open() flags for description d: what its kind says the call takes (src/kinds/), plus
 * O_CLOEXEC as its home wants.
 */
function openFlags(d: i32): i32 {
  return home[d] >= 0 && wantCloexec(home[d]) ? descCallFlags(d) | O_CLOEXEC : descCallFlags(d);
}

/** The other numbers of the unit's descriptions, each a dup of its home. */
function fillDups(unit: i32): void {
  if (unit >= nPipes) {
    fillDupsOf(unit - nPipes);
    return;
  }
  for (let i = 0; i < pipeCount(unit); i++) fillDupsOf(descsOfPipe[pipeFirst(unit) + i]);
}

/** Units whose numbers warmDupSlots reads ahead at a time. */
const WARM_UNITS: i32 = 16;
/** What warmDupSlots read, kept so that the reads are made. */
let warmed: i32 = 0;

/**
 * Reads the slot of every number of the units units[from .. to) ahead of their dups: each is a
 * cache miss at 10^6 fds (numbers in no order), and fillDupsOf, which reads and writes them
 * between the ops it emits, took them one at a time; read here in a tight loop, many are in
 * flight at once.
 */
function warmDupSlots(units: StaticArray<i64>, from: i32, to: i32): void {
  let sum = warmed;
  const end = min(to, units.length);
  for (let u = from; u < end; u++) {
    const unit = i32(unchecked(units[u]) & 0x7fffffff);
    if (unit >= nPipes) {
      sum ^= warmDescSlots(unit - nPipes);
      continue;
    }
    const first = pipeFirst(unit);
    for (let i = 0; i < pipeCount(unit); i++) sum ^= warmDescSlots(unchecked(descsOfPipe[first + i]));
  }
  warmed = sum;
}

// @ts-ignore: decorator
@inline function warmDescSlots(d: i32): i32 {
  let sum = 0;
  const first = descFirst(d);
  for (let k = 0; k < descCount(d); k++) sum ^= slotWord(fdWordNumber(unchecked(fdsOfDesc[first + k])));
  return sum;
}

function fillDupsOf(d: i32): void {
  const h = home[d];
  if (h < 0) return;
  for (let k = 0; k < descCount(d); k++) {
    const word = fdsOfDesc[descFirst(d) + k];
    const fd = fdWordNumber(word);
    const content = slotDesc(fd);
    if (fd == h || content == FOREIGN || content == d) continue;
    const cloexec = fdWordCloexec(word);
    emitDup2(h, fd, cloexec);
    occupy(fd, d, cloexec);
  }
}

/** Status flags after the data (O_NONBLOCK, O_DIRECT...), then close-on-exec per fd. */
function fixFlags(): void {
  const change = inInputOrder(descsToSetfl());
  for (let i = 0; i < change.length; i++) {
    const d = change[i];
    emitSetfl(locationOf(d), descFlags(d));
    flagsNow[d] = descFlags(d);
  }
  for (let i = 0; i < nFds; i++) {
    const fd = fdNum[i];
    if (slotDesc(fd) == FOREIGN || slotCloexec(fd) == fdCloexec[i]) continue;
    emitSetfd(fd, fdCloexec[i]);
    setSlotCloexec(fd, fdCloexec[i]);
  }
}

/** The descriptions whose status flags differ from the image's (in the planner's order). */
function descsToSetfl(): StaticArray<i32> {
  let n = 0;
  for (let d = 0; d < nDescs; d++) if ((flagsNow[d] & SETFL_MASK) != (descFlags(d) & SETFL_MASK)) n++;
  const out = new StaticArray<i32>(n);
  n = 0;
  for (let d = 0; d < nDescs; d++) if ((flagsNow[d] & SETFL_MASK) != (descFlags(d) & SETFL_MASK)) out[n++] = d;
  return out;
}

/** The descriptions staged away from their numbers until the commit (in the planner's order). */
function stagedDescs(): StaticArray<i32> {
  let n = 0;
  for (let d = 0; d < nDescs; d++) if (stagedAt[d] >= 0) n++;
  const out = new StaticArray<i32>(n);
  n = 0;
  for (let d = 0; d < nDescs; d++) if (stagedAt[d] >= 0) out[n++] = d;
  return out;
}

/** Descriptions put in the input's order (table.ts renumber), in place: the ops they emit follow it. */
function inInputOrder(ds: StaticArray<i32>): StaticArray<i32> {
  const keys = new StaticArray<i64>(ds.length);
  for (let i = 0; i < ds.length; i++) keys[i] = i64(inputDesc(ds[i]));
  sortI64(keys);
  for (let i = 0; i < ds.length; i++) ds[i] = plannerDesc(i32(keys[i]));
  return ds;
}

/**
 * After the commit: the image numbers a live target held get their descriptions
 * (dup2 replaces the old fd in one step), staging copies go, the target's own fds go
 * where the mode says, and RLIMIT_NOFILE becomes the image's.
 */
function burst(): void {
  for (let i = 0; i < nFds; i++) {
    const fd = fdNum[i];
    if (slotDesc(fd) != FOREIGN) continue;
    const d = fdDesc[i];
    emitDup2(locationOf(d), fd, fdCloexec[i]);
    occupy(fd, d, fdCloexec[i]);
  }
  const staged = inInputOrder(stagedDescs());
  for (let i = 0; i < staged.length; i++) {
    const at = stagedAt[staged[i]];
    emitClose(at);
    vacate(at);
  }
  if (mode == MODE_FRESH || mode == MODE_INTO_EXACT) {
    for (let t = 0; t < nTarget; t++) {
      const fd = targetFd[t];
      if (fd >= slotLimit) {
        // A fresh target's were closed at the takeover already.
        if (mode != MODE_FRESH) emitClose(fd);
        continue;
      }
      if (fdIndex(fd) >= 0 || slotDesc(fd) != FOREIGN) continue;
      emitClose(fd);
      vacate(fd);
    }
  }
}

/**
 * RLIMIT_NOFILE becomes the image's, within the target's hard limit (raising it needs
 * CAP_SYS_RESOURCE). `raisedSoft`: the plan began by lifting the soft limit to the hard one.
 */
export function restoreLimit(raisedSoft: bool): void {
  const hard = min(imageHard, targetHard);
  const soft = min(imageSoft, hard);
  hardLimitLowered = imageHard > targetHard;
  const softNow = raisedSoft ? targetHard : targetSoft;
  if (soft != softNow || hard != targetHard) emitPrlimit(soft, hard);
}
