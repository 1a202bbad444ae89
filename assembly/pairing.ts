// Pairing of pipe ends: which descriptions sit on each pipe (object), and which of them pipe2()
// itself made (CLASS_PAIR_END; the pipe kind tells them apart by O_LARGEFILE, docs/fd-table.md). Grouping is one sort by pipe: no pairwise scan.

import { nDescs, nPipes, descClass, descFlags, descPipe, pipeIsSocket, sortI64 } from './table';
import {
  CLASS_PAIR_END, CLASS_RENDEZVOUS, O_ACCMODE, O_RDONLY, O_WRONLY, PAIRING_TWO_PIPE2_READS,
  PAIRING_TWO_PIPE2_WRITES, PAIRING_MIXED_CLASSES, PAIRING_OBJECT_WITHOUT_DESC, PAIRING_RDWR_PAIR_END,
  PAIRING_SOCKET_ENDS,
} from './abi';

/** descriptions of pipe q: descsOfPipe[pipeFirst[q] .. + pipeCount[q]), ascending by index */
export let descsOfPipe: StaticArray<i32> = new StaticArray<i32>(0);
export let pipeFirst: StaticArray<i32> = new StaticArray<i32>(0);
export let pipeCount: StaticArray<i32> = new StaticArray<i32>(0);
export let pipeIsFifo: StaticArray<bool> = new StaticArray<bool>(0);
/**
 * the read / write description pipe2() made, or -1 when that end was closed; for a socket pair,
 * its two ends (alike: the first and the second by index)
 */
export let pipe2Read: StaticArray<i32> = new StaticArray<i32>(0);
export let pipe2Write: StaticArray<i32> = new StaticArray<i32>(0);

export let pairingError: i32 = 0;
export let pairingErrorArg: i32 = 0;

/** True when the description is an end of the pair one call makes (pipe2), not reopened. */
export function madeByPipe2(d: i32): bool {
  return descClass[d] == CLASS_PAIR_END;
}

export function pairPipeEnds(): bool {
  pairingError = 0;
  let members = 0;
  for (let d = 0; d < nDescs; d++) if (descPipe[d] >= 0) members++;
  const keys = new StaticArray<i64>(members);
  let k = 0;
  for (let d = 0; d < nDescs; d++) if (descPipe[d] >= 0) keys[k++] = (i64(descPipe[d]) << 32) | i64(d);
  sortI64(keys);

  descsOfPipe = new StaticArray<i32>(members);
  pipeFirst = new StaticArray<i32>(nPipes);
  pipeCount = new StaticArray<i32>(nPipes);
  pipeIsFifo = new StaticArray<bool>(nPipes);
  pipe2Read = new StaticArray<i32>(nPipes);
  pipe2Write = new StaticArray<i32>(nPipes);
  for (let q = 0; q < nPipes; q++) {
    pipe2Read[q] = -1;
    pipe2Write[q] = -1;
  }
  for (let i = 0; i < members; i++) {
    const q = i32(keys[i] >> 32);
    const d = i32(keys[i] & 0xffffffff);
    descsOfPipe[i] = d;
    if (pipeCount[q] == 0) {
      pipeFirst[q] = i;
      pipeIsFifo[q] = descClass[d] == CLASS_RENDEZVOUS;
    } else if (pipeIsFifo[q] != (descClass[d] == CLASS_RENDEZVOUS)) {
      return fail(PAIRING_MIXED_CLASSES, q);
    }
    pipeCount[q]++;
    if (pipeIsSocket[q]) {
      // A socket is never reopened (open of /proc/self/fd/N is ENXIO): its pair is its two ends.
      if (!madeByPipe2(d)) return fail(PAIRING_SOCKET_ENDS, q);
      if (pipe2Read[q] < 0) pipe2Read[q] = d;
      else if (pipe2Write[q] < 0) pipe2Write[q] = d;
      else return fail(PAIRING_SOCKET_ENDS, q);
      continue;
    }
    if (!madeByPipe2(d)) continue;
    const acc = descFlags[d] & O_ACCMODE;
    if (acc == O_RDONLY) {
      if (pipe2Read[q] >= 0) return fail(PAIRING_TWO_PIPE2_READS, q);
      pipe2Read[q] = d;
    } else if (acc == O_WRONLY) {
      if (pipe2Write[q] >= 0) return fail(PAIRING_TWO_PIPE2_WRITES, q);
      pipe2Write[q] = d;
    } else {
      return fail(PAIRING_RDWR_PAIR_END, d);
    }
  }
  for (let q = 0; q < nPipes; q++) if (pipeCount[q] == 0) return fail(PAIRING_OBJECT_WITHOUT_DESC, q);
  return true;
}

function fail(code: i32, arg: i32): bool {
  pairingError = code;
  pairingErrorArg = arg;
  return false;
}
