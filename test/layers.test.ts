// The layering of README's "How it is built", checked from the source: every module of src/ and
// bridge/ belongs to one layer, imports only its own group and groups of lower layers, never a
// sibling group of its own layer, and no chain of imports (type-only ones included) comes back to
// where it started. A new folder or top-level file must be placed here before it can land.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/**
 * Lowest first. A layer is one or more groups; a group is the folders (ending in '/') and files
 * it holds. Data flows one way: gather (dump, checkpoint) -> image -> plan -> replay (replay,
 * restore, restart), with the bridge, the /proc readers and the model below all of them.
 */
const LAYERS: Array<Record<string, string[]>> = [
  { bridge: ['bridge/'] },
  { base: ['src/errors.ts', 'src/printable.ts', 'src/timing.ts', 'src/abi.ts', 'src/progress.ts', 'src/version.ts', 'src/random-name.ts', 'src/worker-threads.ts', 'src/thread-watch.ts'] },
  { model: ['src/model/'] },
  { proc: ['src/proc/'] },
  { kinds: ['src/kinds/'] },
  { image: ['src/image/', 'src/output-file.ts', 'src/write-thread.ts'] },
  { plan: ['src/plan/'] },
  { sim: ['src/sim/'] },
  { inject: ['src/inject/'], task: ['src/task/'] },
  { trust: ['src/trust/'] },
  { gather: ['src/dump/', 'src/checkpoint/'], replay: ['src/replay/'] },
  { restore: ['src/restore/', 'src/restart/'] },
  { diff: ['src/diff/'], fuzz: ['src/fuzz/'] },
  { imagefuzz: ['src/imagefuzz/'] },
  { api: ['src/api.ts', 'src/api/'] },
  { commands: ['src/commands/', 'src/command-line.ts'] },
  { cli: ['src/cli.ts', 'src/dispatch.ts', 'src/bundle.ts'] },
];

/** Groups that never import each other whatever their layers: the two ends of the data flow. */
const APART: Array<[string, string]> = [
  ['gather', 'replay'],
  ['gather', 'restore'],
];

type Graph = Map<string, string[]>;

interface Place {
  group: string;
  layer: number;
}

function placeOf(file: string, layers: Array<Record<string, string[]>>): Place | null {
  for (let layer = 0; layer < layers.length; layer++) {
    for (const [group, members] of Object.entries(layers[layer]!)) {
      if (members.some((m) => (m.endsWith('/') ? file.startsWith(m) : file === m))) return { group, layer };
    }
  }
  return null;
}

/** Every broken rule of the graph, one line each; [] when the graph keeps the layering. */
function layeringErrors(graph: Graph, layers: Array<Record<string, string[]>>, apart: Array<[string, string]>): string[] {
  const errors: string[] = [];
  for (const [file, imports] of graph) {
    const from = placeOf(file, layers);
    if (!from) {
      errors.push(`${file}: in no layer`);
      continue;
    }
    for (const dep of imports) {
      const to = placeOf(dep, layers);
      if (!to) continue; // reported as its own file
      if (to.group === from.group) continue;
      const separated = apart.some(([a, b]) => (a === from.group && b === to.group) || (b === from.group && a === to.group));
      if (to.layer > from.layer) errors.push(`${file} (${from.group}) imports ${dep} (${to.group}), a higher layer`);
      else if (to.layer === from.layer) errors.push(`${file} (${from.group}) imports ${dep} (${to.group}), a sibling in its layer`);
      else if (separated) errors.push(`${file} (${from.group}) imports ${dep} (${to.group}), which it must keep apart from`);
    }
  }
  return errors.concat(cycles(graph).map((c) => `import cycle: ${c.join(' -> ')}`));
}

/** One cycle per strongly connected part of the graph that has one (Tarjan's algorithm). */
function cycles(graph: Graph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const part: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      part.push(w);
    } while (w !== v);
    if (part.length > 1 || (graph.get(v) ?? []).includes(v)) out.push(part.reverse().concat(part[0]!));
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return out;
}

/** Relative imports of every .ts file under the given folders, as repo paths of .ts files. */
function importGraph(folders: string[]): Graph {
  const graph: Graph = new Map();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
      const path = posix.join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts')) {
        const text = readFileSync(join(ROOT, path), 'utf8');
        const specs = [...text.matchAll(/\bfrom\s*['"](\.[^'"]+)['"]|\bimport\s*\(?\s*['"](\.[^'"]+)['"]/g)].map((m) => (m[1] ?? m[2])!);
        graph.set(
          path,
          specs.map((s) => relative(ROOT, resolve(join(ROOT, dirname(path)), s)).split('\\').join('/').replace(/\.js$/, '.ts')),
        );
      }
    }
  };
  for (const f of folders) walk(f);
  return graph;
}

test('src/ and bridge/ keep the declared layer order, with no import cycle', () => {
  const graph = importGraph(['bridge', 'src']);
  assert.ok(graph.size > 50, `only ${graph.size} modules found under ${ROOT}`);
  assert.equal(layeringErrors(graph, LAYERS, APART), []);
});

test('the check itself catches a backwards import, a sibling import, a kept-apart import, a cycle and an unplaced file', () => {
  const graph: Graph = new Map([
    ['src/model/a.ts', ['src/plan/b.ts']],
    ['src/plan/b.ts', ['src/model/a.ts']],
    ['src/inject/c.ts', ['src/task/d.ts']],
    ['src/task/d.ts', []],
    ['src/restore/e.ts', ['src/dump/f.ts']],
    ['src/dump/f.ts', []],
    ['src/elsewhere.ts', []],
  ]);
  const errors = layeringErrors(graph, LAYERS, APART);
  assert.equal(errors, [
    'src/model/a.ts (model) imports src/plan/b.ts (plan), a higher layer',
    'src/inject/c.ts (inject) imports src/task/d.ts (task), a sibling in its layer',
    'src/restore/e.ts (restore) imports src/dump/f.ts (gather), which it must keep apart from',
    'src/elsewhere.ts: in no layer',
    'import cycle: src/model/a.ts -> src/plan/b.ts -> src/model/a.ts',
  ]);
});

test.run();
