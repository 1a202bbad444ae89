// planRestore: the wasm planner (assembly/) behind a typed function. The module is
// compiled once per process and instantiated with nothing but env.abort.

import { readFileSync } from 'node:fs';
import { addLinks } from './links.js';
import { addPreparations } from './ptys.js';
import { PlanImpossible } from './planner-error.js';
import type { FdTable } from '../model/fdtable.js';
import { K_COMMIT, Plan } from './ops.js';
import type { PlanTarget } from '../model/restore-target.js';
import { encodeInput } from './encode.js';
import { decodeOps } from './decode.js';
import {
  ERROR_DECODE, ERROR_PAIRING, PAIRING_MIXED_CLASSES, PAIRING_OBJECT_WITHOUT_DESC, PAIRING_RDWR_PAIR_END,
  PAIRING_TWO_PIPE2_READS, PAIRING_TWO_PIPE2_WRITES, PLAN_FD_ABOVE_LIMIT, PLAN_FD_TOO_HIGH, PLAN_NO_FREE_FD,
  WARN_HARD_LIMIT_LOWERED,
} from '../abi.js';

export { PlanImpossible };

interface PlannerExports {
  memory: WebAssembly.Memory;
  input(n: number): number;
  plan(): number;
  output(): number;
  outputLength(): number;
}

const HEADER_WORDS = 5;
let planner: PlannerExports | undefined;

function load(): PlannerExports {
  if (planner) return planner;
  const url = new URL('../../planner.wasm', import.meta.url);
  const module = new WebAssembly.Module(readFileSync(url));
  const instance: WebAssembly.Instance = new WebAssembly.Instance(module, {
    env: {
      abort(msg: number, file: number, line: number, column: number) {
        const text = (at: number) => {
          if (!at) return '?';
          const memory = (instance.exports.memory as WebAssembly.Memory).buffer;
          const length = new Uint32Array(memory, at - 4, 1)[0] >>> 1;
          return String.fromCharCode(...new Uint16Array(memory, at, length));
        };
        throw new Error(`planner aborted: ${text(msg)} at ${text(file)}:${line}:${column}`);
      },
    },
  });
  planner = instance.exports as unknown as PlannerExports;
  return planner;
}

/** The plan that turns `target`'s fd table into `table`'s. Throws PlanImpossible. */
export function planRestore(table: FdTable, target: PlanTarget): Plan {
  const wasm = load();
  // The words are written straight into the planner's input buffer (its address is known only
  // once input() has made it, which may grow the memory: the view is taken after).
  const enc = encodeInput(table, target, (n) => {
    const at = wasm.input(n);
    return new Int32Array(wasm.memory.buffer, at, n);
  });
  if (enc.words.buffer !== wasm.memory.buffer) {
    // More words than input() was asked for (socket pairs): encode's own array, copied in.
    const at = wasm.input(enc.words.length);
    new Int32Array(wasm.memory.buffer, at, enc.words.length).set(enc.words);
  }
  let code: number;
  try {
    code = wasm.plan();
  } catch (err) {
    // A trapped instance may hold broken state: the next plan gets a fresh one.
    planner = undefined;
    throw err;
  }
  // A view of the planner's memory, not a copy: it is read before the planner runs again.
  const outAt = wasm.output();
  const out = new Int32Array(wasm.memory.buffer, outAt, wasm.outputLength());
  if (code !== 0) throw new PlanImpossible(explain(code, out[1]!, out[2]!, table, target));
  const lowerBound = out[1]!;
  const lowered = (out[4]! & WARN_HARD_LIMIT_LOWERED) !== 0;
  let ops = decodeOps(out, HEADER_WORDS, out[3]!, table, enc);
  // Only a table with a kind that makes links, or prepares an object, has any to add.
  if (enc.anyLinks) ops = addLinks(ops, table, target);
  if (enc.anyPrepare) ops = addPreparations(ops, table, target);
  const warnings: string[] = [];
  if (lowered) {
    warnings.push(`hard RLIMIT_NOFILE ${table.rlimit.hard} is above the target's ${target.rlimit.hard} and cannot be raised without CAP_SYS_RESOURCE; it stays ${target.rlimit.hard}`);
  }
  // addPreparations may put ops before the commit marker: its index is where it is now.
  return new Plan(ops, lowerBound, ops.find(K_COMMIT), warnings);
}

function explain(code: number, arg: number, arg2: number, table: FdTable, target: PlanTarget): string {
  const pipeId = (i: number) => table.pipes[i]?.id ?? i;
  switch (code) {
    case PLAN_FD_ABOVE_LIMIT:
      return `fd ${arg} cannot exist in the target: its hard RLIMIT_NOFILE is ${arg2}`;
    case PLAN_NO_FREE_FD:
      return `no free fd number left below the target's hard RLIMIT_NOFILE ${target.rlimit.hard} to create ${arg === 0 ? `pipe ${pipeId(arg2)}` : `description ${table.descs[arg2]?.id ?? arg2}`} (every number is taken and a temporary fd is needed)`;
    case PLAN_FD_TOO_HIGH:
      return `fd ${arg} is above ${arg2}, the highest fd number cr plans for`;
    case ERROR_PAIRING + PAIRING_TWO_PIPE2_READS:
      return `pipe ${pipeId(arg)} has two read ends without O_LARGEFILE: one pipe2() cannot have made both`;
    case ERROR_PAIRING + PAIRING_TWO_PIPE2_WRITES:
      return `pipe ${pipeId(arg)} has two write ends without O_LARGEFILE: one pipe2() cannot have made both`;
    case ERROR_PAIRING + PAIRING_MIXED_CLASSES:
      return `pipe ${pipeId(arg)} mixes FIFO and anonymous pipe descriptions`;
    case ERROR_PAIRING + PAIRING_OBJECT_WITHOUT_DESC:
      return `pipe ${pipeId(arg)} has no description`;
    case ERROR_PAIRING + PAIRING_RDWR_PAIR_END:
      return `description ${table.descs[arg]?.id ?? arg}: an O_RDWR pipe end without O_LARGEFILE cannot exist (pipe2 makes one-way ends)`;
    default:
      return code >= ERROR_DECODE && code < ERROR_PAIRING
        ? `the table is inconsistent (planner input check ${code - ERROR_DECODE}, item ${arg})`
        : `planner failed with code ${code}`;
  }
}
