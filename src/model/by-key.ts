// A map from integer keys (ids, fd numbers, the simulator's serials) to integers, for the checks that
// visit every entry of a table of 100,000: a dump numbers its descriptions and pipes from 0 up and
// its fds below about twice their count, so the values sit in an array indexed by key, where a
// Map's hashing costs more than the rest of an entry's check. A key far above the others (or not a
// non-negative integer) moves everything to a Map, so any key works, only slower.

/**
 * Values are integers from 0 to 2^32 - 2 (fd numbers, ids, serials, positions): the array is a
 * Uint32Array holding value + 1 (0 for none), grown by doubling, so a table of 100,000 makes no JS
 * array the garbage collector copies or scans (a JS array of objects in old space, each store into
 * it remembered for every scavenge), and no growth a slot at a time.
 */
export class IntByKey {
  private slots: Uint32Array;
  private spread: Map<number, number> | undefined;
  private count = 0;

  /** `bound`: keys up to it stay in the array (a little above the highest key expected) */
  constructor(private readonly bound: number) {
    this.slots = new Uint32Array(Math.min(bound + 1, 1024));
  }

  /** For `n` keys: the array holds keys up to 4n + 64. */
  static sized(n: number): IntByKey {
    return new IntByKey(4 * n + 64);
  }

  get size(): number {
    return this.spread === undefined ? this.count : this.spread.size;
  }

  /** The value at key, or -1 when there is none. */
  get(key: number): number {
    if (this.spread === undefined) {
      // A key past the array, negative or fractional reads as undefined: none.
      const v = this.slots[key];
      return v === undefined || v === 0 ? -1 : v - 1;
    }
    return this.spread.get(key) ?? -1;
  }

  has(key: number): boolean {
    return this.get(key) !== -1;
  }

  set(key: number, value: number): void {
    if (!(Number.isInteger(value) && value >= 0 && value < 0xffffffff)) throw new RangeError(`IntByKey: value ${value} is not an integer from 0 to 2^32 - 2`);
    if (this.spread === undefined) {
      if (Number.isInteger(key) && key >= 0 && key <= this.bound) {
        let slots = this.slots;
        if (key >= slots.length) {
          const grown = new Uint32Array(Math.min(Math.max(key + 1, 2 * slots.length), this.bound + 1));
          grown.set(slots);
          this.slots = slots = grown;
        }
        if (slots[key] === 0) this.count++;
        slots[key] = value + 1;
        return;
      }
      const spread = new Map<number, number>();
      this.slots.forEach((v, k) => {
        if (v !== 0) spread.set(k, v - 1);
      });
      this.spread = spread;
      this.slots = new Uint32Array(0);
    }
    this.spread.set(key, value);
  }
}
