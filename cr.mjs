#!/usr/bin/env node
// Entry point: the compiled CLI lives in build/ (made by `npm install` or `npm run build`).
// Help, usage and the version come from build/src/cli.js, which loads three modules more and reads
// the help texts the build rendered; each command runs from its bundle, its modules in one file
// with their compiled code cached, through build/bundle.cjs (src/bundle.ts as CommonJS). Either
// runs the same main (src/dispatch.ts).
import { createRequire } from 'node:module';

// Builtins and the bundle's loader through require: an ES module's import of a builtin makes a
// namespace of all its exports (node:fs's include its streams, which load node:stream), and an
// ES module is resolved, linked and compiled with no code cache.
const require = createRequire(import.meta.url);
const { existsSync, writeSync } = require('node:fs');

// cr's lines (each a console.log or console.error of one string) are written straight to fd 1 and
// 2: process.stdout and process.stderr are streams, and making the first loads Node's stream
// modules (about 2 ms CPU and 150 page faults here, more over a pipe; docs/performance.md). Like
// the console, a write that fails is dropped (a closed pipe: Node ignores SIGPIPE); one that
// would block (a non-blocking pipe that is full) goes, with all after it, to the stream, which
// queues it. Anything else (several arguments, an object) is the console's own.
const made = new Set();
for (const [fd, name, method] of [[1, 'stdout', 'log'], [2, 'stderr', 'error']]) {
  // Which streams were made (by cr or the console), the only ones that can hold queued writes at exit.
  const { get } = Object.getOwnPropertyDescriptor(process, name);
  Object.defineProperty(process, name, {
    configurable: true,
    enumerable: true,
    get() {
      const stream = get.call(process);
      made.add(stream);
      return stream;
    },
  });
  const consoles = console[method].bind(console);
  let streamed = false;
  console[method] = (...args) => {
    if (streamed || args.length !== 1 || typeof args[0] !== 'string') {
      // What goes to the stream may be queued there: all after it on this fd follows it.
      streamed = true;
      return consoles(...args);
    }
    const bytes = Buffer.from(`${args[0]}\n`);
    let done = 0;
    try {
      while (done < bytes.length) done += writeSync(fd, bytes, done);
    } catch (err) {
      if (err?.code !== 'EAGAIN') return;
      streamed = true;
      process[name].write(bytes.subarray(done));
    }
  };
}

const argv = process.argv.slice(2);
const helpOnly = argv.length === 0 || ['-h', '--help', 'help', '-V', '--version'].includes(argv[0]) || argv[1] === '-h' || argv[1] === '--help';
// The loader is the build's last file (a build older than it has none either).
if (!existsSync(new URL('build/bundle.cjs', import.meta.url))) {
  console.error('cr: not built yet; run `npm install` (or `npm run build`) first');
  process.exit(2);
}
// An unknown command has no bundle: build/src/cli.js refuses it.
const bundled = !helpOnly && /^[a-z][a-z-]*$/.test(argv[0]) && existsSync(new URL(`build/cli/${argv[0]}.cjs`, import.meta.url));
const { main } = bundled ? require('./build/bundle.cjs') : await import('./build/src/cli.js');
const code = await main(argv);
// Exit as soon as what cr printed is out: left to end by itself, Node frees its whole heap first
// (about 20 ms CPU under load, docs/performance.md), which the kernel does anyway at exit. A write
// to a pipe or terminal that would block is queued: each stream's empty write calls back once
// those before it are written.
await Promise.all([...made].map((s) => (s.writableLength === 0 ? undefined : new Promise((resolve) => s.write('', resolve)))));
process.exit(code);
