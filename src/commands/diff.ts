// `cr diff A B`: do two images (or JSON fd tables) describe the same fd table (and, for two
// whole-process images, the same guard regions)? Exit 0 when they do, 1 with each difference on
// a line of its own, 2 when either cannot be read.
import { badInput } from '../errors.js';
import { loadTableInput } from '../image/format.js';
import { guardRegions } from '../image/process-format.js';
import { compareTables } from '../diff/compare.js';
import { compareGuards } from '../diff/guards.js';

export async function run(args: string[]): Promise<number> {
  if (args.length !== 2 || args.some((a) => a.startsWith('-'))) badInput('usage: cr diff A B   (images or JSON fd tables)');
  const [pathA, pathB] = args as [string, string];
  const inA = loadTableInput(pathA);
  const inB = loadTableInput(pathB);
  const a = inA.table;
  const b = inB.table;
  const differences = compareTables(a, b);
  // Memory is compared only between two whole-process images: an fd table has none to differ.
  const memory = inA.process && inB.process ? { a: inA.process.head.mappings, b: inB.process.head.mappings } : null;
  if (memory) differences.push(...compareGuards(memory.a, memory.b));
  if (differences.length === 0) {
    const count = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
    const guards = memory ? `, and the same ${count(guardRegions(memory.a).length, 'guard region')}` : '';
    console.log(`same: ${pathA} and ${pathB} describe the same fd table (${count(a.fds.length, 'fd')}, ${count(a.descs.length, 'description')}, ${count(a.pipes.length, 'pipe')})${guards}`);
    return 0;
  }
  for (const line of differences) console.log(line);
  return 1;
}
