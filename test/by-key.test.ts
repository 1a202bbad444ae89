// ByKey (src/model/by-key.ts): a map from integer keys, in an array while keys are small, in a Map
// once one is not; either way it answers as a Map would.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ByKey } from '../src/model/by-key.js';

/** Apply the same sets to a ByKey and a Map and compare every answer. */
function same(bound: number, keys: number[]): void {
  const table = new ByKey<string>(bound);
  const map = new Map<number, string>();
  keys.forEach((key, i) => {
    table.set(key, `v${i}`);
    map.set(key, `v${i}`);
    assert.is(table.size, map.size, `size after setting ${key}`);
  });
  for (const key of [...keys, -1, 0.5, bound + 1, 2 ** 31, NaN, ...keys.map((k) => k + 1)]) {
    assert.is(table.get(key), map.get(key), `get(${key})`);
    assert.is(table.has(key), map.has(key), `has(${key})`);
  }
}

test('small keys: set, overwrite, absent keys, size', () => {
  same(100, [0, 5, 3, 5, 99, 100, 0]);
});

test('a key past the bound, a negative or a fractional one: everything moves to a Map, nothing lost', () => {
  same(10, [1, 2, 3, 11, 4, 2 ** 31 - 1, 1]);
  same(10, [7, -3, 7, 2]);
  same(10, [0, 2.5, 9, 2.5]);
  same(0, [0, 1]);
});

test('sized(n) keeps keys up to 4n + 64 in its array and takes any other', () => {
  const table = ByKey.sized<number>(10);
  for (let key = 0; key <= 104; key++) table.set(key, key * 2);
  table.set(1e9, 1);
  assert.is(table.size, 106);
  assert.is(table.get(104), 208);
  assert.is(table.get(1e9), 1);
  assert.is(table.get(105), undefined);
});

test.run();
