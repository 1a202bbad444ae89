// The JSON fd table gets the bounds msgpack.ts gives images: walked once before JSON.parse builds
// anything, refused when nesting deeper than MAX_DEPTH or when what it would build is out of
// proportion to its size (`[[],[],...]`: an array per three bytes). Estimated as msgpack.ts does:
// CONTAINER_COST per array or object, VALUE_COST per value (every `,` and `:` starts one), the
// bytes of strings.
import { CONTAINER_COST, DECODE_FLOOR, DECODE_RATIO, MAX_DEPTH, VALUE_COST } from './msgpack.js';

/** Why text must not be parsed, or null; JSON.parse judges the syntax afterwards. */
export function jsonProblem(text: string): string | null {
  const budget = DECODE_FLOOR + DECODE_RATIO * text.length;
  let cost = VALUE_COST;
  let depth = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // a string: to its closing quote, escapes skipped
      const start = i;
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
      cost += i - start;
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_DEPTH) return `nesting deeper than ${MAX_DEPTH}`;
      cost += CONTAINER_COST;
    } else if (c === 0x5d || c === 0x7d) {
      depth--;
    } else if (c === 0x2c || c === 0x3a) {
      cost += VALUE_COST;
    } else continue;
    if (cost > budget) return `it would parse to over ${Math.round(budget / (1 << 20))} MiB: too many values for its size`;
  }
  return null;
}
