// The per-process attributes a program can read back (docs/state.md): prctl state, scheduling,
// I/O priority, CPU affinity, read by calls in the frozen process's batch of reads
// (read-batch.ts: only it can tell most of them), and oom_score_adj, coredump_filter and loginuid from /proc. What cr cannot
// carry (secure bits, SCHED_DEADLINE, dumpable 2) comes back as reasons to refuse the dump.
import type { Output, ReadBatch } from './read-batch.js';
import { SYS } from '../inject/syscalls.js';
import type { ProcessAttributes } from '../image/process-head.js';
import {
  AFFINITY_MAX_BYTES, ARCH_GET_CPUID, IOPRIO_WHO_PROCESS, PR_GET_CHILD_SUBREAPER, PR_GET_DUMPABLE, PR_GET_KEEPCAPS, PR_GET_MDWE, PR_GET_MEMORY_MERGE,
  PR_GET_PDEATHSIG, PR_GET_SECUREBITS, PR_GET_THP_DISABLE, PR_GET_TIMERSLACK, PR_GET_TSC, PR_MCE_KILL_GET, PR_TSC_ENABLE, PRIO_PROCESS, SCHED_DEADLINE,
  SCHED_RESET_ON_FORK,
} from '../inject/syscalls.js';
import { readProc } from '../proc/read.js';

const EINVAL = -22n;
const ENODEV = -19n;
const SECBIT_KEEP_CAPS = 0x10;

export interface ReadAttributes {
  attributes: ProcessAttributes;
  /** what the process has set that cr cannot carry, one reason each */
  refusals: string[];
}

/** Queue the reads of the process's attributes; what they give once the batch ran. */
export function queueAttributes(reads: ReadBatch, pid: number): () => ReadAttributes {
  const prctl = (name: string, op: number, tolerated: readonly bigint[] = []): number => reads.add(`prctl(${name})`, SYS.prctl, [BigInt(op), 0n, 0n, 0n, 0n], tolerated);
  /** A getter that stores an int at its second argument. */
  const intAt = (name: string, op: number): Output => {
    const word = reads.output(8);
    reads.add(`prctl(${name})`, SYS.prctl, [BigInt(op), word, 0n, 0n, 0n]);
    return word;
  };
  const dumpable = prctl('PR_GET_DUMPABLE', PR_GET_DUMPABLE);
  const securebits = prctl('PR_GET_SECUREBITS', PR_GET_SECUREBITS);
  const policy = reads.add('sched_getscheduler', SYS.sched_getscheduler, [0n]);
  const param = reads.output(8);
  reads.add('sched_getparam', SYS.sched_getparam, [0n, param]);
  const mask = reads.output(AFFINITY_MAX_BYTES);
  const maskBytes = reads.add('sched_getaffinity', SYS.sched_getaffinity, [0n, BigInt(AFFINITY_MAX_BYTES), mask]);
  // arch_prctl(ARCH_GET_CPUID) fails with ENODEV where the CPU cannot make cpuid fault: it runs.
  const cpuid = reads.add('arch_prctl(ARCH_GET_CPUID)', SYS.arch_prctl, [BigInt(ARCH_GET_CPUID), 0n], [ENODEV, EINVAL]);
  const tscWord = reads.output(8);
  // Where PR_GET_TSC is refused, the TSC is readable (the default).
  const tsc = reads.add('prctl(PR_GET_TSC)', SYS.prctl, [BigInt(PR_GET_TSC), tscWord, 0n, 0n, 0n], 'any');
  const pdeathsig = intAt('PR_GET_PDEATHSIG', PR_GET_PDEATHSIG);
  const keepCaps = prctl('PR_GET_KEEPCAPS', PR_GET_KEEPCAPS);
  const timerSlack = prctl('PR_GET_TIMERSLACK', PR_GET_TIMERSLACK);
  const thpDisable = prctl('PR_GET_THP_DISABLE', PR_GET_THP_DISABLE);
  const childSubreaper = intAt('PR_GET_CHILD_SUBREAPER', PR_GET_CHILD_SUBREAPER);
  const mceKill = prctl('PR_MCE_KILL_GET', PR_MCE_KILL_GET);
  // Getters this kernel may lack (EINVAL: the option is unknown): then the attribute has its default.
  const mdwe = prctl('PR_GET_MDWE', PR_GET_MDWE, [EINVAL]);
  const memoryMerge = prctl('PR_GET_MEMORY_MERGE', PR_GET_MEMORY_MERGE, [EINVAL]);
  const nice = reads.add('getpriority', SYS.getpriority, [BigInt(PRIO_PROCESS), 0n]);
  const ioprio = reads.add('ioprio_get', SYS.ioprio_get, [BigInt(IOPRIO_WHO_PROCESS), 0n]);
  return () => {
    const refusals: string[] = [];
    const r = (i: number): number => Number(reads.result(i));
    const optional = (i: number): number => Math.max(r(i), 0);
    // 2 (SUID_DUMP_ROOT) comes only from fs.suid_dumpable at a set-id exec; prctl cannot set it.
    if (r(dumpable) > 1) refusals.push(`process ${pid} is dumpable only by root (suid_dumpable ${r(dumpable)}), which cannot be set again`);
    // SECBIT_KEEP_CAPS is PR_SET_KEEPCAPS's, carried as keepCaps; any other bit needs CAP_SETPCAP.
    const bits = r(securebits) & ~SECBIT_KEEP_CAPS;
    if (bits !== 0) refusals.push(`process ${pid} has secure bits 0x${bits.toString(16)} (PR_SET_SECUREBITS), which cr does not carry`);
    if ((r(policy) & ~SCHED_RESET_ON_FORK) === SCHED_DEADLINE) refusals.push(`process ${pid} runs under SCHED_DEADLINE, which cr does not carry`);
    const attributes: ProcessAttributes = {
      oomScoreAdj: Number(readProc(`/proc/${pid}/oom_score_adj`).trim()),
      pdeathsig: reads.read(pdeathsig).readInt32LE(0),
      dumpable: r(dumpable),
      keepCaps: r(keepCaps) === 1,
      timerSlackNs: r(timerSlack),
      thpDisable: r(thpDisable),
      childSubreaper: reads.read(childSubreaper).readInt32LE(0) !== 0,
      mceKill: r(mceKill),
      tsc: r(tsc) < 0 ? PR_TSC_ENABLE : reads.read(tscWord).readInt32LE(0),
      mdwe: optional(mdwe),
      memoryMerge: r(memoryMerge) === 1,
      cpuid: r(cpuid) < 0 ? 1 : r(cpuid),
      coredumpFilter: parseInt(readProc(`/proc/${pid}/coredump_filter`).trim(), 16),
      // The raw getpriority returns 20 - nice, so that no value is an error (man 2 getpriority).
      nice: 20 - r(nice),
      schedPolicy: r(policy),
      schedPriority: reads.read(param).readInt32LE(0),
      ioprio: r(ioprio),
      affinity: reads.read(mask).subarray(0, r(maskBytes)),
      loginuid: Number(readProc(`/proc/${pid}/loginuid`).trim()),
    };
    return { attributes, refusals };
  };
}
