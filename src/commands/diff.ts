// `cr diff A B`: do two images (or JSON fd tables) describe the same fd table? Exit 0 when they
// do, 1 with each difference on a line of its own, 2 when either cannot be read.
import { badInput } from '../errors.js';
import { loadTableInput } from '../image/format.js';
import { compareTables } from '../diff/compare.js';

export async function run(args: string[]): Promise<number> {
  if (args.length !== 2 || args.some((a) => a.startsWith('-'))) badInput('usage: cr diff A B   (images or JSON fd tables)');
  const [pathA, pathB] = args as [string, string];
  const a = loadTableInput(pathA).table;
  const b = loadTableInput(pathB).table;
  const differences = compareTables(a, b);
  if (differences.length === 0) {
    const count = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
    console.log(`same: ${pathA} and ${pathB} describe the same fd table (${count(a.fds.length, 'fd')}, ${count(a.descs.length, 'description')}, ${count(a.pipes.length, 'pipe')})`);
    return 0;
  }
  for (const line of differences) console.log(line);
  return 1;
}
