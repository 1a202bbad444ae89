// `cr show IMAGE [--json]`: an image of either kind (or a JSON fd table) as a readable table, or
// as the JSON fd table `plan` accepts; for a whole-process image, a few lines about the process first.
import { tableJson } from '../model/json.js';
import { show, type ShowResult } from '../api/show.js';
import { badInput } from '../errors.js';
import { defineCommand, parseCommand } from '../command-line.js';
import type { Image } from '../image/format.js';
import { decodeRegs, PAGE_SIZE, type ProcessImage } from '../image/process-format.js';
import { guardRegions } from '../image/process-head.js';
import { kindOf } from '../kinds/registry.js';
import { O_ACCMODE, O_RDONLY, O_WRONLY, pipeOf, viewOf, type Desc, type Fd, type FdTable, type FdTables, type Pipe } from '../model/fdtable.js';
import { flagNames } from '../model/flags.js';
import { jsonForTerminal, printable } from '../printable.js';
import { describeExit, type TreeMember } from '../model/tree.js';
import { signalName } from '../../bridge/signal.js';

export const command = defineCommand({
  name: 'show',
  summary: 'Print an image or a JSON fd table: the process, its fds, descriptions and pipes.',
  usage: ['show IMAGE [--json [--all]]'],
  operands: [{ name: 'IMAGE', help: 'an image, or a JSON fd table; - reads it from stdin' }],
  flags: {
    json: { help: 'print the fd table as the JSON that plan and restore accept (a tree\'s with the tree beside it)' },
    all: { help: 'with --json: the whole image, the tree and the process head too (schema: docs/image-format.md)' },
  },
  examples: ['show app.img', 'show fds.img --json > table.json', 'show app.img --json --all'],
});
/** How many of a description's other fds a row names before `+N more`. */
const SHARED_SHOWN = 4;
/** The fewest consecutive alike fds shown as one `first-last` row. */
const MIN_RANGE = 4;

function endOf(desc: Desc): string {
  if (desc.kind !== 'pipe' && desc.kind !== 'fifo') return '';
  const mode = desc.flags & O_ACCMODE;
  return mode === O_RDONLY ? 'read' : mode === O_WRONLY ? 'write' : 'both';
}

const size = (n: number): string => (n % 1048576 === 0 ? `${n / 1048576} MiB` : n % 1024 === 0 ? `${n / 1024} KiB` : `${n} B`);

function pipeSummary(pipe: Pipe): string {
  const bytes = pipe.data.length;
  const packets = pipe.packets ? ` in ${pipe.packets.length} packets` : '';
  return `pipe ${pipe.id}: ${bytes} B${packets} of ${size(pipe.capacity)}`;
}

/** Up to `max` bytes as an escaped string, for a glance at what a pipe holds. */
function preview(data: Buffer, max = 40): string {
  let out = '';
  for (const b of data.subarray(0, max)) {
    if (b === 0x5c) out += '\\\\';
    else if (b === 0x22) out += '\\"';
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else if (b === 0x0a) out += '\\n';
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return `"${out}"${data.length > max ? '...' : ''}`;
}

/** Index of the first element of ascending `all` that is at least n. */
function lowerBound(all: number[], n: number): number {
  let lo = 0;
  let hi = all.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (all[mid]! < n) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The fds on a description (`all` ascending) other than first..last: the first few and a count of
 * the rest, so a description with thousands of dups costs each row a few numbers, not thousands.
 */
function sharedWith(first: number, last: number, all: number[]): string {
  const start = lowerBound(all, first);
  const end = lowerBound(all, last + 1);
  const others = [...all.slice(0, Math.min(start, SHARED_SHOWN)), ...all.slice(end, end + SHARED_SHOWN)].slice(0, SHARED_SHOWN);
  const more = all.length - (end - start) - others.length;
  return others.length === 0 ? '-' : `${others.join(',')}${more > 0 ? ` +${more} more` : ''}`;
}

/**
 * Ascending fds as rows: a run of MIN_RANGE or more consecutive fds on one description, alike
 * in close-on-exec too, is one row (thousands of dups are one line, not thousands); shorter runs
 * are clearer as rows of their own.
 */
function rowsOf(sorted: Fd[]): Fd[][] {
  const runs: Fd[][] = [];
  for (const f of sorted) {
    const run = runs[runs.length - 1];
    const last = run?.[run.length - 1];
    if (run && last && last.fd + 1 === f.fd && last.desc === f.desc && last.cloexec === f.cloexec) run.push(f);
    else runs.push([f]);
  }
  return runs.flatMap((run) => (run.length >= MIN_RANGE ? [run] : run.map((f) => [f])));
}

/** One process's fds as rows, and its limit. */
function renderFds(table: FdTable): string[] {
  const descs = new Map(table.descs.map((d) => [d.id, d]));
  const pipes = new Map(table.pipes.map((p) => [p.id, p]));
  const sorted = [...table.fds].sort((a, b) => a.fd - b.fd);
  const fdsOf = new Map<number, number[]>();
  for (const f of sorted) {
    const list = fdsOf.get(f.desc);
    if (list) list.push(f.fd);
    else fdsOf.set(f.desc, [f.fd]);
  }
  const rows = [['fd', 'kind', 'end', 'flags', 'cloexec', 'shared-with', 'path/offset/state', 'pipe bytes']];
  for (const run of rowsOf(sorted)) {
    const f = run[0]!;
    const last = run[run.length - 1]!.fd;
    const d = descs.get(f.desc)!;
    const where = kindOf(d).detail(d);
    const pipeId = pipeOf(d);
    const pipe = pipeId === undefined ? undefined : pipes.get(pipeId);
    rows.push([
      last === f.fd ? String(f.fd) : `${f.fd}-${last}`, printable(d.kind), endOf(d), flagNames(d.flags), f.cloexec ? 'yes' : 'no',
      sharedWith(f.fd, last, fdsOf.get(f.desc)!), where || '-',
      pipe ? pipeSummary(pipe) : '',
    ]);
  }
  // A loop, not Math.max(...column): a million rows would overflow the stack as arguments.
  const widths = rows[0]!.map(() => 0);
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i]!, c.length)));
  const lines = rows.map((r) => r.map((c, i) => (i === 0 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd());
  lines.push('', `rlimit NOFILE: soft ${table.rlimit.soft}, hard ${table.rlimit.hard}`);
  return lines;
}

function renderPipes(pipes: Pipe[]): string[] {
  return pipes.map((p) => {
    const data = p.data;
    const packets = p.packets ? `, packets ${p.packets.join(',')}` : '';
    return `${pipeSummary(p)}${packets}${data.length ? `: ${preview(data)}` : ''}`;
  });
}

/**
 * Each process's fds (headed by its pid and parent when there are several; a description's id
 * says which processes share it), then the pipes once.
 */
function renderTables(tables: FdTables): string[] {
  if (tables.processes.length === 1) return [...renderFds(viewOf(tables, 0)), ...renderPipes(tables.pipes)];
  const lines: string[] = [];
  const holders = new Map<number, Set<number>>();
  for (const p of tables.processes) for (const f of p.fds) (holders.get(f.desc) ?? holders.set(f.desc, new Set()).get(f.desc)!).add(p.pid);
  const shared = tables.descs.filter((d) => holders.get(d.id)!.size > 1);
  tables.processes.forEach((p, i) => {
    lines.push(`process ${p.pid}${p.parent === undefined ? '' : `, child of ${p.parent}`}: ${p.fds.length} fds`);
    lines.push(...renderFds(viewOf(tables, i)), '');
  });
  for (const d of shared) {
    lines.push(`description ${d.id} (${printable(d.kind)}${endOf(d) ? ` ${endOf(d)} end` : ''}) is shared by processes ${[...holders.get(d.id)!].join(', ')}`);
  }
  return [...lines, ...renderPipes(tables.pipes)];
}

function renderHeader(path: string, image: Image): string[] {
  const proc = image.process;
  return [
    `image ${printable(path)}: format ${image.formatVersion}, written by cr ${printable(image.toolVersion)} on Linux ${printable(image.kernel)}`,
    `process ${proc.pid} (${printable(proc.comm)}), uid ${proc.uid}: ${proc.cmdline.map((a) => `"${printable(a, '"')}"`).join(' ')}`,
    '',
  ];
}

/** How many guard regions `show` lists before `+N more`. */
const GUARDS_SHOWN = 8;

/** The image's guard regions (MADV_GUARD_INSTALL) in one line, or none when it has none. */
function guardLine(mappings: ProcessImage['head']['mappings']): string[] {
  const all = guardRegions(mappings);
  if (all.length === 0) return [];
  const pages = all.reduce((n, g) => n + (g.end - g.start) / PAGE_SIZE, 0);
  const shown = all.slice(0, GUARDS_SHOWN).map((g) => `${g.start.toString(16)}-${g.end.toString(16)}`);
  const more = all.length > GUARDS_SHOWN ? ` +${all.length - GUARDS_SHOWN} more` : '';
  return [`guard regions: ${all.length} (${pages} page${pages === 1 ? '' : 's'}, installed again at restart): ${shown.join(', ')}${more}`];
}

/** The memfds and deleted files mapped shared, one line: each by the fd that holds it (or what it is, held by none), with the ranges it is mapped at. */
function unnamedLine(head: ProcessImage['head'], fds: ReadonlyArray<{ fd: number; desc: number }>): string[] {
  const { mappings } = head;
  const name = (desc: number): string => {
    const fd = fds.find((f) => f.desc === desc)?.fd;
    if (fd !== undefined) return `fd ${fd}`;
    const u = head.unheld.find((x) => x.id === desc);
    return u ? `no fd (${kindOf(u).detail(u as never)})` : `description ${desc}`;
  };
  const at = new Map<number, string[]>();
  for (const m of mappings) if (m.unnamed) at.set(m.unnamed.desc, [...(at.get(m.unnamed.desc) ?? []), `${m.start.toString(16)}-${m.end.toString(16)} @ ${m.unnamed.offset}`]);
  if (at.size === 0) return [];
  return [`mapped shared (memfds, deleted files): ${[...at].map(([desc, ranges]) => `${name(desc)} at ${ranges.join(', ')}`).join('; ')}`];
}

const bytes = (n: number): string => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

/** What a whole-process image holds besides the fd table: memory, registers, where it runs from. */
function renderProcess(summary: ProcessImage): string[] {
  const { head } = summary;
  // A tree's memory per member is in its tree lines; this is the root's.
  const pageBytes = summary.members[0]!.pageBytes;
  const what = summary.tree.length > 1 ? `the root, process ${head.process.pid}` : 'whole process';
  const regs = decodeRegs(head.regs);
  const hex = (v: bigint): string => `0x${BigInt.asUintN(64, v).toString(16)}`;
  return [
    `${what}: ${head.mappings.length} mappings, ${bytes(pageBytes)} of pages in the image; executable ${head.exe ? printable(head.exe.path) : '(gone)'}, cwd ${printable(head.cwd)}${head.cwdRemoved === null ? '' : ` (removed; made again empty, mode ${head.cwdRemoved.toString(8).padStart(4, '0')}, and removed)`}`,
    `registers: saved (rip ${hex(regs.rip)}, rsp ${hex(regs.rsp)}), ${head.xstate.length} bytes of FPU/vector state; ` +
      `${head.signals.pending.length} pending signals; dumped on Linux ${printable(head.kernel)}`,
    ...threadLine(head.threads),
    ...guardLine(head.mappings),
    ...unnamedLine(head, summary.fdImage.table.processes[0]!.fds),
    '',
  ];
}

const THREADS_SHOWN = 8;

/** The threads besides the leader, by id and name (the first few). */
function threadLine(threads: ProcessImage['head']['threads']): string[] {
  if (threads.length === 0) return [];
  const named = threads.slice(0, THREADS_SHOWN).map((t) => `${t.tid} ${printable(t.comm)}`);
  const more = threads.length > THREADS_SHOWN ? `, +${threads.length - THREADS_SHOWN} more` : '';
  return [`threads: ${threads.length} besides the leader: ${named.join(', ')}${more}`];
}

/** show --json --all: what kind of image, who wrote it, the tree, the (root) process head, the dropped fds, the fd table. */
function wholeJson(r: ShowResult): object {
  return {
    kind: r.kind,
    image: r.image ? { formatVersion: r.image.formatVersion, toolVersion: r.image.toolVersion, kernel: r.image.kernel, process: r.image.process, dropped: r.image.dropped } : null,
    tree: r.tree ?? null,
    process: r.head ?? null,
    table: r.table,
  };
}

/** A tree of more than one process, for show --json: its table with the tree beside it (plan and show read both back). */
const isTree = (r: ShowResult): boolean => (r.tree?.length ?? 0) > 1;

/**
 * The tree, pstree-like: each process under its parent, with its command, its group and session
 * where they are not its parent's (always for the root), and what it holds; a zombie with how it
 * ended.
 */
function renderTree(tree: TreeMember[], tables: FdTables, whole: ProcessImage | undefined): string[] {
  const fdsOf = new Map(tables.processes.map((p) => [p.pid, p.fds.length]));
  const memoryOf = new Map((whole?.members ?? []).map((m) => [m.pid, m.pageBytes]));
  const threadsOf = new Map((whole?.members ?? []).map((m) => [m.pid, m.head.threads.length]));
  const byPid = new Map(tree.map((m) => [m.pid, m]));
  const children = new Map<number, TreeMember[]>();
  for (const m of tree.slice(1)) (children.get(m.ppid) ?? children.set(m.ppid, []).get(m.ppid)!).push(m);
  const zombies = tree.filter((m) => m.zombie).length;
  const lines = [`tree: ${tree.length} processes${zombies ? ` (${zombies} zombie${zombies === 1 ? '' : 's'})` : ''}, root ${tree[0]!.pid} (its parent ${tree[0]!.ppid} is outside the tree)`];
  const walk = (m: TreeMember, prefix: string, last: boolean, root: boolean): void => {
    const parent = byPid.get(m.ppid);
    const ids = [root || m.pgid !== parent?.pgid ? `pgid ${m.pgid}` : '', root || m.sid !== parent?.sid ? `sid ${m.sid}` : ''].filter(Boolean).join(' ');
    const command = m.cmdline.length > 0 ? m.cmdline.map((a) => printable(a)).join(' ') : `[${printable(m.comm)}]`;
    const shown = command.length > 60 ? `${command.slice(0, 57)}...` : command;
    const what = m.zombie
      ? `zombie, ${describeExit(m.zombie, signalName)}`
      : `${fdsOf.get(m.pid) ?? 0} fds${memoryOf.has(m.pid) ? `, ${bytes(memoryOf.get(m.pid)!)} of pages` : ''}${threadsOf.get(m.pid) ? `, ${threadsOf.get(m.pid)! + 1} threads` : ''}${m.stopped ? ', stopped' : ''}`;
    lines.push(`${prefix}${root ? '' : last ? '`- ' : '|- '}${m.pid} ${shown}${ids ? `  (${ids})` : ''}: ${what}`);
    const kids = children.get(m.pid) ?? [];
    kids.forEach((k, i) => walk(k, root ? prefix : `${prefix}${last ? '   ' : '|  '}`, i === kids.length - 1, false));
  };
  walk(tree[0]!, '', true, true);
  return [...lines, ''];
}

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommand(command, args);
  if (parsed === undefined) return 0;
  const shownImage = show(parsed.operands[0]!);
  const { table, image, process: whole, path } = shownImage;
  if (parsed.values.all && !parsed.values.json) badInput('--all is for --json (without it, show prints everything already)');
  if (parsed.values.json) {
    // --all: the documented whole-image schema (docs/image-format.md); without it the table alone, as plan takes it.
    const out = parsed.values.all ? wholeJson(shownImage) : isTree(shownImage) ? { ...table, tree: shownImage.tree } : table;
    console.log(jsonForTerminal(tableJson(out, 2)));
    return 0;
  }
  const tree = isTree(shownImage) ? renderTree(shownImage.tree!, table, whole) : [];
  const lines = [...(image ? renderHeader(path, image) : []), ...tree, ...(whole ? renderProcess(whole) : []), ...renderTables(table)];
  for (const d of image?.dropped ?? []) lines.push(`dropped fd ${d.fd} (${printable(d.kind)}): ${printable(d.reason)}`);
  console.log(lines.join('\n'));
  return 0;
}
