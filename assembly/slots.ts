// The target's fd table as the plan will have left it so far: which numbers are
// taken and by what. Lets the planner predict the number the kernel will hand out.

import { FdSet } from './fdset';
import { nDescs, nFds, fdNum, fdCloexec } from './table';

/** slot contents besides an image description index (>= 0) */
export const EMPTY: i32 = -1;
/** an fd the target had before the plan and that the plan must not touch before the commit */
export const FOREIGN: i32 = -2;
/** a pipe end or FIFO opening the plan needs only for a while */
export const TEMP: i32 = -3;
/** a dup that holds a gap below the numbers still to fill, so new fds land higher */
export const PLUG: i32 = -4;

export let limit: i32 = 0;
export let occupied: FdSet = new FdSet(0);
/** numbers some image fd will end at: staging must keep off them */
export let reserved: FdSet = new FdSet(0);

/**
 * One word per number below the limit: what sits there, plus one (so that a new array, all zeros,
 * is all EMPTY), above two bits, its close-on-exec now and wanted. The planner visits image numbers
 * in no order a cache can follow, so each visit is a miss: with a word per number, 8 MB at 2^21
 * numbers, each costs less than in the 32 MB a record of four words took (moves.ts keeps the
 * unit's own bookkeeping, which numbers its members sit at and head to, to itself).
 */
let slots = new StaticArray<i32>(0);
const CONTENT_SHIFT: i32 = 2;
/** the fd at this number is close-on-exec now */
const CLOEXEC_NOW: i32 = 1;
/** an image fd is at this number and wants close-on-exec */
const CLOEXEC_WANTED: i32 = 2;

/** per description: F_GETFL as the plan has left it so far */
export let flagsNow: StaticArray<i32> = new StaticArray<i32>(0);
/** per description: the number it is created at, -1 when every one of its numbers is a FOREIGN fd */
export let home: StaticArray<i32> = new StaticArray<i32>(0);
/** per description without a home: the spare number it waits at until the commit */
export let stagedAt: StaticArray<i32> = new StaticArray<i32>(0);

export function initSlots(workingLimit: i32): void {
  limit = workingLimit;
  occupied = new FdSet(workingLimit);
  reserved = new FdSet(workingLimit);
  slots = new StaticArray<i32>(workingLimit);
  // Image numbers are below the working limit (planner.ts `attempt`).
  for (let i = 0; i < nFds; i++) if (unchecked(fdCloexec[i])) unchecked((slots[unchecked(fdNum[i])] = CLOEXEC_WANTED));
  flagsNow = new StaticArray<i32>(nDescs);
  home = new StaticArray<i32>(nDescs);
  stagedAt = new StaticArray<i32>(nDescs);
  for (let d = 0; d < nDescs; d++) {
    home[d] = -1;
    stagedAt[d] = -1;
  }
}

/** What sits at fd: a description index, or EMPTY, FOREIGN, TEMP, PLUG. */
// @ts-ignore: decorator
@inline export function slotDesc(fd: i32): i32 {
  return (unchecked(slots[fd]) >> CONTENT_SHIFT) - 1;
}

/** The fd at this number is close-on-exec now. */
// @ts-ignore: decorator
@inline export function slotCloexec(fd: i32): bool {
  return (unchecked(slots[fd]) & CLOEXEC_NOW) != 0;
}

// @ts-ignore: decorator
@inline export function setSlotCloexec(fd: i32, cloexec: bool): void {
  unchecked((slots[fd] = (slots[fd] & ~CLOEXEC_NOW) | (cloexec ? CLOEXEC_NOW : 0)));
}

export function occupy(fd: i32, content: i32, cloexec: bool): void {
  occupied.add(fd);
  unchecked((slots[fd] = ((content + 1) << CONTENT_SHIFT) | (slots[fd] & CLOEXEC_WANTED) | (cloexec ? CLOEXEC_NOW : 0)));
}

/** The slot word at fd, read only to bring it into the cache ahead of its use (planner.ts `warmDupSlots`). */
// @ts-ignore: decorator
@inline export function slotWord(fd: i32): i32 {
  return unchecked(slots[fd]);
}

export function vacate(fd: i32): void {
  occupied.remove(fd);
  unchecked((slots[fd] = slots[fd] & CLOEXEC_WANTED));
}

/** The number the kernel gives the next new fd, as in fs/file.c: lowest free. -1 when none. */
export function nextFree(): i32 {
  return occupied.lowestFree(0);
}

/** Close-on-exec the image wants at `fd` (false for numbers that are not image fds). */
// @ts-ignore: decorator
@inline export function wantCloexec(fd: i32): bool {
  return fd >= 0 && fd < limit && (unchecked(slots[fd]) & CLOEXEC_WANTED) != 0;
}

/** Where description d can be reached now. */
export function locationOf(d: i32): i32 {
  return home[d] >= 0 ? home[d] : stagedAt[d];
}
