// A test's process trees: each started in a session of its own in a scratch directory (stdout and
// stderr to its log), dumped whole by cr run as its own process, and every process ever seen in
// one (originals, members, restored copies) killed at the end, whatever session it moved to.
import { closeSync, mkdtempSync, openSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { kill, SIGKILL } from '../../bridge/signal.js';
import { spawn } from '../../bridge/spawn.js';
import { ProcessImage } from '../../src/image/process-format.js';
import { listTree } from '../../src/proc/tree.js';
import { crProcess } from './cli.js';
import { ensureReaped } from './processes.js';

export class TreeScene {
  readonly dir: string;
  /** roots this scene started (its children: reaped at the end) */
  private roots: number[] = [];
  /** roots of trees it did not start (restored ones): their members are killed at the end too */
  private others: number[] = [];
  /** every pid seen in a tree, killed at the end */
  private seen = new Set<number>();

  constructor(name: string) {
    this.dir = realpathSync(mkdtempSync(join(tmpdir(), `cr-${name}-`)));
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  start(argv: string[]): number {
    const nul = openSync('/dev/null', 'r');
    const log = openSync(this.path('log'), 'a');
    try {
      const pid = spawn(argv, { fds: [[nul, 0], [log, 1], [log, 2]], setsid: true, cwd: this.dir });
      this.roots.push(pid);
      return pid;
    } finally {
      closeSync(nul);
      closeSync(log);
    }
  }

  /** The tree of root in pre-order, as /proc shows it now (pids remembered for the cleanup). */
  tree(root: number): number[] {
    const pids = listTree(root).map((m) => m.pid);
    for (const p of pids) this.seen.add(p);
    return pids;
  }

  /** `cr dump --pid root -o image EXTRA...`, which must succeed; the image read back. */
  dump(root: number, image: string, ...extra: string[]): ProcessImage {
    this.tree(root);
    const r = crProcess(['dump', '--pid', String(root), '-o', image, ...extra]);
    assert.is(r.code, 0, r.stderr);
    const read = ProcessImage.read(image);
    for (const m of read.tree) this.seen.add(m.pid);
    return read;
  }

  /** A tree this scene did not start (a restored one): its members are killed at the end. */
  protected watch(root: number, members: number[]): void {
    for (const p of members) this.seen.add(p);
    this.others.push(root);
  }

  end(): void {
    for (const root of [...this.roots, ...this.others]) {
      try {
        for (const m of listTree(root)) this.seen.add(m.pid);
      } catch {
        // gone
      }
    }
    for (const p of this.seen) {
      try {
        kill(p, SIGKILL);
      } catch {
        // gone
      }
    }
    for (const root of this.roots) ensureReaped(root);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
