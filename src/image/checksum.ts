// The whole-process image's checksum (its END record): XXH3, 64 bits, of every byte before it.
// It is there to catch damage (a truncated copy, flipped bits, a torn write), not an author who
// means harm: whoever writes an image can compute any checksum, and what a restore may give is
// bounded by who wrote the file (docs/trust.md), never by this. For damage a 64-bit hash misses
// one corrupt image in 2^64; SHA-256, which it replaced, cost 0.7 ms per MiB here (each byte
// hashed at dump and again at restore: 420 ms for a 300 MiB image) against 0.05 ms.
// The hash is the system's libxxhash (the C reference implementation, 0.8 or later, whose XXH3 is
// stable) through koffi where it is installed (Debian's apt depends on it): loading it costs about
// 0.2 ms against 1-2 ms for @node-rs/xxhash's native module (docs/performance.md), the same bytes
// hashed at the same speed. Elsewhere @node-rs/xxhash, the same function. Loaded the first time an
// image is hashed: commands that never hash one load neither.
import { createRequire } from 'node:module';
import { loadLibrary } from '../../bridge/libc.js';

/** Bytes of the END record's body. */
export const CHECKSUM_BYTES = 8;

interface Xxh3State {
  update(input: Uint8Array): unknown;
  digest(): bigint;
}

type Xxh3 = { withSeed(seed?: bigint): Xxh3State };
let xxh3: Xxh3 | null = null;

/** libxxhash's states, each freed once the checksum that hashes with it is collected. */
const freeing = new FinalizationRegistry<() => void>((free) => free());

/** XXH3 as libxxhash's streaming functions (XXH3_64bits_reset's seed is 0), or null where it is not there or older than 0.8. */
function systemXxh3(): Xxh3 | null {
  let f: (prototype: string) => (...args: unknown[]) => unknown;
  try {
    const lib = loadLibrary('libxxhash.so.0');
    f = (prototype) => lib.func(prototype);
    // 0.8.0 is 800: XXH3's output was not final before it.
    if ((f('unsigned int XXH_versionNumber(void)')() as number) < 800) return null;
  } catch {
    return null;
  }
  const create = f('void *XXH3_createState(void)');
  const free = f('int XXH3_freeState(void *state)');
  const reset = f('int XXH3_64bits_reset(void *state)');
  const update = f('int XXH3_64bits_update(void *state, const void *input, size_t length)');
  const digest = f('uint64_t XXH3_64bits_digest(const void *state)');
  return {
    withSeed(seed = 0n): Xxh3State {
      if (seed !== 0n) throw new Error('XXH3 with a seed other than 0');
      const state = create();
      if (state === null) throw new Error('XXH3_createState: out of memory');
      if (reset(state) !== 0) throw new Error('XXH3_64bits_reset failed');
      const hashing = {
        update(input: Uint8Array): void {
          if (update(state, input, input.length) !== 0) throw new Error('XXH3_64bits_update failed');
        },
        // The digest leaves the state as it was: more bytes may follow (a writer hashes its END record too).
        digest: (): bigint => BigInt(digest(state) as bigint | number),
      };
      freeing.register(hashing, () => free(state));
      return hashing;
    },
  };
}

/**
 * @node-rs/xxhash's native module. Its entry finds it by trying a file beside itself, reading
 * /usr/bin/ldd for musl, then a package per platform (12-19 ms CPU in process against 7-11 for
 * the module alone, load 10). cr runs on x86_64 Linux with glibc, so that build, a pinned
 * dependency of @node-rs/xxhash, is loaded directly; wherever it is not installed or does not
 * load, the entry finds the right one (as bridge/libc.ts loads koffi).
 */
function nodeRsXxh3(): Xxh3 {
  const require = createRequire(import.meta.url);
  type Module = { xxh3: { Xxh3: Xxh3 } };
  try {
    return (require('@node-rs/xxhash-linux-x64-gnu/xxhash.linux-x64-gnu.node') as Module).xxh3.Xxh3;
  } catch {
    return (require('@node-rs/xxhash') as Module).xxh3.Xxh3;
  }
}

/** Which implementation hashes, for the test that both agree: the system's, else @node-rs/xxhash. */
export const xxh3Implementations = (): { system: Xxh3 | null; nodeRs: Xxh3 } => ({ system: systemXxh3(), nodeRs: nodeRsXxh3() });

/** A checksum fed the image's bytes as they go by. */
export class ImageChecksum {
  private readonly state: Xxh3State;

  constructor() {
    xxh3 ??= systemXxh3() ?? nodeRsXxh3();
    this.state = xxh3.withSeed(0n);
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
