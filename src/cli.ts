// `node cr.mjs <command>`: dispatches to src/commands/<command>.ts. Each command declares its own
// command line (src/command-line.ts); the overall usage here is put together from those. This
// module imports only errors.ts before it knows the command: help comes from texts the build
// rendered, and the parser's module loads with the command.
import { readFileSync } from 'node:fs';
import type { Command, Flag } from './command-line.js';
import { CrError } from './errors.js';

interface CommandModule {
  command: Command<Record<string, Flag>>;
  run(args: string[]): Promise<number>;
}

const commands: Record<string, () => Promise<CommandModule>> = {
  dump: () => import('./commands/dump.js'),
  show: () => import('./commands/show.js'),
  plan: () => import('./commands/plan.js'),
  restore: () => import('./commands/restore.js'),
  diff: () => import('./commands/diff.js'),
  recover: () => import('./commands/recover.js'),
  fuzz: () => import('./commands/fuzz.js'),
  'fuzz-image': () => import('./commands/fuzz-image.js'),
  demo: () => import('./commands/demo.js'),
};

/** Every command's declaration, in the order above, from the modules themselves. */
export async function allCommands(): Promise<Array<Command<Record<string, Flag>>>> {
  return Promise.all(Object.values(commands).map(async (load) => (await load()).command));
}

/** The help texts: the overall usage, and each command's --help. */
export interface HelpTexts {
  usage: string;
  commands: Record<string, string>;
}

/** Where the build writes the help texts (scripts/build.mjs), beside build/src. */
export const HELP_TEXTS = new URL('../help.json', import.meta.url);

/** The help texts rendered from the command modules' declarations (the build writes them to HELP_TEXTS). */
export async function helpTexts(): Promise<HelpTexts> {
  const [{ PROG, renderHelp }, all] = await Promise.all([import('./command-line.js'), allCommands()]);
  const width = Math.max(...all.map((c) => c.name.length));
  const usage = [
    `usage: ${PROG} COMMAND [ARGS...]`,
    '',
    ...all.flatMap((c) => c.usage.map((u) => `  ${PROG} ${u}`)),
    `  ${PROG} help [COMMAND]`,
    `  ${PROG} --version`,
    '',
    'commands:',
    ...all.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    `  ${'help'.padEnd(width)}  This list, or one command's flags and examples (as COMMAND --help).`,
    '',
    `Every command takes -h/--help. Exit status: 0 done, 1 failed, 2 refused (bad input).`,
  ].join('\n');
  return { usage, commands: Object.fromEntries(all.map((c) => [c.name, renderHelp(c)])) };
}

/**
 * The help texts as the build wrote them: help and usage load no command module (whose loading,
 * most of cr, would cost more than Node's own start) and not even the parser's. Without the file
 * (a build older than it), rendered from the modules.
 */
async function texts(): Promise<HelpTexts> {
  try {
    return JSON.parse(readFileSync(HELP_TEXTS, 'utf8')) as HelpTexts;
  } catch {
    return helpTexts();
  }
}

async function version(): Promise<string> {
  const { toolVersion } = await import('./version.js');
  return `cr ${toolVersion()}`;
}

async function unknown(name: string): Promise<never> {
  const { PROG } = await import('./command-line.js');
  throw new CrError(`unknown command ${JSON.stringify(name)}; ${PROG} help lists them`, 2);
}

/** `help` alone, or `help COMMAND`. */
async function help(args: string[]): Promise<number> {
  if (args.length === 0) {
    console.log((await texts()).usage);
    return 0;
  }
  if (args.length > 1) throw new CrError(`help takes one COMMAND, not ${args.length}`, 2);
  if (!commands[args[0]!]) await unknown(args[0]!);
  console.log((await texts()).commands[args[0]!] ?? (await helpTexts()).commands[args[0]!]);
  return 0;
}

async function dispatch(name: string | undefined, rest: string[]): Promise<number> {
  switch (name) {
    case undefined:
      console.error((await texts()).usage);
      return 2;
    case '-h':
    case '--help':
    case 'help':
      return help(rest);
    case '-V':
    case '--version':
      console.log(await version());
      return 0;
    default: {
      const load = commands[name];
      if (!load) return await unknown(name);
      // `COMMAND --help` first: answered from the help texts (anywhere else, the command's parser sees it).
      if (rest[0] === '-h' || rest[0] === '--help') return help([name]);
      return (await load()).run(rest);
    }
  }
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  try {
    return await dispatch(name, rest);
  } catch (err) {
    const { terminalSafe } = await import('./printable.js');
    const who = name !== undefined && name in commands ? `cr ${name}` : 'cr';
    if (err instanceof CrError) {
      console.error(`${who}: ${terminalSafe(err.message)}`);
      return err.code;
    }
    const message = err instanceof Error ? err.message : String(err);
    console.error(`${who}: internal error: ${terminalSafe(message.split('\n')[0]!)}`);
    if (process.env.CR_DEBUG) console.error(err);
    return 70;
  }
}
