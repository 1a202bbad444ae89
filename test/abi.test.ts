// The constants TypeScript and the wasm planner share come from one source (scripts/abi.mjs): the
// two generated files must be what the source makes now, so an edit to either side alone fails.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(fileURLToPath(import.meta.url), '..', '..', '..');

test('assembly/abi.ts and src/abi.ts are current with scripts/abi.mjs', async () => {
  const { generated } = (await import(join(root, 'scripts', 'abi.mjs'))) as { generated(): Record<string, string> };
  const files = generated();
  assert.equal(Object.keys(files).sort(), ['assembly/abi.ts', 'src/abi.ts']);
  for (const [path, text] of Object.entries(files)) {
    assert.ok(readFileSync(join(root, path), 'utf8') === text, `${path} is stale: run npm run build (and edit scripts/abi.mjs, never ${path})`);
  }
});

test('the shared values are the kernel and planner values both sides use', async () => {
  const abi = await import('../src/abi.js');
  const model = await import('../src/model/fdtable.js');
  assert.is(model.O_PATH, abi.O_PATH);
  assert.is(abi.O_PATH, 0o10000000);
  assert.is(abi.SETFL_MASK, abi.O_APPEND | abi.O_NONBLOCK | abi.O_NOATIME | abi.O_DIRECT | abi.O_ASYNC);
  const classes = [abi.CLASS_PAIR_END, abi.CLASS_REOPEN, abi.CLASS_PATH, abi.CLASS_RENDEZVOUS, abi.CLASS_SINGLE];
  assert.is(new Set(classes).size, classes.length, 'class codes are distinct');
});

test.run();
