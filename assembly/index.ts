// The planner's wasm interface. The host writes the input words into the buffer
// `input(n)` returns, calls `plan()`, then reads `output()` words:
//   ok:    [0, lowerBound, commitIndex, opCount, warnings, ...op words]
//   error: [code, arg, arg2]
// Everything here is a pure function of the input: no imports but abort, no clock,
// no randomness, so the same input gives the same bytes on every machine.

import { decode, decodeError, decodeErrorArg, targetSoft, targetHard, newSortBuffers } from './table';
import { pairPipeEnds, pairingError, pairingErrorArg } from './pairing';
import { planRestore, restoreLimit, planErrorArg, planErrorArg2, commitAt, hardLimitLowered, newPlannerBuffers } from './planner';
import { resetEmit, wordsOut, wordCount, opCount, highestFd, newEmitBuffer } from './emit';
import { newMoveBuffers } from './moves';
import { OP_PRLIMIT, ERROR_DECODE, ERROR_PAIRING, WARN_HARD_LIMIT_LOWERED, PLAN_OK } from './abi';
import { lowerBound } from './bound';


let inputWords = new StaticArray<i32>(0);
let outputWords = new StaticArray<i32>(0);

/**
 * A buffer for n input words; returns its address. Each plan starts here on an empty heap: the
 * runtime is asc's stub, which only allocates (no collector, so none of the incremental runtime's
 * shadow-stack stores at every reference the planner reads: a fifth of its time), and everything
 * the last plan allocated goes at once. So every buffer a module keeps from plan to plan is made
 * anew here; the arrays each plan makes before it reads them (decode, pairing, slots) need not be.
 */
export function input(n: i32): usize {
  __reset();
  newSortBuffers();
  newEmitBuffer();
  newMoveBuffers();
  newPlannerBuffers();
  outputWords = new StaticArray<i32>(0);
  inputWords = new StaticArray<i32>(n);
  return changetype<usize>(inputWords);
}

/** Address of the output words (valid until the next call). */
export function output(): usize {
  return changetype<usize>(outputWords);
}

export function outputLength(): i32 {
  return outputWords.length;
}

export function plan(): i32 {
  resetEmit();
  if (!decode(inputWords)) return fail(ERROR_DECODE + decodeError, decodeErrorArg, 0);
  if (!pairPipeEnds()) return fail(ERROR_PAIRING + pairingError, pairingErrorArg, 0);
  const code = planRestore();
  if (code != PLAN_OK) return fail(code, planErrorArg, planErrorArg2);
  // New fds can only exist below the soft limit: lift it to the hard one first if needed.
  const raise = highestFd >= targetSoft;
  restoreLimit(raise);

  const prefix = raise ? 3 : 0;
  const body = wordCount();
  outputWords = new StaticArray<i32>(5 + prefix + body);
  outputWords[0] = 0;
  outputWords[1] = lowerBound();
  outputWords[2] = commitAt + (raise ? 1 : 0);
  outputWords[3] = opCount() + (raise ? 1 : 0);
  outputWords[4] = hardLimitLowered ? WARN_HARD_LIMIT_LOWERED : 0;
  if (raise) {
    outputWords[5] = OP_PRLIMIT;
    outputWords[6] = targetHard;
    outputWords[7] = targetHard;
  }
  memory.copy(changetype<usize>(outputWords) + usize(5 + prefix) * 4, changetype<usize>(wordsOut()), usize(body) * 4);
  return 0;
}

function fail(code: i32, arg: i32, arg2: i32): i32 {
  outputWords = new StaticArray<i32>(3);
  outputWords[0] = code;
  outputWords[1] = arg;
  outputWords[2] = arg2;
  return code;
}
