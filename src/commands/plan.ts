// `cr plan INPUT [--json] [--target-fds LIST] [--rlimit N|SOFT:HARD] [--mode M]`:
// plan the restore of an image (or a JSON fd table) and check the plan with the
// simulator. Reads nothing but INPUT: no root, no ptrace.

import { parseArgs } from 'node:util';
import { badInput, CrError } from '../errors.js';
import { loadTableInput } from '../image/format.js';
import { parseFdList, parseRlimit } from '../model/validate.js';
import type { PlanTarget, TargetMode } from '../plan/ops.js';
import { planRestore } from '../plan/planner.js';
import { formatOp } from '../plan/format.js';
import { verify } from '../sim/verify.js';

const MODES: TargetMode[] = ['fresh', 'into', 'into-exact'];

export async function run(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        json: { type: 'boolean', default: false },
        'target-fds': { type: 'string', default: '0-2' },
        rlimit: { type: 'string' },
        mode: { type: 'string', default: 'fresh' },
      },
    });
  } catch (err) {
    badInput((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (positionals.length !== 1) badInput('usage: plan INPUT [--json] [--target-fds LIST] [--rlimit N|SOFT:HARD] [--mode fresh|into|into-exact]');
  if (!MODES.includes(values.mode as TargetMode)) badInput(`--mode: expected one of ${MODES.join(', ')}`);

  const { table } = loadTableInput(positionals[0]);
  const target: PlanTarget = {
    fds: parseFdList(values['target-fds']),
    rlimit: values.rlimit === undefined ? { ...table.rlimit } : parseRlimit(values.rlimit),
    mode: values.mode as TargetMode,
  };
  const plan = planRestore(table, target);
  const check = verify(table, target, plan);
  if (!check.ok) {
    throw new CrError(`the plan failed the simulator's check${check.op === undefined ? '' : ` at op ${check.op + 1}`}: ${check.reason}`, 1);
  }

  if (values.json) {
    console.log(JSON.stringify({ ...plan, length: plan.ops.length, verified: true }));
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
