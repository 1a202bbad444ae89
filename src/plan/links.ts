// Links: what a description refers to that must exist before it can (an epoll's items, each a
// watched description kept under an fd number). The wasm planner makes every description; this
// pass, after it, adds each link where the table is final, so the planner stays kind-agnostic and
// every target exists. A link is made with its target at the link's own number (the kernel keys an
// epoll item by file and number): when that number holds the target already, one call; when it is
// free, the target is dup'ed there for the call and closed again; when another description sits
// there, that one is lifted above every number in use, the target put in its place for the call,
// and it is put back with its close-on-exec bit. Deterministic: the order is the table's.
import type { Desc, FdTable } from '../model/fdtable.js';
import { kindOf } from '../kinds/registry.js';
import type { PlanTarget } from '../model/restore-target.js';
import { OpWords, type Op } from './ops.js';
import { PlanImpossible } from './planner-error.js';

/** The ops that make every link of `table`'s descriptions, placed before the plan's closing prlimit. */
export function addLinks(words: OpWords, table: FdTable, target: PlanTarget): OpWords {
  const inherited = new Set((target.inherited ?? []).map((h) => h.desc));
  const linked = table.descs.filter((d) => !inherited.has(d.id) && (kindOf(d).links?.(d).length ?? 0) > 0);
  if (linked.length === 0) return words;
  // Only a table with links comes here: its ops as records, put back as words at the end.
  const ops = words.toOps();

  const at = new Map(table.fds.map((f) => [f.fd, f]));
  const fdsOf = new Map<number, number[]>();
  for (const f of table.fds) {
    const list = fdsOf.get(f.desc);
    if (list) list.push(f.fd);
    else fdsOf.set(f.desc, [f.fd]);
  }
  // What stays open besides the image's fds at the end: the live target's own, in 'into' mode.
  const kept = new Set(target.mode === 'into' ? target.fds.filter((fd) => !at.has(fd)) : []);
  let end = ops.length;
  while (end > 0 && ops[end - 1]!.op === 'prlimit') end--;
  let soft = target.rlimit.soft;
  for (let i = 0; i < end; i++) {
    const op = ops[i]!;
    if (op.op === 'prlimit') soft = op.soft;
  }
  const spare = Math.max(-1, ...table.fds.map((f) => f.fd), ...kept) + 1;

  const out: Op[] = [];
  for (const d of linked) {
    const kind = kindOf(d) as { links(d: Desc): Array<{ target: number; fd: number }>; linkText(d: Desc, i: number, fd: number): string };
    const own = fdsOf.get(d.id)!;
    kind.links(d).forEach((link, item) => {
      const what = `description ${d.id} (${d.kind}) item ${item}`;
      const from = fdsOf.get(link.target)?.[0];
      if (from === undefined) throw new PlanImpossible(`${what} refers to description ${link.target}, which this process holds at no fd`);
      if (link.fd >= soft) throw new PlanImpossible(`${what} is kept under fd ${link.fd}, not below the soft RLIMIT_NOFILE ${soft} the restore runs with`);
      if (kept.has(link.fd)) throw new PlanImpossible(`${what} is kept under fd ${link.fd}, which is the target's own fd (not the image's)`);
      const here = at.get(link.fd);
      const call = (fd: number): Op => ({ op: 'link', desc: d.id, item, fd, call: kind.linkText(d, item, fd) });
      if (here?.desc === link.target) {
        out.push(call(own[0]!));
        return;
      }
      if (here === undefined) {
        out.push({ op: 'dup2', from, to: link.fd, cloexec: true }, call(own[0]!), { op: 'close', fd: link.fd });
        return;
      }
      if (spare >= soft) throw new PlanImpossible(`${what}: no fd number above the table's is free below the soft RLIMIT_NOFILE ${soft} to hold fd ${link.fd} aside`);
      // The description's own fd may be the one lifted aside: the call then goes through its copy.
      const epfd = own.find((fd) => fd !== link.fd) ?? spare;
      out.push(
        { op: 'dupfd', from: link.fd, min: spare, cloexec: true, fd: spare },
        { op: 'dup2', from, to: link.fd, cloexec: true },
        call(epfd),
        { op: 'dup2', from: spare, to: link.fd, cloexec: here.cloexec },
        { op: 'close', fd: spare },
      );
    });
  }
  return OpWords.fromOps([...ops.slice(0, end), ...out, ...ops.slice(end)]);
}
