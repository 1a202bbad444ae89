// A map from integer keys (ids, fd numbers, the simulator's serials) for the checks that visit every
// entry of a table of 100,000: a dump numbers its descriptions and pipes from 0 up and its fds
// below about twice their count, so the values sit in an array indexed by key, where a Map's
// hashing costs more than the rest of an entry's check. A key far above the others (or not a
// non-negative integer) moves everything to a Map, so any key works, only slower.

export class ByKey<T> {
  private slots: Array<T | undefined> = [];
  private spread: Map<number, T> | undefined;
  private count = 0;

  /** `bound`: keys up to it stay in the array (a little above the highest key expected) */
  constructor(private readonly bound: number) {}

  /** For `n` keys: the array holds keys up to 4n + 64. */
  static sized<T>(n: number): ByKey<T> {
    return new ByKey<T>(4 * n + 64);
  }

  get size(): number {
    return this.spread === undefined ? this.count : this.spread.size;
  }

  get(key: number): T | undefined {
    return this.spread === undefined ? this.slots[key] : this.spread.get(key);
  }

  has(key: number): boolean {
    return this.get(key) !== undefined;
  }

  /** `value` must not be undefined (get's "absent"). */
  set(key: number, value: T): void {
    if (this.spread === undefined) {
      const slots = this.slots;
      if (Number.isInteger(key) && key >= 0 && key <= this.bound) {
        // Grown one slot at a time: a store far past an array's end turns it into a dictionary.
        while (slots.length <= key) slots.push(undefined);
        if (slots[key] === undefined) this.count++;
        slots[key] = value;
        return;
      }
      const spread = new Map<number, T>();
      slots.forEach((v, k) => {
        if (v !== undefined) spread.set(k, v);
      });
      this.spread = spread;
      this.slots = [];
    }
    this.spread.set(key, value);
  }
}
