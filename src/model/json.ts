// The pieces every part of a JSON (or msgpack) table is read with: each a one-line badInput naming
// the field. image/validate.ts and each kind's module (src/kinds/) parse with them.
import { badInput } from '../errors.js';
import { printable } from '../printable.js';

/** Most entries any array of a table may have: bounds the work hostile input can cause. */
export const MAX_ENTRIES = 1 << 20;
/** PATH_MAX, terminating NUL included. */
const PATH_MAX = 4096;

/** A short rendering of any JSON value for an error message. */
export function show(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  switch (typeof value) {
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value);
    case 'string': {
      const text = `"${printable(value.length > 40 ? value.slice(0, 40) : value, '"')}"`;
      return value.length > 40 ? text.slice(0, -1) + '..."' : text;
    }
    case 'undefined':
      return 'missing';
    case 'object':
      return 'an object';
    default:
      return `a ${typeof value}`;
  }
}

export type Obj = Record<string, unknown>;

/**
 * JSON text of a table (or anything holding one): bytes (a file's extents, Buffers in the model)
 * as base64 text, the form parsing takes back.
 */
export function tableJson(value: unknown, space?: number): string {
  return JSON.stringify(
    value,
    function (this: Record<string, unknown>, key: string, v: unknown) {
      const raw = this[key];
      return raw instanceof Uint8Array ? Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') : v;
    },
    space,
  );
}

export function object(value: unknown, where: string): Obj {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    badInput(`${where}: expected an object, got ${show(value)}`);
  }
  return value as Obj;
}

/** Own fields only (so `__proto__` and friends are fields, not magic), none beyond `allowed`. */
export function fields(obj: Obj, where: string, allowed: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) badInput(`${where}: unknown field ${show(key)}`);
  }
}

export function get(obj: Obj, key: string): unknown {
  return Object.prototype.hasOwnProperty.call(obj, key) ? obj[key] : undefined;
}

export function array(value: unknown, where: string): unknown[] {
  if (!Array.isArray(value)) badInput(`${where}: expected an array, got ${show(value)}`);
  if (value.length > MAX_ENTRIES) badInput(`${where}: ${value.length} entries is more than ${MAX_ENTRIES}`);
  return value;
}

export function integer(value: unknown, where: string, min: number, max: number): number {
  if (typeof value !== 'number') badInput(`${where}: expected an integer, got ${show(value)}`);
  if (!Number.isInteger(value)) badInput(`${where}: ${show(value)} is not an integer`);
  if (value < min) badInput(`${where}: ${value} is below ${min}`);
  if (value > max) badInput(`${where}: ${value} is above ${max}`);
  return value;
}

export function boolean(value: unknown, where: string): boolean {
  if (typeof value !== 'boolean') badInput(`${where}: expected true or false, got ${show(value)}`);
  return value;
}

/** An absolute path the planner may open; /proc paths would name our own process, not the image's. */
export function parsePath(value: unknown, where: string): string {
  if (typeof value !== 'string') badInput(`${where}: expected a string, got ${show(value)}`);
  if (value.length === 0) badInput(`${where}: empty path`);
  if (value.length >= PATH_MAX) badInput(`${where}: path of ${value.length} characters is longer than PATH_MAX`);
  if (value.includes('\0')) badInput(`${where}: path contains NUL`);
  if (!value.startsWith('/')) badInput(`${where}: ${show(value)} is not absolute`);
  if (!value.includes('proc')) return value;
  const parts: string[] = [];
  for (const part of value.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') parts.pop();
    else parts.push(part);
  }
  if (parts[0] === 'proc') badInput(`${where}: ${show(value)} is under /proc`);
  return value;
}

