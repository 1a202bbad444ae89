// `cr demo`: the whole story on a real process, told step by step. A small python3 program builds
// the seed patch's tricky layout, cr dumps it, restores the image into a brand-new process,
// dumps that one too and compares, then both processes read their pipes to show the bytes made
// it across. Needs no arguments; leaves its images in a temporary directory for a closer look.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { kill, SIGUSR1 } from '../../bridge/signal.js';
import { killAndReap, reap, spawn } from '../../bridge/spawn.js';
import { badInput, CrError } from '../errors.js';
import { readImage } from '../image/format.js';
import { formatOp } from '../plan/format.js';
import { restoreFresh } from '../restore/fresh.js';
import { run as diffCommand } from './diff.js';
import { run as dumpCommand } from './dump.js';
import { run as showCommand } from './show.js';

const QUEUED = 'hello from the original process\n';
const ORPHANED = 'this pipe lost its writer but kept its bytes\n';

// The demo process. `build` lays the table out (each fd first parked high, so no number is taken by accident);
// `hold` keeps whatever fds it was given. Both then write DIR/ready, wait for SIGUSR1 holding
// nothing else, read fds 9 and 5 once each and write what they got to DIR/read.json.
const PROGRAM = `
import fcntl, json, os, signal, sys
mode, d = sys.argv[1], sys.argv[2]
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])
def put(text, name):
    fd = os.open(os.path.join(d, name + ".tmp"), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.write(fd, text.encode())
    os.close(fd)
    os.rename(os.path.join(d, name + ".tmp"), os.path.join(d, name))
def at(fd, target):
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100)
    os.close(fd)
    os.dup2(high, target)
    os.close(high)
if mode == "build":
    r, w = os.pipe()
    at(r, 9)
    at(w, 4)
    os.dup2(9, 12)
    os.dup2(4, 7)
    fcntl.fcntl(4, fcntl.F_SETFL, fcntl.fcntl(4, fcntl.F_GETFL) | os.O_NONBLOCK)
    os.write(4, ${JSON.stringify(QUEUED)}.encode())
    r, w = os.pipe()
    os.write(w, ${JSON.stringify(ORPHANED)}.encode())
    os.close(w)
    at(r, 5)
put(str(os.getpid()), "ready")
signal.sigwait([signal.SIGUSR1])
put(json.dumps({str(fd): os.read(fd, 4096).decode() for fd in (9, 5)}), "read.json")
`;

const sleeper = new Int32Array(new SharedArrayBuffer(4));

function waitForFile(path: string, pid: number): string {
  const deadline = Date.now() + 10_000;
  while (!existsSync(path)) {
    if (!existsSync(`/proc/${pid}`) || Date.now() > deadline) throw new CrError(`the demo process ${pid} did not write ${path}`);
    Atomics.wait(sleeper, 0, 0, 5);
  }
  return readFileSync(path, 'utf8');
}

/** The real interpreter first: a wrapper script (pyenv's shim) would be what cr restores into. */
function findPython(): string {
  if (existsSync('/usr/bin/python3')) return '/usr/bin/python3';
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    if (dir && existsSync(join(dir, 'python3'))) return join(dir, 'python3');
  }
  throw new CrError('the demo needs python3 (on PATH) to build its example process');
}

const say = (text = ''): void => console.log(text);
const indent = (text: string): string => text.replace(/\n$/, '').replace(/^(?=.)/gm, '    ');

/** Run a cr command in this process, printing it as the user would type it and indenting its output. */
async function shell(args: string[], run: (args: string[]) => Promise<number>): Promise<void> {
  say(`  $ cr ${args.join(' ')}`);
  const out: string[] = [];
  const { log } = console;
  console.log = (...a: unknown[]) => void out.push(a.join(' '));
  let code: number;
  try {
    code = await run(args.slice(1));
  } finally {
    console.log = log;
  }
  say(indent(out.join('\n')));
  if (code !== 0) throw new CrError(`cr ${args[0]} ended with status ${code} (see above)`);
}

/** Have a demo process read its pipes; returns what it read from fds 9 and 5, once it is reaped. */
function readPipes(pid: number, dir: string, running: Set<number>): Record<string, string> {
  kill(pid, SIGUSR1);
  const said = JSON.parse(waitForFile(join(dir, 'read.json'), pid)) as Record<string, string>;
  const end = reap(pid, 10_000);
  running.delete(pid);
  if (end.kind !== 'exited' || end.code !== 0) throw new CrError(`demo process ${pid} ended badly (${end.kind} ${end.code})`);
  return said;
}

export async function run(args: string[]): Promise<number> {
  if (args.length > 0) badInput('usage: cr demo   (no arguments)');
  const python = findPython();
  const dir = mkdtempSync(join(tmpdir(), 'cr-demo-'));
  const originalDir = mkdtempSync(join(dir, 'original-'));
  const restoredDir = mkdtempSync(join(dir, 'restored-'));
  const program = join(dir, 'demo.py');
  writeFileSync(program, PROGRAM);
  const original = join(dir, 'original.img');
  const restored = join(dir, 'restored.img');
  const running = new Set<number>();
  try {
    say('cr demo: checkpoint a process\'s pipes, then bring them back in another process.');
    say();
    const pid = spawn([python, '-S', program, 'build', originalDir], { fds: [] });
    running.add(pid);
    waitForFile(join(originalDir, 'ready'), pid);
    say(`Step 1. Started a process (python3, pid ${pid}) and gave it the tricky fd table of the 2008 seed patch:`);
    say('  - a pipe whose read end is fd 9 and whose write end is fd 4: the read end above the write end;');
    say('  - fd 12, a dup of the read end, and fd 7, a dup of the write end;');
    say(`  - ${QUEUED.length} bytes written into that pipe and not read yet: ${JSON.stringify(QUEUED)};`);
    say('  - O_NONBLOCK on the write end (fds 4 and 7 share it: a dup shares the open file description);');
    say(`  - fd 5, the read end of a second pipe whose write end is closed (half-closed), still holding ${ORPHANED.length} bytes.`);
    say('  Nothing else is open in it: not even fds 0, 1 and 2.');
    say();
    say('Step 2. Dump it. cr stops the process for a moment, reads its fd table from /proc, copies the');
    say('queued bytes without taking them out of the pipes, lets the process go, and writes an image:');
    await shell(['dump', '--pid', String(pid), '-o', original], dumpCommand);
    await shell(['show', original], showCommand);
    say();
    say('Step 3. Restore the image into a brand-new process. cr starts it stopped before its first');
    say('instruction, plans the system calls that rebuild the table, checks the plan in its simulator,');
    say('runs the calls inside the new process (checking each result), and only then lets it run:');
    const hold = [python, '-S', program, 'hold', restoredDir];
    say(`  $ cr restore ${original} --detach -- ${hold.join(' ')}`);
    const outcome = restoreFresh(readImage(original).table, hold);
    running.add(outcome.pid);
    say(`    ${outcome.pid}`);
    say(`  The ${outcome.plan.ops.length - 1} system calls cr ran inside pid ${outcome.pid}:`);
    for (const op of outcome.plan.ops) if (op.op !== 'commit') say(`    ${formatOp(op)}`);
    for (const warning of outcome.plan.warnings) say(`  warning: ${warning}`);
    waitForFile(join(restoredDir, 'ready'), outcome.pid);
    say();
    say(`Step 4. Dump the new process too, and compare the two images (fd numbers, sharing, pipe ends,`);
    say('flags, close-on-exec, capacities, queued bytes, limits):');
    await shell(['dump', '--pid', String(outcome.pid), '-o', restored], dumpCommand);
    await shell(['diff', original, restored], diffCommand);
    say();
    say('Step 5. Ask both processes to read fd 9 and fd 5:');
    const before = readPipes(pid, originalDir, running);
    const after = readPipes(outcome.pid, restoredDir, running);
    say(`  original (pid ${pid}):  fd 9 gave ${JSON.stringify(before['9'])}, fd 5 gave ${JSON.stringify(before['5'])}`);
    say(`  restored (pid ${outcome.pid}):  fd 9 gave ${JSON.stringify(after['9'])}, fd 5 gave ${JSON.stringify(after['5'])}`);
    if (after['9'] !== QUEUED || after['5'] !== ORPHANED || before['9'] !== QUEUED || before['5'] !== ORPHANED) {
      throw new CrError('a process did not read back the bytes that were queued');
    }
    say();
    say('The restored process got the same fds with the same bytes queued, and the dump took nothing');
    say(`from the original. The images are in ${dir} (try: node cr.mjs show ${restored}).`);
    return 0;
  } finally {
    for (const p of running) killAndReap(p);
  }
}
