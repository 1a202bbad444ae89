// `cr demo`: the whole story on real processes, told step by step. First the fd table: a small
// python3 program builds the seed patch's tricky layout, cr dumps its fd table, restores it into
// a brand-new process, dumps that one too and compares, then both processes read their pipes to
// show the bytes made it across. Then the whole process: a counter (C if cc can build it, else
// python3) is dumped, killed and restarted, and carries on from the next number. Needs no
// arguments; works in a temporary directory it removes at the end (kept with --keep, for a closer
// look at the images), and ends with commands the user can paste to try it on a process of their own.
import { onlyProcess } from '../model/fdtable.js';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { kill, SIGUSR1 } from '../../bridge/signal.js';
import { killAndReap, reap, spawn } from '../../bridge/spawn.js';
import { defineCommand, parseCommand, PROG } from '../command-line.js';
import { CrError } from '../errors.js';
import { readImage } from '../image/format.js';
import { formatOp } from '../plan/format.js';
import { restoreFresh } from '../restore/fresh.js';
import { run as diffCommand } from './diff.js';
import { run as dumpCommand } from './dump.js';
import { run as restoreCommand } from './restore.js';
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

// The counter of the whole-process part, in C and in python3: writes 1, 2, 3, ... to OUT, one
// number a line every 20 ms, and exits 0 once STOP exists.
const COUNTER_C = `#include <stdio.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (argc != 3) return 2;
  FILE *out = fopen(argv[1], "a");
  if (!out) return 1;
  for (long i = 1;; i++) {
    fprintf(out, "%ld\\n", i);
    fflush(out);
    if (access(argv[2], F_OK) == 0) return 0;
    struct timespec pause = {0, 20000000};
    nanosleep(&pause, NULL);
  }
}
`;
const COUNTER_PY = `
import os, sys, time
out, stop = sys.argv[1], sys.argv[2]
i = 0
while True:
    i += 1
    with open(out, "a") as f:
        f.write("%d\\n" % i)
    if os.path.exists(stop):
        sys.exit(0)
    time.sleep(0.02)
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

/**
 * Run a cr command in this process, printing it as the user would type it and indenting what it
 * prints (stdout and stderr, as a terminal shows them); returns its stdout.
 */
async function shell(args: string[], run: (args: string[]) => Promise<number>): Promise<string> {
  say(`  $ ${PROG} ${args.join(' ')}`);
  const out: string[] = [];
  const stdout: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => void (out.push(a.join(' ')), stdout.push(a.join(' ')));
  console.error = (...a: unknown[]) => void out.push(a.join(' '));
  let code: number;
  try {
    code = await run(args.slice(1));
  } finally {
    console.log = log;
    console.error = error;
  }
  say(indent(out.join('\n')));
  if (code !== 0) throw new CrError(`cr ${args[0]} ended with status ${code} (see above)`);
  return stdout.join('\n');
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

/** The counter as a command: the C one if cc builds it, else the python3 one. */
function counterCommand(dir: string, python: string): { argv: string[]; what: string } {
  const source = join(dir, 'counter.c');
  const exe = join(dir, 'counter');
  writeFileSync(source, COUNTER_C);
  try {
    // cc runs to its end before any process is traced: child_process is safe here.
    execFileSync('cc', ['-O1', '-o', exe, source], { stdio: 'ignore' });
    return { argv: [exe], what: 'a small C program' };
  } catch {
    const script = join(dir, 'counter.py');
    writeFileSync(script, COUNTER_PY);
    return { argv: [python, '-S', script], what: 'a small python3 program, as there is no C compiler here' };
  }
}

const linesOf = (path: string): string[] => (existsSync(path) ? readFileSync(path, 'utf8').split('\n').slice(0, -1) : []);

function waitForLines(path: string, n: number, pid: number): string[] {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const lines = linesOf(path);
    if (lines.length >= n) return lines;
    if (!existsSync(`/proc/${pid}`) || Date.now() > deadline) throw new CrError(`the counter ${pid} did not count to ${n}`);
    Atomics.wait(sleeper, 0, 0, 5);
  }
}

/** Part two: a counter dumped whole, killed, restarted; it must carry on from the next number. */
async function wholeProcess(dir: string, python: string, running: Set<number>): Promise<void> {
  const counter = counterCommand(dir, python);
  const out = join(dir, 'counted.txt');
  const stop = join(dir, 'stop');
  const image = join(dir, 'counter.img');
  say('Now the whole process, not just its fds.');
  say();
  const pid = spawn([...counter.argv, out, stop], { fds: [] });
  running.add(pid);
  const early = waitForLines(out, 10, pid);
  say(`Step 6. Started a counter (pid ${pid}), ${counter.what}. It writes 1, 2, 3, ... into`);
  say(`${out}, one number every 20 ms; it has reached ${early[early.length - 1]} by now.`);
  say();
  say('Step 7. Dump the whole process: its memory, registers, signal state, limits and fds. With');
  say('--leave-stopped it stays stopped afterwards, so it counts no further. Then kill it:');
  await shell(['dump', '--pid', String(pid), '-o', image, '--leave-stopped'], dumpCommand);
  killAndReap(pid);
  running.delete(pid);
  const dumped = linesOf(out);
  const last = Number(dumped[dumped.length - 1]);
  say(`  $ kill -9 ${pid}`);
  say(`  The counter is gone. The last number it wrote was ${last}.`);
  say();
  say('Step 8. Restore the image. cr starts a new process, rebuilds the dumped one inside it (memory,');
  say('fds, registers and the rest), checks the image\'s checksum, and only then lets it run on from the');
  say('very instruction where it was stopped:');
  const restored = Number(await shell(['restore', image, '--detach'], restoreCommand));
  running.add(restored);
  const after = waitForLines(out, dumped.length + 5, restored);
  say(`  A moment later ${out} goes on:`);
  say(`    ... ${after.slice(dumped.length - 3, dumped.length).join(', ')} | ${after.slice(dumped.length, dumped.length + 5).join(', ')} ...`);
  if (after.some((line, i) => Number(line) !== i + 1)) throw new CrError(`the restored counter did not carry on from ${last + 1}`);
  say(`  The restored process (pid ${restored}) carried on with ${last + 1}: no number lost, none repeated.`);
  say();
  writeFileSync(stop, '');
  const end = reap(restored, 10_000);
  running.delete(restored);
  if (end.kind !== 'exited' || end.code !== 0) throw new CrError(`the restored counter ended badly (${end.kind} ${end.code})`);
  say(`Step 9. Tell it to stop (it checks for ${stop}): pid ${restored} exited with status 0.`);
  say();
}

export const command = defineCommand({
  name: 'demo',
  summary: 'Dump and restore real processes, step by step.',
  usage: ['demo [--keep]'],
  operands: [],
  flags: {
    keep: { help: 'keep the temporary directory with the images, and say where it is' },
  },
  examples: ['demo', 'demo --keep | less'],
});

/** Commands that do on a process of the user's own what the demo did, to paste as they are. */
const TRY_IT = [
  'sleep 1000 & ' + PROG + ' dump --pid $! -o sleep.img --kill',
  PROG + ' show sleep.img',
  PROG + ' restore sleep.img --detach',
];

export async function run(args: string[]): Promise<number> {
  const parsed = parseCommand(command, args);
  if (parsed === undefined) return 0;
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
    say('cr demo: checkpoint a process\'s fds and pipes and bring them back in another process; then');
    say('checkpoint a whole process, kill it, and bring it back to carry on where it was.');
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
    say('Step 2. Dump its fd table (--fds-only: the fds, not the whole process). cr stops the process for');
    say('a moment, reads its fd table from /proc, copies the queued bytes without taking them out of the');
    say('pipes, lets the process go, and writes an image:');
    await shell(['dump', '--fds-only', '--pid', String(pid), '-o', original], dumpCommand);
    await shell(['show', original], showCommand);
    say();
    say('Step 3. Restore the image into a brand-new process. cr starts it stopped before its first');
    say('instruction, plans the system calls that rebuild the table, checks the plan in its simulator,');
    say('runs the calls inside the new process (checking each result), and only then lets it run:');
    const hold = [python, '-S', program, 'hold', restoredDir];
    say(`  $ ${PROG} restore ${original} --detach -- ${hold.join(' ')}`);
    const outcome = restoreFresh(onlyProcess(readImage(original).table), hold, null);
    running.add(outcome.pid);
    say(`    ${outcome.pid}`);
    say(`  The ${outcome.plan.ops.length - 1} system calls cr ran inside pid ${outcome.pid}:`);
    for (const op of outcome.plan.ops) if (op.op !== 'commit') say(`    ${formatOp(op)}`);
    for (const warning of outcome.plan.warnings) say(`  warning: ${warning}`);
    waitForFile(join(restoredDir, 'ready'), outcome.pid);
    say();
    say(`Step 4. Dump the new process too, and compare the two images (fd numbers, sharing, pipe ends,`);
    say('flags, close-on-exec, capacities, queued bytes, limits):');
    await shell(['dump', '--fds-only', '--pid', String(outcome.pid), '-o', restored], dumpCommand);
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
    say('from the original.');
    say();
    await wholeProcess(dir, python, running);
    if (parsed.values.keep) say(`The images are in ${dir} (try: ${PROG} show ${join(dir, 'counter.img')}).`);
    else say(`The temporary directory ${dir} is removed (${PROG} demo --keep keeps it).`);
    say();
    say('Try it on a process of your own (the sleep is dumped, killed, and restarted as a new process):');
    for (const line of TRY_IT) say(`  ${line}`);
    return 0;
  } finally {
    for (const p of running) killAndReap(p);
    if (!parsed.values.keep) rmSync(dir, { recursive: true, force: true });
  }
}
