// Pairing of pipe ends: which descriptions sit on each pipe, and which of them pipe2()
// itself made. O_LARGEFILE tells them apart (docs/fd-table.md): pipe2() never sets it,
// open() of /proc/PID/fd/N always does. Grouping is one sort by pipe: no pairwise scan.

import {
  nDescs, nPipes, descKind, descFlags, descPipe, sortI64,
  KIND_PIPE, KIND_FIFO, O_ACCMODE, O_RDONLY, O_WRONLY, O_LARGEFILE,
} from './table';

/** descriptions of pipe q: descsOfPipe[pipeFirst[q] .. + pipeCount[q]), ascending by index */
export let descsOfPipe: StaticArray<i32> = new StaticArray<i32>(0);
export let pipeFirst: StaticArray<i32> = new StaticArray<i32>(0);
export let pipeCount: StaticArray<i32> = new StaticArray<i32>(0);
export let pipeIsFifo: StaticArray<bool> = new StaticArray<bool>(0);
/** the read / write description pipe2() made, or -1 when that end was closed */
export let pipe2Read: StaticArray<i32> = new StaticArray<i32>(0);
export let pipe2Write: StaticArray<i32> = new StaticArray<i32>(0);

export let pairingError: i32 = 0;
export let pairingErrorArg: i32 = 0;
export const PAIRING_TWO_PIPE2_READS: i32 = 1;
export const PAIRING_TWO_PIPE2_WRITES: i32 = 2;
export const PAIRING_MIXED_KINDS: i32 = 3;
export const PAIRING_PIPE_WITHOUT_DESC: i32 = 4;
export const PAIRING_RDWR_PIPE2: i32 = 5;

/** True when the description was made by pipe2(), not reopened. */
export function madeByPipe2(d: i32): bool {
  return descKind[d] == KIND_PIPE && (descFlags[d] & O_LARGEFILE) == 0;
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
      pipeIsFifo[q] = descKind[d] == KIND_FIFO;
    } else if (pipeIsFifo[q] != (descKind[d] == KIND_FIFO)) {
      return fail(PAIRING_MIXED_KINDS, q);
    }
    pipeCount[q]++;
    if (!madeByPipe2(d)) continue;
    const acc = descFlags[d] & O_ACCMODE;
    if (acc == O_RDONLY) {
      if (pipe2Read[q] >= 0) return fail(PAIRING_TWO_PIPE2_READS, q);
      pipe2Read[q] = d;
    } else if (acc == O_WRONLY) {
      if (pipe2Write[q] >= 0) return fail(PAIRING_TWO_PIPE2_WRITES, q);
      pipe2Write[q] = d;
    } else {
      return fail(PAIRING_RDWR_PIPE2, d);
    }
  }
  for (let q = 0; q < nPipes; q++) if (pipeCount[q] == 0) return fail(PAIRING_PIPE_WITHOUT_DESC, q);
  return true;
}

function fail(code: i32, arg: i32): bool {
  pairingError = code;
  pairingErrorArg = arg;
  return false;
}
