// A set of fd numbers below a limit, answering "lowest number not in the set" the
// way the kernel's fd allocator does (fs/file.c: find_next_fd), in word-sized steps.

export class FdSet {
  words: StaticArray<u64>;
  limit: i32;
  /** no word below this index has a zero bit */
  private fullBelow: i32 = 0;

  constructor(limit: i32) {
    this.limit = limit;
    this.words = new StaticArray<u64>(((limit + 63) >> 6) + 1);
  }

  has(fd: i32): bool {
    return ((unchecked(this.words[fd >> 6]) >> u64(fd & 63)) & 1) != 0;
  }

  add(fd: i32): void {
    unchecked((this.words[fd >> 6] |= u64(1) << u64(fd & 63)));
  }

  remove(fd: i32): void {
    unchecked((this.words[fd >> 6] &= ~(u64(1) << u64(fd & 63))));
    if (fd >> 6 < this.fullBelow) this.fullBelow = fd >> 6;
  }

  /** Lowest number in the set, or -1 when it is empty. */
  lowestUsed(): i32 {
    const n = (this.limit + 63) >> 6;
    for (let w = 0; w < n; w++) {
      const bits = unchecked(this.words[w]);
      if (bits != 0) return (w << 6) + i32(ctz(bits));
    }
    return -1;
  }

  /** Lowest number >= min that is in neither this set nor `also` (if given), or -1 below the limit. */
  lowestFree(min: i32, also: FdSet | null = null): i32 {
    if (min >= this.limit) return -1;
    let w = min >> 6;
    if (also === null && min == 0) w = this.fullBelow;
    const n = (this.limit + 63) >> 6;
    for (; w < n; w++) {
      let used = unchecked(this.words[w]);
      if (also !== null) used |= unchecked(also.words[w]);
      if (w == min >> 6 && (min & 63) != 0) used |= (u64(1) << u64(min & 63)) - 1;
      if (used == u64.MAX_VALUE) {
        if (also === null && min == 0) this.fullBelow = w + 1;
        continue;
      }
      const fd = (w << 6) + i32(ctz(~used));
      return fd < this.limit ? fd : -1;
    }
    return -1;
  }
}
