// IntByKey (src/model/by-key.ts): a map from integer keys to integers, in a typed array while keys
// are small, in a Map once one is not; either way it answers as a Map would (-1 for absent).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { IntByKey } from '../src/model/by-key.js';

/** Apply the same sets to an IntByKey and a Map and compare every answer. */
function same(bound: number, keys: number[]): void {
  const table = new IntByKey(bound);
  const map = new Map<number, number>();
  keys.forEach((key, i) => {
    table.set(key, i * 3);
    map.set(key, i * 3);
    assert.is(table.size, map.size, `size after setting ${key}`);
  });
  for (const key of [...keys, -1, 0.5, bound + 1, 2 ** 31, NaN, ...keys.map((k) => k + 1)]) {
    assert.is(table.get(key), map.get(key) ?? -1, `get(${key})`);
    assert.is(table.has(key), map.has(key), `has(${key})`);
  }
}

test('small keys: set, overwrite, absent keys, size', () => {
  same(100, [0, 5, 3, 5, 99, 100, 0]);
});

test('keys past the first array grow it, up to the bound', () => {
  same(5000, [4999, 0, 1024, 1023, 2048, 3000, 5000, 17]);
});

test('a key past the bound, a negative or a fractional one: everything moves to a Map, nothing lost', () => {
  same(10, [1, 2, 3, 11, 4, 2 ** 31 - 1, 1]);
  same(10, [7, -3, 7, 2]);
  same(10, [0, 2.5, 9, 2.5]);
  same(0, [0, 1]);
});

test('sized(n) keeps keys up to 4n + 64 in its array and takes any other', () => {
  const table = IntByKey.sized(10);
  for (let key = 0; key <= 104; key++) table.set(key, key * 2);
  table.set(1e9, 1);
  assert.is(table.size, 106);
  assert.is(table.get(104), 208);
  assert.is(table.get(1e9), 1);
  assert.is(table.get(105), -1);
});

test('values from 0 to 2^32 - 2, and nothing else', () => {
  const table = new IntByKey(10);
  table.set(1, 0);
  table.set(2, 2 ** 32 - 2);
  assert.is(table.get(1), 0);
  assert.is(table.get(2), 2 ** 32 - 2);
  for (const bad of [-1, 2 ** 32 - 1, 0.5, NaN]) assert.throws(() => table.set(3, bad), /not an integer from 0 to 2\^32 - 2/);
  assert.is(table.has(3), false);
});

test.run();
