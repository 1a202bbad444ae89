// What a tree of processes read from an image may be (docs/process-image.md, TREE): each member's
// fields, the tree's rules (src/model/tree.ts), and its agreement with the fd table, whose
// processes are its live members in order. For the TREE record of a whole-process image and the
// `tree` of a JSON fd table (`show --json` of a tree image) alike.
import type { FdTables } from '../model/fdtable.js';
import { liveMembers, MAX_PID, treeProblem, type TreeMember, type ZombieExit } from '../model/tree.js';

type Bad = (what: string) => never;

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);

function exactly(v: unknown, keys: string[], where: string, bad: Bad): Record<string, unknown> {
  if (!isRecord(v)) bad(`${where} is not a map`);
  const obj = v as Record<string, unknown>;
  for (const k of keys) if (!Object.hasOwn(obj, k)) bad(`${where} has no ${k}`);
  for (const k of Object.keys(obj)) if (!keys.includes(k)) bad(`${where} has an unknown field ${JSON.stringify(k)}`);
  return obj;
}

function uint(v: unknown, where: string, bad: Bad): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(`${where} is not a non-negative integer`);
  return v as number;
}

function str(v: unknown, where: string, bad: Bad): string {
  if (typeof v !== 'string') bad(`${where} is not a string`);
  return v as string;
}

function bool(v: unknown, where: string, bad: Bad): boolean {
  if (typeof v !== 'boolean') bad(`${where} is not a boolean`);
  return v as boolean;
}

function zombieOf(v: unknown, where: string, bad: Bad): ZombieExit | null {
  if (v === null) return null;
  const z = exactly(v, ['code', 'signal', 'core'], where, bad);
  const exit: ZombieExit = {
    code: z.code === null ? null : uint(z.code, `${where}.code`, bad),
    signal: z.signal === null ? null : uint(z.signal, `${where}.signal`, bad),
    core: bool(z.core, `${where}.core`, bad),
  };
  if ((exit.code === null) === (exit.signal === null)) bad(`${where} has ${exit.code === null ? 'neither' : 'both'} an exit code and a signal`);
  if (exit.code !== null && exit.code > 255) bad(`${where}.code is not 0..255`);
  if (exit.signal !== null && (exit.signal < 1 || exit.signal > 64)) bad(`${where}.signal is not 1..64`);
  if (exit.core && exit.signal === null) bad(`${where} dumped a core without a signal`);
  return exit;
}

/** A member's controlling terminal: its device number, its termios2 (44 bytes as hex) when read, its foreground group when it had one. */
function cttyOf(v: unknown, where: string, bad: Bad): NonNullable<TreeMember['ctty']> {
  const optional = ['termios', 'fg'].filter((k) => isRecord(v) && Object.hasOwn(v, k));
  const t = exactly(v, ['rdev', ...optional], where, bad);
  const rdev = uint(t.rdev, `${where}.rdev`, bad);
  if (rdev === 0) bad(`${where}.rdev is 0 (no terminal is recorded as no ctty)`);
  const out: NonNullable<TreeMember['ctty']> = { rdev };
  if (t.termios !== undefined) {
    if (typeof t.termios !== 'string' || !/^[0-9a-f]{88}$/.test(t.termios)) bad(`${where}.termios is not 44 bytes of lowercase hex`);
    out.termios = t.termios as string;
  }
  if (t.fg !== undefined) {
    const fg = uint(t.fg, `${where}.fg`, bad);
    if (fg < 1 || fg > MAX_PID) bad(`${where}.fg is not a process group 1..${MAX_PID}`);
    out.fg = fg;
  }
  return out;
}

/** The members of a tree (a list at `where`), every field checked, then the tree's rules. */
export function parseTreeMembers(v: unknown, where: string, bad: Bad): TreeMember[] {
  if (!Array.isArray(v)) bad(`${where} is not a list`);
  const members = (v as unknown[]).map((x, i): TreeMember => {
    const w = `${where}[${i}]`;
    const m = exactly(x, ['pid', 'ppid', 'pgid', 'sid', 'comm', 'cmdline', 'stopped', 'zombie', ...(isRecord(x) && Object.hasOwn(x, 'ctty') ? ['ctty'] : [])], w, bad);
    const comm = str(m.comm, `${w}.comm`, bad);
    if (comm.length > 15) bad(`${w}.comm is longer than 15 characters`);
    if (!Array.isArray(m.cmdline)) bad(`${w}.cmdline is not a list`);
    return {
      pid: uint(m.pid, `${w}.pid`, bad),
      ppid: uint(m.ppid, `${w}.ppid`, bad),
      pgid: uint(m.pgid, `${w}.pgid`, bad),
      sid: uint(m.sid, `${w}.sid`, bad),
      comm,
      cmdline: (m.cmdline as unknown[]).map((y, j) => str(y, `${w}.cmdline[${j}]`, bad)),
      stopped: bool(m.stopped, `${w}.stopped`, bad),
      zombie: zombieOf(m.zombie, `${w}.zombie`, bad),
      ...(m.ctty !== undefined ? { ctty: cttyOf(m.ctty, `${w}.ctty`, bad) } : {}),
    };
  });
  const problem = treeProblem(members);
  if (problem !== null) bad(`${where}: ${problem}`);
  return members;
}

/** The fd table's processes are the tree's live members, in its order, each with its parent (none for the root). */
export function checkTreeTable(members: readonly TreeMember[], tables: FdTables, bad: Bad): void {
  const live = liveMembers(members);
  const procs = tables.processes;
  if (procs.length !== live.length) bad(`its fd table holds ${procs.length} processes, the tree ${live.length} live ones`);
  for (const [i, p] of procs.entries()) {
    const m = live[i]!;
    if (p.pid !== m.pid) bad(`the fd table's process ${i} is ${p.pid}, the tree's ${m.pid}`);
    const parent = i === 0 ? undefined : m.ppid;
    if (p.parent !== parent) bad(`the fd table gives ${p.pid} ${p.parent === undefined ? 'no parent' : `parent ${p.parent}`}, the tree ${parent ?? 'none'}`);
  }
  // A pidfd refers to a member (a zombie included): restart points it at that member as restored.
  const pids = new Set(members.map((m) => m.pid));
  for (const d of tables.descs) if (d.kind === 'pidfd' && !pids.has(d.pid)) bad(`description ${d.id} is a pidfd of pid ${d.pid}, which is not a process of the tree`);
}
