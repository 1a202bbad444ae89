// What the bad-image fuzzer works with: a seed (a good image) and a mutant made from it, with what
// every reader must do with it. Their own module so that the fd-image mutants (mutants.ts) and the
// whole-process ones (process.ts) share them without importing each other.
import type { Column } from './cli.js';

export type Expect = 'reject' | 'any';

export interface Mutant {
  family: string;
  name: string;
  expect: Expect;
  bytes(): Buffer;
  /**
   * Set when the mutant is a known, reported gap (src file, line and why): counted apart, and
   * left out of the pass/fail verdict until the owner's fix lands.
   */
  knownGap?: string;
  /** tens of megabytes: judged in process, never written out for the CLI */
  big?: boolean;
  /** the CLI commands that must refuse it, when not all of them (show only prints a table) */
  columns?: readonly Column[];
}

export interface Seed {
  name: string;
  bytes: Buffer;
}

export interface MutantOptions {
  /** PRNG seed for the random families */
  seed: number;
  /** random bit flips per seed image (checksum left as is: all must be refused) */
  flips: number;
  /** random byte splices (overwrite, insert, delete) per seed image */
  splices: number;
  /** random flips inside the payload with the checksum recomputed, per seed image ('any') */
  refits: number;
  /** every truncation of the smallest seed; of the others, this many random lengths */
  truncations: number;
  /** include the mutants of tens of megabytes (slow to build and read) */
  huge: boolean;
}
