#!/usr/bin/env node
// Entry point: the compiled CLI lives in build/ (made by `npm install` or `npm run build`).
// Help, usage and the version come from build/src/cli.js, which loads two modules more and reads
// the help texts the build rendered; every command runs from the CLI's bundle (src/bundle.ts),
// the same modules in one file with their compiled code cached. Either runs the same main().
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const argv = process.argv.slice(2);
const helpOnly = argv.length === 0 || ['-h', '--help', 'help', '-V', '--version'].includes(argv[0]) || argv[1] === '-h' || argv[1] === '--help';
const build = join(dirname(fileURLToPath(import.meta.url)), 'build');
if (!existsSync(join(build, 'cli.cjs'))) {
  console.error('cr: not built yet; run `npm install` (or `npm run build`) first');
  process.exit(2);
}
const { main } = await import(join(build, 'src', helpOnly ? 'cli.js' : 'bundle.js'));
process.exitCode = await main(argv);
