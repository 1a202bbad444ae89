// The planner's wasm interface. The host writes the input words into the buffer
// `input(n)` returns, calls `plan()`, then reads `output()` words:
//   ok:    [0, lowerBound, commitIndex, opCount, warnings, ...ops, OP_WORDS words each (emit.ts)]
//   error: [code, arg, arg2]
// Everything here is a pure function of the input: no imports but abort, no clock,
// no randomness, so the same input gives the same bytes on every machine.

import { decode, renumber, decodeError, decodeErrorArg, targetSoft, targetHard, newSortBuffers, nFds, nDescs, nPipes, nTarget } from './table';
import { pairPipeEnds, pairingError, pairingErrorArg, descsOfPipe } from './pairing';
import { planRestore, restoreLimit, planErrorArg, planErrorArg2, commitAt, hardLimitLowered, newPlannerBuffers } from './planner';
import { resetEmit, wordsOut, wordCount, opCount, highestFd, newEmitBuffer, expectWords, putAt, HEADER_ROOM } from './emit';
import { newMoveBuffers } from './moves';
import { OP_PRLIMIT, OP_WORDS, ERROR_DECODE, ERROR_PAIRING, WARN_HARD_LIMIT_LOWERED, PLAN_OK } from './abi';
import { lowerBound } from './bound';


let inputWords = new StaticArray<i32>(0);
/** an error's words; a plan's are the emitted ops' buffer itself, its header in front (emit.ts HEADER_ROOM) */
let errorWords = new StaticArray<i32>(0);
let outputAt: usize = 0;
let outputWordCount: i32 = 0;

/**
 * A buffer for n input words; returns its address. Each plan starts here on an empty heap: the
 * runtime is asc's stub, which only allocates (no collector, so none of the incremental runtime's
 * shadow-stack stores at every reference the planner reads), and everything the last plan
 * allocated goes at once. So every buffer a module keeps from plan to plan is made anew here; the
 * arrays each plan makes before it reads them (decode, pairing, slots) need not be.
 */
export function input(n: i32): usize {
  __reset();
  newSortBuffers();
  newEmitBuffer();
  newMoveBuffers();
  newPlannerBuffers();
  errorWords = new StaticArray<i32>(0);
  outputAt = changetype<usize>(errorWords);
  outputWordCount = 0;
  inputWords = new StaticArray<i32>(n);
  return changetype<usize>(inputWords);
}

/** Address of the output words (valid until the next call). */
export function output(): usize {
  return outputAt;
}

export function outputLength(): i32 {
  return outputWordCount;
}

export function plan(): i32 {
  resetEmit();
  if (!decode(inputWords)) return fail(ERROR_DECODE + decodeError, decodeErrorArg, 0);
  if (!pairPipeEnds()) return fail(ERROR_PAIRING + pairingError, pairingErrorArg, 0);
  renumber(descsOfPipe);
  expectWords(nFds, nDescs, nPipes, nTarget);
  const code = planRestore();
  if (code != PLAN_OK) return fail(code, planErrorArg, planErrorArg2);
  // New fds can only exist below the soft limit: lift it to the hard one first if needed.
  const raise = highestFd >= targetSoft;
  restoreLimit(raise);

  const prefix = raise ? OP_WORDS : 0;
  const words = wordsOut();
  const start = HEADER_ROOM - 5 - prefix;
  words[start] = 0;
  words[start + 1] = lowerBound();
  words[start + 2] = commitAt + (raise ? 1 : 0);
  words[start + 3] = opCount() + (raise ? 1 : 0);
  words[start + 4] = hardLimitLowered ? WARN_HARD_LIMIT_LOWERED : 0;
  if (raise) putAt(words, start + 5, OP_PRLIMIT, targetHard, targetHard);
  outputAt = changetype<usize>(words) + usize(start) * 4;
  outputWordCount = 5 + prefix + wordCount();
  return 0;
}

function fail(code: i32, arg: i32, arg2: i32): i32 {
  errorWords = new StaticArray<i32>(3);
  errorWords[0] = code;
  errorWords[1] = arg;
  errorWords[2] = arg2;
  outputAt = changetype<usize>(errorWords);
  outputWordCount = 3;
  return code;
}
