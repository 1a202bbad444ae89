// A command's command line, declared once: its flags (each with one line of help), its operands,
// usage lines and examples. From that one declaration come both the parser (with cr's own wording
// for every mistake: one line, exit 2) and the text of `--help`, so a flag cannot be accepted
// without being documented.
import { badInput } from './errors.js';

/** How the user runs cr, in usage lines, examples and hints (the README's form). */
export const PROG = 'node cr.mjs';

export interface Flag {
  /** one letter, for `-x` */
  readonly short?: string;
  /** the placeholder of the value it takes (`PID`); a flag without one is a switch */
  readonly value?: string;
  /** the value when the flag is not given */
  readonly default?: string;
  /** may be given more than once: every value is kept, in order */
  readonly repeatable?: boolean;
  /** must be given */
  readonly required?: boolean;
  /** one line */
  readonly help: string;
}

export interface Operand {
  /** `IMAGE` */
  readonly name: string;
  readonly help: string;
  readonly optional?: boolean;
  /** takes all the remaining operands (the last one only) */
  readonly many?: boolean;
}

export interface Command<F extends Record<string, Flag>> {
  readonly name: string;
  /** one line: what the command does */
  readonly summary: string;
  /** the forms of the command, without `node cr.mjs`; together they name every flag */
  readonly usage: readonly string[];
  readonly operands: readonly Operand[];
  readonly flags: F;
  /** the name of what may follow `--` (`CMD`: `-- CMD [ARGS...]`), handed back untouched */
  readonly command?: string;
  /** at least two command lines, without `node cr.mjs` */
  readonly examples: readonly string[];
}

type ValueOf<F extends Flag> = F extends { value: string }
  ? F extends { repeatable: true }
    ? string[]
    : F extends { default: string } | { required: true }
      ? string
      : string | undefined
  : boolean;

export type Values<F extends Record<string, Flag>> = { -readonly [K in keyof F]: ValueOf<F[K]> };

export interface Parsed<F extends Record<string, Flag>> {
  values: Values<F>;
  operands: string[];
  /** what followed `--`, or undefined when there was no `--` */
  command: string[] | undefined;
}

/** Declare a command (the `const` keeps each flag's literal shape for its value's type). */
export const defineCommand = <const F extends Record<string, Flag>>(command: Command<F>): Command<F> => command;

/** Flags every command takes, handled here. */
const HELP: Flag = { short: 'h', help: 'print this help and exit' };

/** `-o`, `--pid`: the flag's shortest name. */
const flagId = (name: string, flag: Flag): string => (flag.short ? `-${flag.short}` : `--${name}`);

/** `-o IMAGE`, `--pid PID`, `--force`: how a flag is named in messages. */
const shown = (name: string, flag: Flag): string => (flag.value ? `${flagId(name, flag)} ${flag.value}` : flagId(name, flag));

const seeHelp = (command: Command<Record<string, Flag>>): string => `see ${PROG} ${command.name} --help`;

/**
 * Parse args against the command's declaration. Returns undefined after printing the help when
 * asked for (`-h`, `--help` before any `--`); refuses every mistake with one line (exit 2).
 */
export function parseCommand<F extends Record<string, Flag>>(command: Command<F>, args: string[]): Parsed<F> | undefined {
  const dashes = args.indexOf('--');
  const own = dashes < 0 ? args : args.slice(0, dashes);
  if (own.includes('--help') || own.includes('-h')) {
    console.log(renderHelp(command));
    return undefined;
  }
  const fail = (message: string): never => badInput(`${message}; ${seeHelp(command)}`);
  const flags = Object.entries(command.flags) as Array<[string, Flag]>;
  const byArg = new Map<string, [string, Flag]>();
  for (const entry of flags) {
    byArg.set(`--${entry[0]}`, entry);
    if (entry[1].short) byArg.set(`-${entry[1].short}`, entry);
  }
  const given = new Map<string, string[] | true>();
  const operands: string[] = [];
  for (let i = 0; i < own.length; i++) {
    const arg = own[i]!;
    if (!arg.startsWith('-') || arg === '-') {
      operands.push(arg);
      continue;
    }
    // --name=value, -oVALUE, or the flag alone.
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const key = eq > 0 ? arg.slice(0, eq) : arg.startsWith('--') ? arg : arg.slice(0, 2);
    const attached = eq > 0 ? arg.slice(eq + 1) : !arg.startsWith('--') && arg.length > 2 ? arg.slice(2) : undefined;
    const entry = byArg.get(key);
    if (entry === undefined) fail(`unknown option ${JSON.stringify(key)}`);
    const [name, flag] = entry!;
    if (!flag.value) {
      if (attached !== undefined) fail(`${flagId(name, flag)} takes no value`);
      if (given.has(name)) fail(`${flagId(name, flag)} is given twice`);
      given.set(name, true);
      continue;
    }
    let value = attached;
    if (value === undefined) {
      // The next argument is the value, whatever it looks like (`--pid -5` is a bad pid, said by
      // the command), unless it is one of this command's own flags: then the value was left out.
      const next = own[i + 1];
      if (next === undefined || byArg.has(next.split('=')[0]!)) fail(`${flagId(name, flag)} is missing its value (${flag.value})`);
      value = next;
      i++;
    }
    const before = given.get(name);
    if (before !== undefined && !flag.repeatable) fail(`${flagId(name, flag)} is given twice`);
    given.set(name, [...(Array.isArray(before) ? before : []), value!]);
  }
  const values: Record<string, string | string[] | boolean | undefined> = {};
  for (const [name, flag] of flags) {
    const got = given.get(name);
    if (got === undefined && flag.required) fail(`${shown(name, flag)} is required`);
    if (!flag.value) values[name] = got === true;
    else if (flag.repeatable) values[name] = Array.isArray(got) ? got : [];
    else values[name] = Array.isArray(got) ? got[got.length - 1] : flag.default;
  }
  checkOperands(command, operands, fail);
  let rest: string[] | undefined;
  if (dashes >= 0) {
    if (command.command === undefined) fail('unexpected "--"');
    rest = args.slice(dashes + 1);
    if (rest.length === 0) fail(`${command.command} is missing after "--"`);
  }
  return { values: values as Values<F>, operands, command: rest };
}

function checkOperands(command: Command<Record<string, Flag>>, operands: string[], fail: (message: string) => never): void {
  const all = command.operands;
  const missing = all.slice(operands.length).filter((o) => !o.optional).map((o) => o.name);
  if (missing.length > 0) fail(`${missing.join(' and ')} ${missing.length === 1 ? 'is' : 'are'} required`);
  const many = all[all.length - 1]?.many === true;
  if (!many && operands.length > all.length) {
    const extra = operands[all.length]!;
    fail(all.length === 0 ? `takes no arguments, not ${JSON.stringify(extra)}` : `unexpected argument ${JSON.stringify(extra)}`);
  }
}

/** `-o, --output IMAGE`, `    --pid PID`: a flag's left column in help. */
function flagColumn(name: string, flag: Flag): string {
  const value = flag.value ? ` ${flag.value}` : '';
  return `${flag.short ? `-${flag.short}, ` : '    '}--${name}${value}`;
}

/** Two columns, the left padded to its widest entry. */
function columns(rows: Array<[string, string]>): string[] {
  const width = Math.max(...rows.map(([left]) => left.length));
  return rows.map(([left, right]) => `  ${left.padEnd(width)}  ${right}`);
}

/** The text of `COMMAND --help` (and of `help COMMAND`). */
export function renderHelp(command: Command<Record<string, Flag>>): string {
  const [first, ...more] = command.usage;
  const lines = [`usage: ${PROG} ${first}`, ...more.map((u) => `       ${PROG} ${u}`), '', command.summary];
  if (command.operands.length > 0 || command.command) {
    lines.push('', 'arguments:');
    const rows: Array<[string, string]> = command.operands.map((o) => [o.name, o.help]);
    if (command.command) rows.push([`-- ${command.command} [ARGS...]`, 'the program to start, and its arguments (all that follows "--")']);
    lines.push(...columns(rows));
  }
  const flags = [...(Object.entries(command.flags) as Array<[string, Flag]>), ['help', HELP] as [string, Flag]];
  lines.push('', 'options:');
  lines.push(...columns(flags.map(([name, flag]) => [flagColumn(name, flag), flag.help + (flag.default !== undefined ? ` (default ${flag.default})` : '')])));
  lines.push('', 'examples:', ...command.examples.map((e) => `  ${PROG} ${e}`));
  return lines.join('\n');
}

/** The long names of every flag a command takes, help included: what its --help must list. */
export function flagNames(command: Command<Record<string, Flag>>): string[] {
  return [...Object.keys(command.flags), 'help'];
}
