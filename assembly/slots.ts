// The target's fd table as the plan will have left it so far: which numbers are
// taken and by what. Lets the planner predict the number the kernel will hand out.

import { FdSet } from './fdset';
import { nDescs, fdCloexec, fdIndex } from './table';

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
export let slotDesc: StaticArray<i32> = new StaticArray<i32>(0);
export let slotCloexec: StaticArray<bool> = new StaticArray<bool>(0);

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
  slotDesc = new StaticArray<i32>(workingLimit);
  slotCloexec = new StaticArray<bool>(workingLimit);
  for (let i = 0; i < workingLimit; i++) unchecked((slotDesc[i] = EMPTY));
  flagsNow = new StaticArray<i32>(nDescs);
  home = new StaticArray<i32>(nDescs);
  stagedAt = new StaticArray<i32>(nDescs);
  for (let d = 0; d < nDescs; d++) {
    home[d] = -1;
    stagedAt[d] = -1;
  }
}

export function occupy(fd: i32, content: i32, cloexec: bool): void {
  occupied.add(fd);
  unchecked((slotDesc[fd] = content));
  unchecked((slotCloexec[fd] = cloexec));
}

export function vacate(fd: i32): void {
  occupied.remove(fd);
  unchecked((slotDesc[fd] = EMPTY));
  unchecked((slotCloexec[fd] = false));
}

/** The number the kernel gives the next new fd, as in fs/file.c: lowest free. -1 when none. */
export function nextFree(): i32 {
  return occupied.lowestFree(0);
}

/** Close-on-exec the image wants at `fd` (false for numbers that are not image fds). */
export function wantCloexec(fd: i32): bool {
  if (fd < 0) return false;
  const i = fdIndex(fd);
  return i >= 0 && fdCloexec[i];
}

/** Where description d can be reached now. */
export function locationOf(d: i32): i32 {
  return home[d] >= 0 ? home[d] : stagedAt[d];
}
