// The per-process attributes a program can read back (docs/state.md): prctl state, scheduling,
// I/O priority, CPU affinity, read by injected calls in the frozen process (only it can tell
// most of them), and oom_score_adj, coredump_filter and loginuid from /proc. What cr cannot
// carry (secure bits, SCHED_DEADLINE, dumpable 2) comes back as reasons to refuse the dump.
import { readFileSync } from 'node:fs';
import type { Injector } from '../inject/injector.js';
import { SYS } from '../inject/syscalls.js';
import type { ProcessAttributes } from '../image/process-head.js';
import {
  AFFINITY_MAX_BYTES, ARCH_GET_CPUID, IOPRIO_WHO_PROCESS, PR_GET_CHILD_SUBREAPER, PR_GET_DUMPABLE, PR_GET_KEEPCAPS, PR_GET_MDWE, PR_GET_MEMORY_MERGE,
  PR_GET_PDEATHSIG, PR_GET_SECUREBITS, PR_GET_THP_DISABLE, PR_GET_TIMERSLACK, PR_GET_TSC, PR_MCE_KILL_GET, PR_TSC_ENABLE, PRIO_PROCESS, SCHED_DEADLINE,
  SCHED_RESET_ON_FORK,
} from '../inject/syscalls.js';

const EINVAL = -22n;
const ENODEV = -19n;
const SECBIT_KEEP_CAPS = 0x10;

export interface ReadAttributes {
  attributes: ProcessAttributes;
  /** what the process has set that cr cannot carry, one reason each */
  refusals: string[];
}

export function readAttributes(inj: Injector, pid: number): ReadAttributes {
  const refusals: string[] = [];
  const word = inj.scratch(8);
  const prctl = (name: string, op: number, arg2 = 0n): bigint => inj.call(`prctl(${name})`, SYS.prctl, BigInt(op), arg2, 0n, 0n, 0n);
  const intAt = (name: string, op: number): number => {
    inj.write(word, Buffer.alloc(8));
    prctl(name, op, word);
    return inj.read(word, 4).readInt32LE(0);
  };
  /** A getter this kernel may lack (EINVAL: the option is unknown): then the attribute has its default. */
  const optional = (op: number, fallback: bigint): bigint => {
    const r = inj.syscall(SYS.prctl, BigInt(op), 0n, 0n, 0n, 0n);
    if (r === EINVAL) return fallback;
    if (r < 0n) throw new Error(`prctl(${op}) injected in pid ${pid} failed with errno ${-r}`);
    return r;
  };
  const dumpable = Number(prctl('PR_GET_DUMPABLE', PR_GET_DUMPABLE));
  // 2 (SUID_DUMP_ROOT) comes only from fs.suid_dumpable at a set-id exec; prctl cannot set it.
  if (dumpable > 1) refusals.push(`process ${pid} is dumpable only by root (suid_dumpable ${dumpable}), which cannot be set again`);
  // SECBIT_KEEP_CAPS is PR_SET_KEEPCAPS's, carried as keepCaps; any other bit needs CAP_SETPCAP.
  const securebits = Number(prctl('PR_GET_SECUREBITS', PR_GET_SECUREBITS)) & ~SECBIT_KEEP_CAPS;
  if (securebits !== 0) refusals.push(`process ${pid} has secure bits 0x${securebits.toString(16)} (PR_SET_SECUREBITS), which cr does not carry`);
  const policy = Number(inj.call('sched_getscheduler', SYS.sched_getscheduler, 0n));
  if ((policy & ~SCHED_RESET_ON_FORK) === SCHED_DEADLINE) refusals.push(`process ${pid} runs under SCHED_DEADLINE, which cr does not carry`);
  inj.call('sched_getparam', SYS.sched_getparam, 0n, word);
  const schedPriority = inj.read(word, 4).readInt32LE(0);
  const mask = inj.scratch(AFFINITY_MAX_BYTES);
  const maskBytes = Number(inj.call('sched_getaffinity', SYS.sched_getaffinity, 0n, BigInt(AFFINITY_MAX_BYTES), mask));
  // arch_prctl(ARCH_GET_CPUID) fails with ENODEV where the CPU cannot make cpuid fault: it runs.
  const cpuid = inj.syscall(SYS.arch_prctl, BigInt(ARCH_GET_CPUID), 0n);
  const tsc = inj.syscall(SYS.prctl, BigInt(PR_GET_TSC), word, 0n, 0n, 0n) < 0n ? PR_TSC_ENABLE : inj.read(word, 4).readInt32LE(0);
  const attributes: ProcessAttributes = {
    oomScoreAdj: Number(readFileSync(`/proc/${pid}/oom_score_adj`, 'latin1').trim()),
    pdeathsig: intAt('PR_GET_PDEATHSIG', PR_GET_PDEATHSIG),
    dumpable,
    keepCaps: prctl('PR_GET_KEEPCAPS', PR_GET_KEEPCAPS) === 1n,
    timerSlackNs: Number(prctl('PR_GET_TIMERSLACK', PR_GET_TIMERSLACK)),
    thpDisable: Number(prctl('PR_GET_THP_DISABLE', PR_GET_THP_DISABLE)),
    childSubreaper: intAt('PR_GET_CHILD_SUBREAPER', PR_GET_CHILD_SUBREAPER) !== 0,
    mceKill: Number(prctl('PR_MCE_KILL_GET', PR_MCE_KILL_GET)),
    tsc,
    mdwe: Number(optional(PR_GET_MDWE, 0n)),
    memoryMerge: optional(PR_GET_MEMORY_MERGE, 0n) === 1n,
    cpuid: cpuid === ENODEV || cpuid === EINVAL ? 1 : Number(inj.call('arch_prctl(ARCH_GET_CPUID)', SYS.arch_prctl, BigInt(ARCH_GET_CPUID), 0n)),
    coredumpFilter: parseInt(readFileSync(`/proc/${pid}/coredump_filter`, 'latin1').trim(), 16),
    // The raw getpriority returns 20 - nice, so that no value is an error (man 2 getpriority).
    nice: 20 - Number(inj.call('getpriority', SYS.getpriority, BigInt(PRIO_PROCESS), 0n)),
    schedPolicy: policy,
    schedPriority,
    ioprio: Number(inj.call('ioprio_get', SYS.ioprio_get, BigInt(IOPRIO_WHO_PROCESS), 0n)),
    affinity: inj.read(mask, maskBytes),
    loginuid: Number(readFileSync(`/proc/${pid}/loginuid`, 'latin1').trim()),
  };
  return { attributes, refusals };
}
