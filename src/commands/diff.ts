// `cr diff A B`: do two images (or JSON fd tables) describe the same fd table (and, for two
// whole-process images, the same guard regions)? Exit 0 when they do, 1 with each difference on
// a line of its own, 2 when either cannot be read.
import { defineCommand, parseCommand } from '../command-line.js';
import { badInput } from '../errors.js';
import { STDIN_IMAGE } from '../image/file.js';
import { loadInput } from '../image/input.js';
import { guardRegions } from '../image/process-head.js';
import { compareTables } from '../diff/compare.js';
import { compareGuards } from '../diff/guards.js';

export const command = defineCommand({
  name: 'diff',
  summary: 'Compare two images\' fd tables (and guard regions): exit 0 when the same, 1 listing each difference.',
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
  if (pathA === STDIN_IMAGE && pathB === STDIN_IMAGE) badInput('A and B cannot both be - : stdin holds one image');
  const inA = loadInput(pathA);
  const inB = loadInput(pathB);
  const a = inA.table;
  const b = inB.table;
  const differences = compareTables(a, b);
  // Memory is compared only between two whole-process images: an fd table has none to differ.
  const memory = inA.process && inB.process ? { a: inA.process.head.mappings, b: inB.process.head.mappings } : null;
  if (memory) differences.push(...compareGuards(memory.a, memory.b));
  if (differences.length === 0) {
    const count = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
    const guards = memory ? `, and the same ${count(guardRegions(memory.a).length, 'guard region')}` : '';
    console.log(`same: ${inA.file.path} and ${inB.file.path} describe the same fd table (${count(a.fds.length, 'fd')}, ${count(a.descs.length, 'description')}, ${count(a.pipes.length, 'pipe')})${guards}`);
    return 0;
  }
  for (const line of differences) console.log(line);
  return 1;
}
