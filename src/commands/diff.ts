// `cr diff A B`: do two images (or JSON fd tables) describe the same fd table (and, for two
// whole-process images, the same process head, src/diff/head.ts, and the same guard regions)?
// Exit 0 when they do, 1 with each difference on
// a line of its own, 2 when either cannot be read.
import { diff } from '../api/diff.js';
import { defineCommand, parseCommand } from '../command-line.js';

export const command = defineCommand({
  name: 'diff',
  summary: 'Compare two images (fd tables; for whole processes also argv, exe, cwd, credentials, limits, mappings, signals, guard regions): exit 0 when the same, 1 listing each difference.',
  usage: ['diff A B'],
  operands: [
    { name: 'A', help: 'an image, or a JSON fd table; - reads it from stdin' },
    { name: 'B', help: 'another (- for stdin, if A is not)' },
  ],
  flags: {},
  examples: ['diff before.img after.img', 'diff app.img table.json', 'diff - new.img < old.img'],
});

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommand(command, args);
  if (parsed === undefined) return 0;
  const [pathA, pathB] = parsed.operands as [string, string];
  const r = diff(pathA, pathB);
  if (r.same) {
    const count = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
    const t = r.a.table;
    const head = r.head === undefined ? '' : `, the same process (argv, exe, cwd, credentials, limits, ${count(r.head.mappings, 'mapping')}, ${count(r.head.signalActions, 'signal action')} set, signals blocked and pending)`;
    const guards = r.guardRegions === undefined ? '' : `${head}, and the same ${count(r.guardRegions, 'guard region')}`;
    const fds = t.processes.reduce((n, p) => n + p.fds.length, 0);
    const processes = t.processes.length > 1 ? `${t.processes.length} processes, ` : '';
    console.log(`same: ${r.a.path} and ${r.b.path} describe the same fd table (${processes}${count(fds, 'fd')}, ${count(t.descs.length, 'description')}, ${count(t.pipes.length, 'pipe')})${guards}`);
    return 0;
  }
  for (const line of r.differences) console.log(line);
  return 1;
}
