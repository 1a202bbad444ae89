// `node cr.mjs <command>`: the table of commands, each src/commands/<command>.ts, and cr's main
// over all of them (src/dispatch.ts). Each command declares its own command line
// (src/command-line.ts); the overall usage is put together from those. The build bundles each
// command on its own (src/bundle.ts), with dispatch.ts and that command's entry alone.
import { declarations, dispatcher, renderHelpTexts, type Commands, type HelpTexts } from './dispatch.js';

export { HELP_TEXTS, type HelpTexts } from './dispatch.js';

/** Every command's module, by name. A command is its module under src/commands and a line here. */
export const commands: Commands = {
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
export const allCommands = (): ReturnType<typeof declarations> => declarations(commands);

/** The help texts rendered from every command module's declaration (the build writes them to HELP_TEXTS). */
export const helpTexts = (): Promise<HelpTexts> => renderHelpTexts(commands);

export const main = dispatcher(commands);
