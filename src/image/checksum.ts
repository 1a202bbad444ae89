// The whole-process image's checksum (its END record): XXH3, 64 bits, of every byte before it.
// It is there to catch damage (a truncated copy, flipped bits, a torn write), not an author who
// means harm: whoever writes an image can compute any checksum, and what a restore may give is
// bounded by who wrote the file (docs/trust.md), never by this. For damage a 64-bit hash misses
// one corrupt image in 2^64; SHA-256, which it replaced, cost 0.7 ms per MiB here (each byte
// hashed at dump and again at restore: 420 ms for a 300 MiB image) against 0.05 ms.
// @node-rs/xxhash is native code (the C reference implementation), loaded the first time an
// image is hashed: commands that never hash one do not load it.
import { createRequire } from 'node:module';

/** Bytes of the END record's body. */
export const CHECKSUM_BYTES = 8;

interface Xxh3State {
  update(input: Uint8Array): unknown;
  digest(): bigint;
}

type Xxh3 = { Xxh3: { withSeed(seed?: bigint): Xxh3State } };
let xxh3: Xxh3 | null = null;

/**
 * The native module. @node-rs/xxhash's entry finds it by trying a file beside itself, reading
 * /usr/bin/ldd for musl, then a package per platform (12-19 ms CPU in process against 7-11 for
 * the module alone, load 10). cr runs on x86_64 Linux with glibc, so that build, a pinned
 * dependency of @node-rs/xxhash, is loaded directly; wherever it is not installed or does not
 * load, the entry finds the right one (as bridge/libc.ts loads koffi).
 */
function loadXxh3(): Xxh3 {
  const require = createRequire(import.meta.url);
  try {
    return (require('@node-rs/xxhash-linux-x64-gnu/xxhash.linux-x64-gnu.node') as { xxh3: Xxh3 }).xxh3;
  } catch {
    return (require('@node-rs/xxhash') as { xxh3: Xxh3 }).xxh3;
  }
}

/** A checksum fed the image's bytes as they go by. */
export class ImageChecksum {
  private readonly state: Xxh3State;

  constructor() {
    xxh3 ??= loadXxh3();
    this.state = xxh3.Xxh3.withSeed(0n);
  }

  update(bytes: Uint8Array): void {
    this.state.update(bytes);
  }

  /** The END record's body: the 64-bit hash, little-endian. */
  digest(): Buffer {
    const out = Buffer.alloc(CHECKSUM_BYTES);
    out.writeBigUInt64LE(this.state.digest());
    return out;
  }
}

/** The checksum of bytes held whole. */
export const imageChecksum = (bytes: Uint8Array): Buffer => {
  const c = new ImageChecksum();
  c.update(bytes);
  return c.digest();
};
