// Placement of one creation unit (a pipe, a FIFO, a file): its descriptions were
// created wherever the kernel put them; move each to its number with dup2 as a
// parallel move. Chains are resolved from their free end; a cycle (the seed's pipe()
// returning the ends "the wrong way round") goes through one trampoline fd.

import { occupied, reserved, home, stagedAt, occupy, vacate, nextFree, wantCloexec } from './slots';
import { emitDup2, emitDupfd, emitClose } from './emit';

let count: i32 = 0;
let memberDesc = new StaticArray<i32>(16);
let memberCur = new StaticArray<i32>(16);
let memberDest = new StaticArray<i32>(16);
let memberDone = new StaticArray<bool>(16);
let touchedCount: i32 = 0;
let touched = new StaticArray<i32>(16);
let stack = new StaticArray<i32>(16);
let stackSize: i32 = 0;

/**
 * For the numbers this unit uses: the member sitting at each now (cur) and the one headed there
 * (dest), in a small table by number (open addressing, linear probing), emptied after each unit.
 * A record beside each number's slot (slots.ts) held them before: 16 MB more to miss in at 2^21
 * numbers, for a handful of numbers a unit.
 */
let ownerFd = new StaticArray<i32>(0);
let ownerCur = new StaticArray<i32>(0);
let ownerDest = new StaticArray<i32>(0);
let ownerMask: i32 = 0;
/** 32 - log2 of the table's size: the hash takes the product's top bits */
let ownerShift: u32 = 32;
/** the table's entries in use, to empty them */
let ownerUsed = new StaticArray<i32>(0);
let ownerUsedCount: i32 = 0;

/** Room for `entries` numbers at most half full; the table only grows within a plan. */
function ownersFor(entries: i32): void {
  let size = 64;
  let shift: u32 = 26;
  while (size < entries * 2) {
    size <<= 1;
    shift--;
  }
  if (size <= ownerFd.length) return;
  ownerShift = shift;
  ownerFd = new StaticArray<i32>(size);
  memory.fill(changetype<usize>(ownerFd), 0xff, usize(size) * 4);
  ownerCur = new StaticArray<i32>(size);
  ownerDest = new StaticArray<i32>(size);
  ownerUsed = new StaticArray<i32>(size);
  ownerMask = size - 1;
}

/** fd's entry, made (both owners -1) when `make` and there is none; -1 for none. */
function ownerAt(fd: i32, make: bool): i32 {
  let at = i32((u32(fd) * 0x9e3779b1) >> ownerShift);
  while (true) {
    const key = unchecked(ownerFd[at]);
    if (key == fd) return at;
    if (key < 0) break;
    at = (at + 1) & ownerMask;
  }
  if (!make) return -1;
  unchecked((ownerFd[at] = fd));
  unchecked((ownerCur[at] = -1));
  unchecked((ownerDest[at] = -1));
  unchecked((ownerUsed[ownerUsedCount++] = at));
  return at;
}

/** The member at fd now, -1 for none. */
function curOwner(fd: i32): i32 {
  const at = ownerAt(fd, false);
  return at < 0 ? -1 : unchecked(ownerCur[at]);
}

function setCurOwner(fd: i32, m: i32): void {
  unchecked((ownerCur[ownerAt(fd, true)] = m));
}

/** The member headed to fd, -1 for none. */
function destOwner(fd: i32): i32 {
  const at = ownerAt(fd, false);
  return at < 0 ? -1 : unchecked(ownerDest[at]);
}

function setDestOwner(fd: i32, m: i32): void {
  unchecked((ownerDest[ownerAt(fd, true)] = m));
}

/** Set when placement needed a free fd number and none was left. */
export let outOfFds: bool = false;

/** The unit's buffers, made anew on a fresh heap (index.ts `input`); they only grow within a plan. */
export function newMoveBuffers(): void {
  memberDesc = new StaticArray<i32>(16);
  memberCur = new StaticArray<i32>(16);
  memberDest = new StaticArray<i32>(16);
  memberDone = new StaticArray<bool>(16);
  touched = new StaticArray<i32>(16);
  stack = new StaticArray<i32>(16);
  ownerFd = new StaticArray<i32>(0);
  ownerUsedCount = 0;
}

export function initMoves(): void {
  outOfFds = false;
  // A unit that ran out of numbers in the last attempt left its entries.
  for (let i = 0; i < ownerUsedCount; i++) unchecked((ownerFd[ownerUsed[i]] = -1));
  ownerUsedCount = 0;
  count = 0;
  touchedCount = 0;
}

function grow(a: StaticArray<i32>, need: i32): StaticArray<i32> {
  if (need <= a.length) return a;
  let size = a.length * 2;
  while (size < need) size *= 2;
  const b = new StaticArray<i32>(size);
  for (let i = 0; i < a.length; i++) unchecked((b[i] = a[i]));
  return b;
}

export function beginUnit(): void {
  count = 0;
  touchedCount = 0;
}

/** A slot the unit used: closed at the end unless some member ends there. */
export function touch(slot: i32): void {
  touched = grow(touched, touchedCount + 1);
  unchecked((touched[touchedCount++] = slot));
}

/** Description d of this unit now sits at `cur`. */
export function addMember(d: i32, cur: i32): void {
  if (count + 1 > memberDesc.length) {
    const size = memberDesc.length * 2;
    memberDesc = grow(memberDesc, size);
    memberCur = grow(memberCur, size);
    memberDest = grow(memberDest, size);
    const done = new StaticArray<bool>(size);
    memberDone = done;
  }
  unchecked((memberDesc[count] = d));
  unchecked((memberCur[count] = cur));
  count++;
  touch(cur);
}

function push(m: i32): void {
  stack = grow(stack, stackSize + 1);
  unchecked((stack[stackSize++] = m));
}

/** Move every member to its number, then close whatever the unit no longer needs. */
export function placeUnit(): bool {
  // Numbers a member sits at, heads to (its home or a spare) or passes through (a trampoline).
  ownersFor(3 * count + 1);
  for (let m = 0; m < count; m++) {
    setCurOwner(memberCur[m], m);
    memberDest[m] = home[memberDesc[m]];
    if (memberDest[m] >= 0) setDestOwner(memberDest[m], m);
  }
  for (let m = 0; m < count; m++) {
    const d = memberDesc[m];
    const cur = memberCur[m];
    if (memberDest[m] < 0) {
      // Staged until the commit: anywhere no image fd will need. In a full table
      // that may be where a temporary end sits, which can go now.
      let spare = reserved.has(cur) ? occupied.lowestFree(0, reserved) : cur;
      if (spare < 0) spare = closeSpareTemp(true);
      if (spare < 0) return noFds();
      reserved.add(spare);
      stagedAt[d] = spare;
      memberDest[m] = spare;
      setDestOwner(spare, m);
    }
    memberDone[m] = cur == memberDest[m];
  }
  stackSize = 0;
  for (let m = count - 1; m >= 0; m--) if (!memberDone[m] && curOwner(memberDest[m]) < 0) push(m);

  let nextPending = 0;
  while (true) {
    while (stackSize > 0) {
      const m = stack[--stackSize];
      if (memberDone[m]) continue;
      const from = memberCur[m];
      const to = memberDest[m];
      const cloexec = home[memberDesc[m]] >= 0 && wantCloexec(to);
      emitDup2(from, to, cloexec);
      occupy(to, memberDesc[m], cloexec);
      memberDone[m] = true;
      setCurOwner(from, -1);
      const waiting = destOwner(from);
      if (waiting >= 0 && !memberDone[waiting]) push(waiting);
    }
    while (nextPending < count && memberDone[nextPending]) nextPending++;
    if (nextPending >= count) break;

    // Every pending member waits on another: a cycle. Lift one member out of it.
    const m = nextPending;
    let t = nextFree();
    if (t < 0) {
      t = closeSpareTemp(false);
      if (t < 0) return noFds();
    }
    const from = memberCur[m];
    emitDupfd(from, t, false, t);
    occupy(t, memberDesc[m], false);
    touch(t);
    setCurOwner(from, -1);
    memberCur[m] = t;
    setCurOwner(t, m);
    const waiting = destOwner(from);
    if (waiting >= 0 && !memberDone[waiting]) push(waiting);
  }

  for (let i = 0; i < touchedCount; i++) {
    const s = touched[i];
    if (occupied.has(s) && destOwner(s) < 0) {
      emitClose(s);
      vacate(s);
    }
  }
  for (let i = 0; i < ownerUsedCount; i++) unchecked((ownerFd[ownerUsed[i]] = -1));
  ownerUsedCount = 0;
  return true;
}

/**
 * A temporary end or a stale copy that no member sits at or moves onto can go early,
 * freeing a number (one no image fd wants, if `unreserved`) when the table is full.
 */
function closeSpareTemp(unreserved: bool): i32 {
  for (let i = 0; i < touchedCount; i++) {
    const s = touched[i];
    if (occupied.has(s) && destOwner(s) < 0 && curOwner(s) < 0 && !(unreserved && reserved.has(s))) {
      emitClose(s);
      vacate(s);
      return s;
    }
  }
  return -1;
}

function noFds(): bool {
  outOfFds = true;
  return false;
}
