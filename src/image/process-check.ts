// What a whole-process head means, checked before any process exists: every field that well
// typed (process-format.ts checkHead) can still be impossible: a value the kernel would refuse
// (a handler for SIGKILL, a robust list of the wrong size), one that would make restart misbehave
// (a pending SIGKILL kills the husk under cr), or one no process can have (mappings beyond the
// address space, an end before its start). A restart would refuse most of these only after its
// husk started, or not at all; here they are bad input (exit 2) for every command. Credentials
// and what only some authors could have done (memory below vm.mmap_min_addr, limits above cr's
// own) are judged against the image's author in src/trust/head.ts (docs/trust.md).
import { REG_NAMES } from '../../bridge/registers.js';
import { printable } from '../printable.js';
import { TIMER_CLOCKS, type Mapping, type ProcessHead } from './process-head.js';

type Bad = (what: string) => never;

/** x86-64 user address space with 4-level page tables (TASK_SIZE_MAX): 2^47 less a guard page. */
export const TASK_SIZE = 2 ** 47 - 4096;
const PID_MAX_LIMIT = 4 * 1024 * 1024;
/** TASK_COMM_LEN less its NUL. */
const COMM_BYTES = 15;
const RLIM_NLIMITS = 16;
const SIGKILL = 9;
const SIGSTOP = 19;
const SIGNALS = 64;
const SIGACTION_BYTES = 32;
const SA_RESTORER = 0x04000000n;
const SS_ONSTACK = 1;
const SS_DISABLE = 2;
const SS_AUTODISARM = 2 ** 31;
const MINSIGSTKSZ = 2048;
/** struct robust_list_head: set_robust_list refuses any other length. */
const ROBUST_LIST_HEAD_BYTES = 24;
/** struct rseq: at least its original 32 bytes, 32-byte aligned. */
const RSEQ_MIN_BYTES = 32;
/** legacy FXSAVE area and XSAVE header */
const XSAVE_MIN_BYTES = 512 + 64;
const USER_CS = 0x33n;
const USER_DS = 0x2bn;
const SPECIAL_KINDS = ['vdso', 'vvar', 'vvar_vclock'] as const;

const hex = (n: number | bigint): string => `0x${n.toString(16)}`;

function path(p: string, where: string, bad: Bad): void {
  if (!p.startsWith('/') || p.includes('\0')) bad(`${where} is not an absolute path`);
}

/** An address (or the end of a range) the process could use. */
function userAddress(v: number | bigint, where: string, bad: Bad): void {
  if (v > TASK_SIZE) bad(`${where} ${hex(v)} is beyond the user address space`);
}

function checkMappings(mappings: Mapping[], bad: Bad): void {
  const seen = new Set<string>();
  /** each shared object's System V segment (or none), as its first mapping says */
  const segments = new Map<number, string>();
  mappings.forEach((m, i) => {
    const where = `head.mappings[${i}]`;
    userAddress(m.end, `${where}.end`, bad);
    if ((SPECIAL_KINDS as readonly string[]).includes(m.kind)) {
      if (m.name !== `[${m.kind}]`) bad(`${where} is a ${m.kind} mapping named "${printable(m.name, '"')}"`);
      if (seen.has(m.kind)) bad(`${where} is a second ${m.kind} mapping`);
      seen.add(m.kind);
    }
    if (m.file) path(m.file.path, `${where}.file.path`, bad);
    // The object is made as large as its furthest mapping reaches: no larger than memory can be.
    if (m.shm) {
      userAddress(m.shm.offset + (m.end - m.start), `${where}.shm (offset + size)`, bad);
      const segment = JSON.stringify(m.shm.sysv);
      const first = segments.get(m.shm.object) ?? segment;
      if (first !== segment) bad(`${where}: shared object ${m.shm.object} is another System V segment than in its first mapping`);
      segments.set(m.shm.object, segment);
    }
  });
  const ids = [...segments.values()].filter((s) => s !== 'null').map((s) => (JSON.parse(s) as { id: number }).id);
  if (new Set(ids).size !== ids.length) bad('two shared objects are the same System V segment');
}

/**
 * The shared objects of a tree's heads: a number is one object in the whole image (members that
 * map it share it), so every mapping of it, in any member, names the same System V segment or none,
 * and no segment is two objects.
 */
export function checkSharedObjects(heads: ReadonlyArray<{ process: { pid: number }; mappings: Mapping[] }>, bad: Bad): void {
  const segments = new Map<number, { segment: string; pid: number }>();
  for (const h of heads) {
    for (const m of h.mappings) {
      if (!m.shm) continue;
      const segment = JSON.stringify(m.shm.sysv);
      const first = segments.get(m.shm.object);
      if (first && first.segment !== segment) bad(`shared object ${m.shm.object} is another System V segment in the head of ${h.process.pid} than in that of ${first.pid}`);
      if (!first) segments.set(m.shm.object, { segment, pid: h.process.pid });
    }
  }
  const ids = [...segments.values()].filter((s) => s.segment !== 'null').map((s) => (JSON.parse(s.segment) as { id: number }).id);
  if (new Set(ids).size !== ids.length) bad('two shared objects of the tree are the same System V segment');
}

/** A blocked mask, pending siginfos and an alternate stack, of the process or of one thread (`where`). */
function checkThreadSignals(blocked: Buffer, pending: Buffer[], altstack: ProcessHead['signals']['altstack'], where: string, bad: Bad): void {
  const mask = blocked.readBigUInt64LE(0);
  if (mask & ((1n << BigInt(SIGKILL - 1)) | (1n << BigInt(SIGSTOP - 1)))) bad(`${where}.blocked blocks SIGKILL or SIGSTOP, which cannot be blocked`);
  pending.forEach((info, i) => {
    const signo = info.readInt32LE(0);
    const at = `${where}.pending[${i}]`;
    if (signo < 1 || signo > SIGNALS) bad(`${at} is signal ${signo}, not 1..${SIGNALS}`);
    // Queued to the husk, SIGKILL would kill it under cr and SIGSTOP stop it: no stopped or
    // dying process is dumped with them pending.
    if (signo === SIGKILL || signo === SIGSTOP) bad(`${at} is ${signo === SIGKILL ? 'SIGKILL' : 'SIGSTOP'}, which no dumped process has pending`);
  });
  const { sp, flags, size } = altstack;
  if (flags === SS_DISABLE) return;
  if ((flags & ~(SS_ONSTACK | SS_AUTODISARM)) !== 0) bad(`${where}.altstack.flags ${hex(flags)} is not SS_DISABLE, SS_ONSTACK or SS_AUTODISARM`);
  if (size < MINSIGSTKSZ) bad(`${where}.altstack.size ${size} is below MINSIGSTKSZ (${MINSIGSTKSZ})`);
  userAddress(sp + size, `${where}.altstack (sp + size)`, bad);
}

function checkSignals(head: ProcessHead, bad: Bad): void {
  const { actions, blocked, pending, altstack } = head.signals;
  for (let sig = 1; sig <= SIGNALS; sig++) {
    const at = (sig - 1) * SIGACTION_BYTES;
    const handler = actions.readBigUInt64LE(at);
    const flags = actions.readBigUInt64LE(at + 8);
    const restorer = actions.readBigUInt64LE(at + 16);
    // The kernel refuses any action for these two: the image cannot have had one.
    if ((sig === SIGKILL || sig === SIGSTOP) && !actions.subarray(at, at + SIGACTION_BYTES).every((b) => b === 0)) {
      bad(`head.signals.actions gives signal ${sig} (${sig === SIGKILL ? 'SIGKILL' : 'SIGSTOP'}) an action`);
    }
    if (handler > 1n) userAddress(handler, `head.signals.actions: the handler of signal ${sig}`, bad);
    if (flags & SA_RESTORER) userAddress(restorer, `head.signals.actions: the restorer of signal ${sig}`, bad);
  }
  checkThreadSignals(blocked, pending.map((p) => p.info), altstack, 'head.signals', bad);
}

function checkRegs(regs: Buffer, xstate: Buffer, where: string, bad: Bad): void {
  const reg = (name: (typeof REG_NAMES)[number]): bigint => regs.readBigUInt64LE(REG_NAMES.indexOf(name) * 8);
  if (reg('cs') !== USER_CS || reg('ss') !== USER_DS) bad(`${where}.regs: cs ${hex(reg('cs'))}, ss ${hex(reg('ss'))} are not a 64-bit user process's (${hex(USER_CS)}, ${hex(USER_DS)})`);
  for (const name of ['fs_base', 'gs_base'] as const) userAddress(reg(name), `${where}.regs.${name}`, bad);
  if (xstate.length < XSAVE_MIN_BYTES) bad(`${where}.xstate is ${xstate.length} bytes, less than an XSAVE area's ${XSAVE_MIN_BYTES}`);
}

function checkRseq(rseq: ProcessHead['rseq'], where: string, bad: Bad): void {
  if (!rseq) return;
  const { pointer, size, signature } = rseq;
  if (size < RSEQ_MIN_BYTES || pointer % RSEQ_MIN_BYTES !== 0) bad(`${where} is not a 32-byte aligned area of at least ${RSEQ_MIN_BYTES} bytes`);
  userAddress(pointer + size, `${where} (pointer + size)`, bad);
  if (signature > 0xffffffff) bad(`${where}.signature is not 32 bits`);
}

function checkRobustList(robustList: ProcessHead['robustList'], where: string, bad: Bad): void {
  if (!robustList) return;
  if (robustList.len !== ROBUST_LIST_HEAD_BYTES) bad(`${where}.len ${robustList.len} is not ${ROBUST_LIST_HEAD_BYTES}`);
  userAddress(robustList.head, `${where}.head`, bad);
}

function checkComm(comm: string, where: string, bad: Bad): void {
  // Counted in characters: a comm's bytes that are not UTF-8 were read as one U+FFFD each.
  if ([...comm].length > COMM_BYTES || comm.includes('\0')) bad(`${where} is not a name of at most ${COMM_BYTES} bytes`);
}

/** The threads besides the leader: ids distinct and not the leader's, each thread's own state possible. */
function checkThreads(head: ProcessHead, bad: Bad): void {
  const seen = new Set<number>([head.process.pid]);
  head.threads.forEach((t, i) => {
    const where = `head.threads[${i}]`;
    if (t.tid < 1 || t.tid > PID_MAX_LIMIT) bad(`${where}.tid ${t.tid} is not 1..${PID_MAX_LIMIT}`);
    if (seen.has(t.tid)) bad(`${where}.tid ${t.tid} is the leader's or another thread's`);
    seen.add(t.tid);
    checkComm(t.comm, `${where}.comm`, bad);
    checkRegs(t.regs, t.xstate, where, bad);
    // One CPU, one XSAVE layout: every thread's area is the leader's size.
    if (t.xstate.length !== head.xstate.length) bad(`${where}.xstate is ${t.xstate.length} bytes, the leader's ${head.xstate.length}`);
    checkThreadSignals(t.blocked, t.pending, t.altstack, where, bad);
    checkRseq(t.rseq, `${where}.rseq`, bad);
    checkRobustList(t.robustList, `${where}.robustList`, bad);
    userAddress(t.tidAddress, `${where}.tidAddress`, bad);
  });
}

const SCHED_POLICIES = [0, 1, 2, 3, 5]; // OTHER FIFO RR BATCH IDLE (DEADLINE is refused at dump)
const SCHED_RESET_ON_FORK = 0x40000000;
const MAX_RT_PRIORITY = 99;
const OOM_SCORE_ADJ_MAX = 1000;
const MAX_NICE = 19;
const MIN_NICE = -20;
/** MMF_DUMP_FILTER_MASK: the bits coredump_filter has */
const COREDUMP_FILTER_BITS = 0x1ff;
const IOPRIO_CLASS_SHIFT = 13;

function checkAttributes(head: ProcessHead, bad: Bad): void {
  const a = head.attributes;
  const w = (k: string): string => `head.attributes.${k}`;
  const within = (v: number, lo: number, hi: number, k: string): void => {
    if (v < lo || v > hi) bad(`${w(k)} ${v} is not ${lo}..${hi}`);
  };
  within(a.oomScoreAdj, -OOM_SCORE_ADJ_MAX, OOM_SCORE_ADJ_MAX, 'oomScoreAdj');
  within(a.pdeathsig, 0, SIGNALS, 'pdeathsig');
  within(a.dumpable, 0, 1, 'dumpable');
  if (![0, 1, 3].includes(a.thpDisable)) bad(`${w('thpDisable')} ${a.thpDisable} is not 0, 1 or 3 (PR_GET_THP_DISABLE's values)`);
  within(a.mceKill, 0, 2, 'mceKill');
  within(a.tsc, 1, 2, 'tsc');
  within(a.mdwe, 0, 3, 'mdwe');
  within(a.cpuid, 0, 1, 'cpuid');
  within(a.coredumpFilter, 0, COREDUMP_FILTER_BITS, 'coredumpFilter');
  within(a.nice, MIN_NICE, MAX_NICE, 'nice');
  const policy = a.schedPolicy & ~SCHED_RESET_ON_FORK;
  if (!SCHED_POLICIES.includes(policy) || a.schedPolicy > (policy | SCHED_RESET_ON_FORK)) bad(`${w('schedPolicy')} ${a.schedPolicy} is not a scheduling policy cr sets`);
  within(a.schedPriority, policy === 1 || policy === 2 ? 1 : 0, policy === 1 || policy === 2 ? MAX_RT_PRIORITY : 0, 'schedPriority');
  within(a.ioprio >> IOPRIO_CLASS_SHIFT, 0, 3, 'ioprio (class)');
  within(a.ioprio, 0, 0xffff, 'ioprio');
  if (a.affinity.length === 0 || a.affinity.length % 8 !== 0 || a.affinity.length > 1024 || a.affinity.every((b) => b === 0)) {
    bad(`${w('affinity')} is not a CPU mask of whole 64-bit words with a CPU in it`);
  }
  within(a.loginuid, 0, 0xffffffff, 'loginuid');
}

/** Throws through `bad` at the first field that no process could have. */
export function checkHeadMeaning(head: ProcessHead, bad: Bad): void {
  const { process: p } = head;
  if (p.pid < 1 || p.pid > PID_MAX_LIMIT) bad(`head.process.pid ${p.pid} is not 1..${PID_MAX_LIMIT}`);
  checkComm(p.comm, 'head.process.comm', bad);
  if (head.exe) path(head.exe.path, 'head.exe.path', bad);
  path(head.cwd, 'head.cwd', bad);
  if (head.cwdRemoved !== null) {
    if (head.cwdRemoved > 0o7777) bad(`head.cwdRemoved ${head.cwdRemoved.toString(8)} is not permission bits (0..7777)`);
    if (head.cwd === '/') bad('head.cwdRemoved: the root directory cannot be removed');
  }
  if (head.umask > 0o777) bad(`head.umask ${head.umask.toString(8)} is not a umask (0..777)`);
  // 0xffffffff asks personality() for the current one instead of setting it.
  if (head.personality >= 0xffffffff) bad(`head.personality ${hex(head.personality)} is not a personality`);
  const resources = new Set<number>();
  head.rlimits.forEach((r, i) => {
    const where = `head.rlimits[${i}]`;
    if (r.resource >= RLIM_NLIMITS) bad(`${where}.resource ${r.resource} is not a resource (0..${RLIM_NLIMITS - 1})`);
    if (resources.has(r.resource)) bad(`${where}: resource ${r.resource} twice`);
    resources.add(r.resource);
    const soft = r.soft ?? Infinity;
    const hard = r.hard ?? Infinity;
    if (soft > hard) bad(`${where}: soft limit above the hard limit`);
  });
  const mm = head.mm;
  for (const [k, v] of Object.entries(mm)) userAddress(v, `head.mm.${k}`, bad);
  for (const [a, b] of [['startCode', 'endCode'], ['startData', 'endData'], ['startBrk', 'brk'], ['argStart', 'argEnd'], ['envStart', 'envEnd']] as const) {
    if (mm[a] > mm[b]) bad(`head.mm.${b} is below head.mm.${a}`);
  }
  if (head.auxv.length < 16 || head.auxv.length % 16 !== 0 || head.auxv.readBigUInt64LE(head.auxv.length - 16) !== 0n) {
    bad('head.auxv is not (type, value) pairs ending with AT_NULL');
  }
  checkMappings(head.mappings, bad);
  checkRegs(head.regs, head.xstate, 'head', bad);
  checkSignals(head, bad);
  checkRseq(head.rseq, 'head.rseq', bad);
  checkRobustList(head.robustList, 'head.robustList', bad);
  userAddress(head.tidAddress, 'head.tidAddress', bad);
  checkThreads(head, bad);
  checkAttributes(head, bad);
  let lastTimer = -1;
  head.posixTimers.forEach((t, i) => {
    const where = `head.posixTimers[${i}]`;
    if (t.id <= lastTimer || t.id > 0x7fffffff) bad(`${where}.id ${t.id} is not a timer id above the one before`);
    lastTimer = t.id;
    if (!TIMER_CLOCKS.includes(t.clock)) bad(`${where}.clock ${t.clock} is not a clock a process makes timers of (${TIMER_CLOCKS.join(', ')})`);
    if (t.signal < 1 || t.signal > SIGNALS) {
      if (t.notify !== 'none') bad(`${where}.signal ${t.signal} is not 1..${SIGNALS}`);
    }
    if (t.signal === SIGKILL || t.signal === SIGSTOP) {
      if (t.notify !== 'none') bad(`${where} would send ${t.signal === SIGKILL ? 'SIGKILL' : 'SIGSTOP'}, which cr does not queue to the husk`);
    }
    for (const [k, [sec, ns]] of [['interval', t.interval], ['left', t.left]] as const) if (ns >= 1e9 || sec > 2 ** 40) bad(`${where}.${k} is not [seconds, nanoseconds below 1e9]`);
  });
  head.locks.forEach((l, i) => {
    const where = `head.locks[${i}]`;
    if (l.kind === 'posix' || l.kind === 'ofd') {
      if (l.end !== null && l.end < l.start) bad(`${where} ends before it starts`);
    } else if (l.start !== 0 || l.end !== null) bad(`${where}: a ${l.kind} lock has no byte range`);
  });
}
