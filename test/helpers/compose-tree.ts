// A tree image made of single-process images (test only): each dumped process becomes a member
// whose recorded parent, group and session the test chooses, plus zombies that never ran. It
// exercises a tree's restart (src/restart/restart-tree.ts) with real memory, registers and fds on
// its own, whatever a dump of a real tree records; the description and pipe ids of each part are
// moved so that they stay distinct in the one fd table.
import type { Desc } from '../../src/model/fdtable.js';
import { ProcessImage, ProcessImageWriter } from '../../src/image/process-format.js';
import type { TreeMember, ZombieExit } from '../../src/model/tree.js';

export interface Part {
  /** a single-process image, or a zombie's pid and status */
  image?: string;
  zombie?: { pid: number; exit: ZombieExit };
  /** index of its parent among the parts; -1 for the root (which keeps its recorded parent) */
  parent: number;
  /** index of the part whose pid is its group (its session); -1: the root's recorded one */
  group: number;
  session: number;
}

export function composeTree(out: string, parts: Part[]): void {
  const images = parts.map((p) => (p.image === undefined ? null : ProcessImage.read(p.image)));
  const pidOf = (i: number): number => images[i]?.members[0]!.pid ?? parts[i]!.zombie!.pid;
  const root = images[0]!.tree[0]!;
  const members: TreeMember[] = parts.map((p, i) => {
    const base = images[i]?.tree[0] ?? { comm: `z${pidOf(i)}`, cmdline: [], stopped: false };
    return {
      pid: pidOf(i),
      ppid: p.parent < 0 ? root.ppid : pidOf(p.parent),
      pgid: p.group < 0 ? root.pgid : pidOf(p.group),
      sid: p.session < 0 ? root.sid : pidOf(p.session),
      comm: base.comm,
      cmdline: base.cmdline,
      stopped: false,
      zombie: p.zombie?.exit ?? null,
    };
  });
  const descs: Desc[] = [];
  const pipes: ProcessImage['fdImage']['table']['pipes'] = [];
  const processes: ProcessImage['fdImage']['table']['processes'] = [];
  images.forEach((img, i) => {
    if (img === null) return;
    const t = img.fdImage.table;
    const d0 = descs.length === 0 ? 0 : Math.max(...descs.map((d) => d.id)) + 1;
    const p0 = pipes.length === 0 ? 0 : Math.max(...pipes.map((p) => p.id)) + 1;
    for (const d of t.descs) descs.push({ ...d, id: d.id + d0, ...('pipe' in d ? { pipe: d.pipe + p0 } : {}) } as Desc);
    for (const p of t.pipes) pipes.push({ ...p, id: p.id + p0 });
    const proc = t.processes[0]!;
    processes.push({ pid: proc.pid, ...(i === 0 ? {} : { parent: members[i]!.ppid }), fds: proc.fds.map((f) => ({ ...f, desc: f.desc + d0 })), rlimit: proc.rlimit });
  });
  const w = ProcessImageWriter.create(out, { force: true });
  w.tree(members);
  w.fds({ ...images[0]!.fdImage, table: { descs, pipes, processes } });
  for (const img of images) {
    if (img === null) continue;
    const m = img.members[0]!;
    w.head(m.head);
    for (const run of m.runs) w.pages(run.mapping, run.addr, run.data);
  }
  w.commit();
}
