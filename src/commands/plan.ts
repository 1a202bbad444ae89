// `cr plan INPUT [--json] [--target-fds LIST] [--rlimit N|SOFT:HARD] [--mode M]`:
// plan the restore of an image (or a JSON fd table) and check the plan with the
// simulator. Reads nothing but INPUT: no root, no ptrace.

import { plan as planImage } from '../api/plan.js';
import type { TargetMode } from '../model/restore-target.js';
import { defineCommand, parseCommand } from '../command-line.js';
import { TextOut, writeOps } from '../plan/format.js';
import { K_FORK, type Plan } from '../plan/ops.js';
import type { FdTables } from '../model/fdtable.js';
import type { PlanTarget } from '../model/restore-target.js';
import type { TreePlan } from '../plan/tree.js';
import { jsonForTerminal } from '../printable.js';

export const command = defineCommand({
  name: 'plan',
  summary: 'Plan the syscalls that restore an fd table and check them in the simulator (no root).',
  usage: ['plan INPUT [--json] [--target-fds LIST] [--rlimit N|SOFT:HARD] [--mode fresh|into|into-exact]'],
  operands: [{ name: 'INPUT', help: 'an image, or a JSON fd table; - reads it from stdin' }],
  flags: {
    json: { help: 'print the plan as JSON' },
    'target-fds': { value: 'LIST', default: '0-2', help: 'the fds the target has open already (e.g. 0-2,7)' },
    rlimit: { value: 'N|SOFT:HARD', help: 'the target\'s RLIMIT_NOFILE (default: the image\'s)' },
    mode: { value: 'fresh|into|into-exact', default: 'fresh', help: 'the target: a new process, a running one (restore --into), or one whose other fds close (--into --exact)' },
  },
  examples: ['plan app.img', 'plan table.json --mode into --target-fds 0-2,5 --rlimit 64'],
});

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommand(command, args);
  if (parsed === undefined) return 0;
  const { values, operands } = parsed;
  const { table, target, plan, tree } = planImage(operands[0]!, { targetFds: values['target-fds'], rlimit: values.rlimit, mode: values.mode as TargetMode });
  if (table.processes.length > 1) return printTree(table, target, tree, values.json === true);

  if (values.json) {
    // Paths come from the image: DEL, C1 and format characters escaped as show --json does.
    console.log(jsonForTerminal(JSON.stringify({ ...plan.toRecords(), length: plan.length, verified: true })));
    return 0;
  }
  // One write of the whole text, written from the plan's words: a line per op through
  // console.log, or a string per line, costs more than the plan itself for a table of 100,000 fds.
  const out = new TextOut(32 * plan.length + 1024);
  out.line(`plan: ${plan.length} ops (lower bound ${plan.lowerBound}) for ${table.processes[0]!.fds.length} fds, ${table.descs.length} descriptions, ${table.pipes.length} pipes`);
  out.line(`target: ${target.mode}, fds [${summariseFds(target.fds)}], RLIMIT_NOFILE ${target.rlimit.soft}:${target.rlimit.hard}`);
  writeOps(out, plan.words, '  ');
  for (const warning of plan.warnings) out.line(`warning: ${warning}`);
  out.line('verified: the simulator ends with exactly the image\'s table');
  writeAll(out);
  return 0;
}

const list = (ids: number[]): string => ids.join(', ');

/**
 * A tree's plan: the cross-process order (who creates each object, who inherits it, when each
 * child is forked), then each process's ops.
 */
function printTree(tables: FdTables, target: PlanTarget, tree: TreePlan, json: boolean): number {
  if (json) {
    const processes = tree.processes.map((p) => ({
      pid: p.pid,
      ...(p.parent === undefined ? {} : { parent: p.parent }),
      creates: p.creates,
      pipes: p.pipes,
      inherits: p.inherits,
      carries: p.carries,
      ...p.plan.toRecords(),
      length: p.plan.length,
    }));
    console.log(jsonForTerminal(JSON.stringify({ processes, verified: true })));
    return 0;
  }
  const total = tree.processes.reduce((n, p) => n + p.plan.length, 0);
  const fds = tables.processes.reduce((n, p) => n + p.fds.length, 0);
  const out = new TextOut(32 * total + 1024);
  out.line(`plan: ${tree.processes.length} processes, ${total} ops in all for ${fds} fds, ${tables.descs.length} descriptions, ${tables.pipes.length} pipes`);
  out.line(`target of each root: ${target.mode}, fds [${summariseFds(target.fds)}], RLIMIT_NOFILE ${target.rlimit.soft}:${target.rlimit.hard}`);
  out.line('order: each process runs its ops, then forks its children (a child starts with its table as it is then), then closes what it carried for them');
  for (const p of tree.processes) {
    const roots = p.parent === undefined ? 'a root' : `child of ${p.parent}, forked at op ${forkOf(tree.processes.find((q) => q.pid === p.parent)!.plan, p.pid) + 1} of ${p.parent}`;
    out.line(`process ${p.pid} (${roots}): ${p.plan.length} ops (lower bound ${p.plan.lowerBound})`);
    if (p.creates.length > 0) out.line(`  creates descriptions ${list(p.creates)}${p.pipes.length > 0 ? ` (pipes ${list(p.pipes)})` : ''}`);
    if (p.inherits.length > 0) out.line(`  inherits ${p.inherits.map((h) => `description ${h.desc} at fd ${h.from}`).join(', ')}`);
    if (p.carries.length > 0) out.line(`  carries ${p.carries.map((c) => `description ${c.desc} at fd ${c.fd}`).join(', ')} for its children`);
    writeOps(out, p.plan.words, '    ');
    for (const warning of p.plan.warnings) out.line(`  warning: ${warning}`);
  }
  out.line('verified: the simulator ends with exactly the image\'s table in every process, each shared description one object');
  writeAll(out);
  return 0;
}

/** The index of the op of `plan` that forks `pid`, or -1. */
function forkOf(plan: Plan, pid: number): number {
  const ops = plan.words;
  for (let i = ops.find(K_FORK); i >= 0; i = ops.find(K_FORK, i + 1)) if (ops.field(i, 1) === pid) return i;
  return -1;
}

/** The text to stdout in one console.log (which ends it with the newline its last line has). */
function writeAll(out: TextOut): void {
  console.log(out.toString(1));
}

function summariseFds(fds: number[]): string {
  return fds.length > 8 ? `${fds.slice(0, 8).join(', ')}, ... (${fds.length})` : fds.join(', ');
}
