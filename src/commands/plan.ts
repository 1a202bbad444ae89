// `cr plan INPUT [--json] [--target-fds LIST] [--rlimit N|SOFT:HARD] [--mode M]`:
// plan the restore of an image (or a JSON fd table) and check the plan with the
// simulator. Reads nothing but INPUT: no root, no ptrace.

import { plan as planImage, type TargetMode } from '../api.js';
import { defineCommand, parseCommand } from '../command-line.js';
import { formatOp } from '../plan/format.js';
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
  const { table, target, plan } = planImage(operands[0]!, { targetFds: values['target-fds'], rlimit: values.rlimit, mode: values.mode as TargetMode });

  if (values.json) {
    // Paths come from the image: DEL, C1 and format characters escaped as show --json does.
    console.log(jsonForTerminal(JSON.stringify({ ...plan, length: plan.ops.length, verified: true })));
    return 0;
  }
  const width = String(plan.ops.length).length;
  console.log(`plan: ${plan.ops.length} ops (lower bound ${plan.lowerBound}) for ${table.fds.length} fds, ${table.descs.length} descriptions, ${table.pipes.length} pipes`);
  console.log(`target: ${target.mode}, fds [${summariseFds(target.fds)}], RLIMIT_NOFILE ${target.rlimit.soft}:${target.rlimit.hard}`);
  plan.ops.forEach((op, i) => console.log(`  ${String(i + 1).padStart(width)}  ${formatOp(op)}`));
  for (const warning of plan.warnings) console.log(`warning: ${warning}`);
  console.log('verified: the simulator ends with exactly the image\'s table');
  return 0;
}

function summariseFds(fds: number[]): string {
  return fds.length > 8 ? `${fds.slice(0, 8).join(', ')}, ... (${fds.length})` : fds.join(', ');
}
