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
 * One record of four words per number below the limit: what sits there, the unit member now
 * there and the one headed there (moves.ts), and its close-on-exec bits. The planner visits image
 * numbers in no order a cache can follow; with a separate array per field each visit cost a miss
 * per field (the planner's time grew 23x for 10x the fds), with one record it costs one.
 */
let slots = new StaticArray<i32>(0);
const CONTENT: i32 = 0;
const DEST_OWNER: i32 = 1;
const CUR_OWNER: i32 = 2;
const BITS: i32 = 3;
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
  slots = new StaticArray<i32>(workingLimit << 2);
  for (let i = 0; i < workingLimit; i++) {
    const at = i << 2;
    unchecked((slots[at + CONTENT] = EMPTY));
    unchecked((slots[at + DEST_OWNER] = -1));
    unchecked((slots[at + CUR_OWNER] = -1));
  }
  // Image numbers are below the working limit (planner.ts `attempt`).
  for (let i = 0; i < nFds; i++) if (unchecked(fdCloexec[i])) unchecked((slots[(unchecked(fdNum[i]) << 2) + BITS] = CLOEXEC_WANTED));
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
  return unchecked(slots[fd << 2]);
}

/** The fd at this number is close-on-exec now. */
// @ts-ignore: decorator
@inline export function slotCloexec(fd: i32): bool {
  return (unchecked(slots[(fd << 2) + BITS]) & CLOEXEC_NOW) != 0;
}

// @ts-ignore: decorator
@inline export function setSlotCloexec(fd: i32, cloexec: bool): void {
  const at = (fd << 2) + BITS;
  unchecked((slots[at] = (slots[at] & ~CLOEXEC_NOW) | (cloexec ? CLOEXEC_NOW : 0)));
}

/** The unit member (moves.ts) headed to fd, -1 for none. */
// @ts-ignore: decorator
@inline export function destOwner(fd: i32): i32 {
  return unchecked(slots[(fd << 2) + DEST_OWNER]);
}

// @ts-ignore: decorator
@inline export function setDestOwner(fd: i32, m: i32): void {
  unchecked((slots[(fd << 2) + DEST_OWNER] = m));
}

/** The unit member (moves.ts) at fd now, -1 for none. */
// @ts-ignore: decorator
@inline export function curOwner(fd: i32): i32 {
  return unchecked(slots[(fd << 2) + CUR_OWNER]);
}

// @ts-ignore: decorator
@inline export function setCurOwner(fd: i32, m: i32): void {
  unchecked((slots[(fd << 2) + CUR_OWNER] = m));
}

export function occupy(fd: i32, content: i32, cloexec: bool): void {
  occupied.add(fd);
  unchecked((slots[fd << 2] = content));
  setSlotCloexec(fd, cloexec);
}

export function vacate(fd: i32): void {
  occupied.remove(fd);
  unchecked((slots[fd << 2] = EMPTY));
  setSlotCloexec(fd, false);
}

/** The number the kernel gives the next new fd, as in fs/file.c: lowest free. -1 when none. */
export function nextFree(): i32 {
  return occupied.lowestFree(0);
}

/** Close-on-exec the image wants at `fd` (false for numbers that are not image fds). */
// @ts-ignore: decorator
@inline export function wantCloexec(fd: i32): bool {
  return fd >= 0 && fd < limit && (unchecked(slots[(fd << 2) + BITS]) & CLOEXEC_WANTED) != 0;
}

/** Where description d can be reached now. */
export function locationOf(d: i32): i32 {
  return home[d] >= 0 ? home[d] : stagedAt[d];
}
