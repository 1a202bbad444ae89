#!/usr/bin/env node
// Entry point: the compiled CLI lives in build/ (made by `npm install` or `npm run build`).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = join(dirname(fileURLToPath(import.meta.url)), 'build', 'src', 'cli.js');
if (!existsSync(cli)) {
  console.error('cr: not built yet; run `npm install` (or `npm run build`) first');
  process.exit(2);
}
const { main } = await import(cli);
process.exitCode = await main(process.argv.slice(2));
