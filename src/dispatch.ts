// cr's main over a table of command modules: help and usage, the version, dispatch to a command,
// and every error as one line with its exit status. src/cli.ts gives it every command; each
// command's bundle (src/bundle.ts) gives it that command alone, so the bundle holds no other
// command's modules. It imports only errors.ts before it knows the command: help comes from
// texts the build rendered, and the parser's module loads with the command.
import { readFileSync } from 'node:fs';
import type { Command, Flag } from './command-line.js';
import { CrError } from './errors.js';

export interface CommandModule {
  command: Command<Record<string, Flag>>;
  run(args: string[]): Promise<number>;
}

/** Command modules by name, each loaded when asked for. */
export type Commands = Record<string, () => Promise<CommandModule>>;

/** The help texts: the overall usage, and each command's --help. */
export interface HelpTexts {
  usage: string;
  commands: Record<string, string>;
}

/** Where the build writes the help texts (scripts/build.mjs), beside build/src. */
export const HELP_TEXTS = new URL('../help.json', import.meta.url);

/** Each command's declaration, in the table's order, from the modules themselves. */
export async function declarations(commands: Commands): Promise<Array<Command<Record<string, Flag>>>> {
  return Promise.all(Object.values(commands).map(async (load) => (await load()).command));
}

/** The help texts rendered from the command modules' declarations. */
export async function renderHelpTexts(commands: Commands): Promise<HelpTexts> {
  const [{ PROG, renderHelp }, all] = await Promise.all([import('./command-line.js'), declarations(commands)]);
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

/** cr's main, dispatching to `commands`. */
export function dispatcher(commands: Commands): (argv: string[]) => Promise<number> {
  /**
   * The help texts as the build wrote them: help and usage load no command module (whose loading,
   * most of cr, would cost more than Node's own start) and not even the parser's. Without the file
   * (a build older than it), rendered from the modules.
   */
  const texts = async (): Promise<HelpTexts> => {
    try {
      return JSON.parse(readFileSync(HELP_TEXTS, 'utf8')) as HelpTexts;
    } catch {
      return renderHelpTexts(commands);
    }
  };

  const version = async (): Promise<string> => {
    const { toolVersion } = await import('./version.js');
    return `cr ${toolVersion()}`;
  };

  const unknown = async (name: string): Promise<never> => {
    const { PROG } = await import('./command-line.js');
    throw new CrError(`unknown command ${JSON.stringify(name)}; ${PROG} help lists them`, 2);
  };

  /** `help` alone, or `help COMMAND`. */
  const help = async (args: string[]): Promise<number> => {
    if (args.length === 0) {
      console.log((await texts()).usage);
      return 0;
    }
    if (args.length > 1) throw new CrError(`help takes one COMMAND, not ${args.length}`, 2);
    if (!commands[args[0]!]) await unknown(args[0]!);
    console.log((await texts()).commands[args[0]!] ?? (await renderHelpTexts(commands)).commands[args[0]!]);
    return 0;
  };

  const dispatch = async (name: string | undefined, rest: string[]): Promise<number> => {
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
  };

  return async (argv: string[]): Promise<number> => {
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
  };
}
