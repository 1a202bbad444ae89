// `cr show IMAGE [--json]`: an image of either kind (or a JSON fd table) as a readable table, or
// as the JSON fd table `plan` accepts; for a whole-process image, a few lines about the process first.
import { parseArgs } from 'node:util';
import { badInput } from '../errors.js';
import { loadTableInput, type Image, type ProcessSummary } from '../image/format.js';
import { decodeRegs } from '../image/process-format.js';
import { O_ACCMODE, O_RDONLY, O_WRONLY, type Desc, type FdTable, type Pipe } from '../model/fdtable.js';
import { flagNames } from '../model/flags.js';

const USAGE = 'usage: cr show IMAGE [--json]';

function endOf(desc: Desc): string {
  if (desc.kind !== 'pipe' && desc.kind !== 'fifo') return '';
  const mode = desc.flags & O_ACCMODE;
  return mode === O_RDONLY ? 'read' : mode === O_WRONLY ? 'write' : 'both';
}

const size = (n: number): string => (n % 1048576 === 0 ? `${n / 1048576} MiB` : n % 1024 === 0 ? `${n / 1024} KiB` : `${n} B`);

function pipeSummary(pipe: Pipe): string {
  const bytes = Buffer.byteLength(pipe.data, 'base64');
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

function renderTable(table: FdTable): string[] {
  const descs = new Map(table.descs.map((d) => [d.id, d]));
  const pipes = new Map(table.pipes.map((p) => [p.id, p]));
  const fdsOf = new Map<number, number[]>();
  for (const f of table.fds) fdsOf.set(f.desc, [...(fdsOf.get(f.desc) ?? []), f.fd]);
  const rows = [['fd', 'kind', 'end', 'flags', 'cloexec', 'shared-with', 'path/offset', 'pipe bytes']];
  for (const f of [...table.fds].sort((a, b) => a.fd - b.fd)) {
    const d = descs.get(f.desc)!;
    const shared = fdsOf.get(f.desc)!.filter((n) => n !== f.fd);
    const where = d.path === undefined ? '' : d.offset === undefined ? d.path : `${d.path} @ ${d.offset}`;
    const pipe = d.pipe === undefined ? undefined : pipes.get(d.pipe);
    rows.push([
      String(f.fd), d.kind, endOf(d), flagNames(d.flags), f.cloexec ? 'yes' : 'no', shared.join(',') || '-', where || '-',
      pipe ? pipeSummary(pipe) : '',
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((c, i) => (i === 0 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd());
  lines.push('', `rlimit NOFILE: soft ${table.rlimit.soft}, hard ${table.rlimit.hard}`);
  for (const p of table.pipes) {
    const data = Buffer.from(p.data, 'base64');
    const packets = p.packets ? `, packets ${p.packets.join(',')}` : '';
    lines.push(`${pipeSummary(p)}${packets}${data.length ? `: ${preview(data)}` : ''}`);
  }
  return lines;
}

function renderHeader(path: string, image: Image): string[] {
  const proc = image.process;
  return [
    `image ${path}: format ${image.formatVersion}, written by cr ${image.toolVersion} on Linux ${image.kernel}`,
    `process ${proc.pid} (${proc.comm}), uid ${proc.uid}: ${proc.cmdline.map((a) => JSON.stringify(a)).join(' ')}`,
    '',
  ];
}

const bytes = (n: number): string => (n >= 1048576 ? `${(n / 1048576).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} B`);

/** What a whole-process image holds besides the fd table: memory, registers, where it runs from. */
function renderProcess(summary: ProcessSummary): string[] {
  const { head, pageBytes } = summary;
  const regs = decodeRegs(head.regs);
  const hex = (v: bigint): string => `0x${BigInt.asUintN(64, v).toString(16)}`;
  return [
    `whole process: ${head.mappings.length} mappings, ${bytes(pageBytes)} of pages in the image; executable ${head.exe?.path ?? '(gone)'}, cwd ${head.cwd}`,
    `registers: saved (rip ${hex(regs.rip)}, rsp ${hex(regs.rsp)}), ${head.xstate.length} bytes of FPU/vector state; ` +
      `${head.signals.pending.length} pending signals; dumped on Linux ${head.kernel}`,
    '',
  ];
}

export async function run(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args, options: { json: { type: 'boolean', default: false } }, strict: true, allowPositionals: true });
  } catch (err) {
    badInput(`${(err as Error).message.split('\n')[0]} (${USAGE})`);
  }
  if (parsed.positionals.length !== 1) badInput(USAGE);
  const path = parsed.positionals[0]!;
  const { table, image, process: whole } = loadTableInput(path);
  if (parsed.values.json) {
    console.log(JSON.stringify(table, null, 2));
    return 0;
  }
  const lines = [...(image ? renderHeader(path, image) : []), ...(whole ? renderProcess(whole) : []), ...renderTable(table)];
  for (const d of image?.dropped ?? []) lines.push(`dropped fd ${d.fd} (${d.kind}): ${d.reason}`);
  console.log(lines.join('\n'));
  return 0;
}
