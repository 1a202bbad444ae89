// A lower bound on the length of any plan for the input: every op counted here is
// one no plan can do without. The planner's plans are measured against it.

import {
  nDescs, nPipes, nTarget, descFlags, descSeek, descCount, descFirst,
  fdsOfDesc, pipeCapacity, pipeDataLen, targetFd, imageSoft, imageHard, targetSoft,
  targetHard, mode, maxImageFd, fdIndex, fdDesc, descClass, descAfter, targetDesc, fdWordCloexec,
  pipeIsFifo, pipe2Read, pipe2Write, pipeFirst, pipeCount,
} from './table';
import {
  MODE_FRESH, MODE_INTO_EXACT, O_ACCMODE, O_WRONLY, O_RDONLY, O_NONBLOCK, SETFL_MASK, CLASS_RENDEZVOUS, CLASS_INHERITED,
  DEFAULT_PIPE_CAPACITY,
} from './abi';
import { descsOfPipe, madeByPipe2 } from './pairing';

export function lowerBound(): i32 {
  let ops = 0;
  // Per description: how many of its numbers a target fd holds (for a CLASS_INHERITED one, holds
  // it at: that fd is the description already). Counted from the target's side, the few entries
  // there are, instead of a lookup per image fd in a set of them.
  const held = new StaticArray<i32>(nDescs);
  for (let t = 0; t < nTarget; t++) {
    const i = fdIndex(targetFd[t]);
    if (i < 0) continue;
    const d = fdDesc[i];
    if (descClass(d) != CLASS_INHERITED || targetDesc[t] == d) held[d]++;
  }

  const wholly = new StaticArray<bool>(nDescs);
  for (let d = 0; d < nDescs; d++) {
    if (descClass(d) == CLASS_INHERITED) {
      // Every number it has not inherited at costs one dup; its flags and offset came with it.
      ops += descCount(d) - held[d];
      continue;
    }
    // One op creates the description (pipe2 counts once per pipe, below), one dup
    // per further number. A description whose every number the target holds cannot
    // be created in place: a fresh target's fd must be closed first; a live target's
    // must stay until the commit, so every number is a dup and the staging copy closes.
    if (!madeByPipe2(d)) ops++;
    ops += descCount(d) - 1;
    wholly[d] = held[d] == descCount(d);
    if (wholly[d]) ops += mode == MODE_FRESH ? 1 : 2;
    if (descSeek(d)) ops++;
    // Status flags the creating call cannot give come by F_SETFL, after the data. A FIFO end
    // the planner opens with O_NONBLOCK might, in another plan, be opened without.
    const differ = (descFlags(d) ^ descAfter(d)) & SETFL_MASK & (descClass(d) == CLASS_RENDEZVOUS ? ~O_NONBLOCK : -1);
    if (differ != 0) ops++;
  }
  for (let q = 0; q < nPipes; q++) {
    if (pipeDataLen(q) > 0) ops++;
    if (pipeCapacity(q) != DEFAULT_PIPE_CAPACITY) ops++;
    if (pipeIsFifo(q)) {
      let readers = 0;
      let writers = 0;
      for (let i = 0; i < pipeCount(q); i++) {
        const acc = descFlags(descsOfPipe[pipeFirst(q) + i]) & O_ACCMODE;
        if (acc != O_WRONLY) readers++;
        if (acc != O_RDONLY) writers++;
      }
      if (readers == 0) ops += 2; // a temporary reader, opened and closed
      if (writers == 0 && pipeDataLen(q) > 0) ops += 2; // a temporary writer
      continue;
    }
    ops++; // pipe2
    if (pipe2Read(q) < 0) ops++; // the read end nobody kept is closed
    if (pipe2Write(q) < 0) ops++;
    // pipe2 gives both ends one close-on-exec bit; if no fd of one end agrees with
    // any fd of the other, one of them needs F_SETFD (unless every fd of one is a dup
    // anyway, as when a live target holds all its numbers).
    const r = pipe2Read(q);
    const w = pipe2Write(q);
    if (r >= 0 && w >= 0 && !(mode != MODE_FRESH && (wholly[r] || wholly[w])) && !(anyCloexec(r, true) && anyCloexec(w, true)) && !(anyCloexec(r, false) && anyCloexec(w, false))) ops++;
  }
  for (let t = 0; t < nTarget; t++) {
    const inImage = fdIndex(targetFd[t]) >= 0;
    if (!inImage && (mode == MODE_FRESH || mode == MODE_INTO_EXACT)) ops++;
  }
  const hard = min(imageHard, targetHard);
  const soft = min(imageSoft, hard);
  if (maxImageFd >= targetSoft) {
    ops++; // the soft limit rises before the highest fd can exist
    if (soft != targetHard || hard != targetHard) ops++;
  } else if (soft != targetSoft || hard != targetHard) {
    ops++;
  }
  return ops;
}

function anyCloexec(d: i32, value: bool): bool {
  for (let k = 0; k < descCount(d); k++) if (fdWordCloexec(fdsOfDesc[descFirst(d) + k]) == value) return true;
  return false;
}
