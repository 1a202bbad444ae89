// Pairing of pipe ends: which descriptions sit on each pipe (object), and which of them pipe2()
// itself made (CLASS_PAIR_END; the pipe kind tells them apart by O_LARGEFILE, docs/fd-table.md). Grouping is one counting pass by pipe: no pairwise scan.

import {
  nDescs, nPipes, descClass, descFlags, descPipe, pipeIsSocket, pipeCount, pipe2Read, pipe2Write, setPipe2Read,
  setPipe2Write, setPipeMembers, setPipeIsFifo, pipeIsFifo, pipeFirst,
} from './table';
import {
  CLASS_PAIR_END, CLASS_RENDEZVOUS, O_ACCMODE, O_RDONLY, O_WRONLY, PAIRING_TWO_PIPE2_READS,
  PAIRING_TWO_PIPE2_WRITES, PAIRING_MIXED_CLASSES, PAIRING_OBJECT_WITHOUT_DESC, PAIRING_RDWR_PAIR_END,
  PAIRING_SOCKET_ENDS,
} from './abi';

/**
 * descriptions of object q: descsOfPipe[pipeFirst(q) .. + pipeCount(q)), ascending by index; the
 * object's record (table.ts) holds where they start, how many, and which ends pipe2() made
 */
export let descsOfPipe: StaticArray<i32> = new StaticArray<i32>(0);

export let pairingError: i32 = 0;
export let pairingErrorArg: i32 = 0;

/** True when the description is an end of the pair one call makes (pipe2), not reopened. */
export function madeByPipe2(d: i32): bool {
  return descClass(d) == CLASS_PAIR_END;
}

export function pairPipeEnds(): bool {
  pairingError = 0;
  groupByObject();
  // Checked in order of (object, description).
  for (let q = 0; q < nPipes; q++) {
    const n = pipeCount(q);
    if (n == 0) continue;
    const base = pipeFirst(q);
    setPipeIsFifo(q, descClass(unchecked(descsOfPipe[base])) == CLASS_RENDEZVOUS);
    for (let i = 0; i < n; i++) {
      const d = unchecked(descsOfPipe[base + i]);
      if (pipeIsFifo(q) != (descClass(d) == CLASS_RENDEZVOUS)) return fail(PAIRING_MIXED_CLASSES, q);
      if (pipeIsSocket(q)) {
        // A socket is never reopened (open of /proc/self/fd/N is ENXIO): its pair is its two ends.
        if (!madeByPipe2(d)) return fail(PAIRING_SOCKET_ENDS, q);
        if (pipe2Read(q) < 0) setPipe2Read(q, d);
        else if (pipe2Write(q) < 0) setPipe2Write(q, d);
        else return fail(PAIRING_SOCKET_ENDS, q);
        continue;
      }
      if (!madeByPipe2(d)) continue;
      const acc = descFlags(d) & O_ACCMODE;
      if (acc == O_RDONLY) {
        if (pipe2Read(q) >= 0) return fail(PAIRING_TWO_PIPE2_READS, q);
        setPipe2Read(q, d);
      } else if (acc == O_WRONLY) {
        if (pipe2Write(q) >= 0) return fail(PAIRING_TWO_PIPE2_WRITES, q);
        setPipe2Write(q, d);
      } else {
        return fail(PAIRING_RDWR_PAIR_END, d);
      }
    }
  }
  for (let q = 0; q < nPipes; q++) if (pipeCount(q) == 0) return fail(PAIRING_OBJECT_WITHOUT_DESC, q);
  return true;
}

/** Each object's descriptions by one counting pass (stable: ascending by index). */
function groupByObject(): void {
  let members = 0;
  for (let d = 0; d < nDescs; d++) {
    const q = descPipe(d);
    if (q < 0) continue;
    setPipeMembers(q, 0, pipeCount(q) + 1);
    members++;
  }
  let first = 0;
  for (let q = 0; q < nPipes; q++) {
    const count = pipeCount(q);
    setPipeMembers(q, first, 0);
    first += count;
  }
  descsOfPipe = new StaticArray<i32>(members);
  for (let d = 0; d < nDescs; d++) {
    const q = descPipe(d);
    if (q < 0) continue;
    const at = pipeFirst(q) + pipeCount(q);
    unchecked((descsOfPipe[at] = d));
    setPipeMembers(q, pipeFirst(q), pipeCount(q) + 1);
  }
}

function fail(code: i32, arg: i32): bool {
  pairingError = code;
  pairingErrorArg = arg;
  return false;
}
