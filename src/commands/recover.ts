// `cr recover [PID]`: put back a process a killed cr left stopped in the middle of a dump or a
// restore --into (src/restore/recover.ts); without PID, list the processes that need it.
import { defineCommand, parseCommand } from '../command-line.js';
import { badInput } from '../errors.js';
import { listRecoverable, recover } from '../restore/recover.js';

export const command = defineCommand({
  name: 'recover',
  summary: 'Put back a process that a killed cr left stopped (registers, signal mask, memory, fds) and let it run.',
  usage: ['recover [PID]'],
  operands: [{ name: 'PID', help: 'the process; without it, list those that need recovering', optional: true }],
  flags: {},
  examples: ['recover', 'recover 4242'],
});

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommand(command, args);
  if (parsed === undefined) return 0;
  const [arg] = parsed.operands;
  if (arg === undefined) {
    const lines = listRecoverable();
    console.log(lines.length === 0 ? 'nothing to recover: cr has no journal of any process' : lines.join('\n'));
    return 0;
  }
  if (!/^[1-9][0-9]{0,9}$/.test(arg)) badInput(`PID: ${JSON.stringify(arg)} is not a pid`);
  console.log(recover(Number(arg)));
  return 0;
}
