// `node cr.mjs <command>`: dispatches to src/commands/<command>.ts.
import { CrError } from './errors.js';

const commands: Record<string, { summary: string; load: () => Promise<{ run(args: string[]): Promise<number> }> }> = {
  dump: { summary: 'dump --pid PID -o IMAGE [--fds-only]   checkpoint a whole process (or only its fd table)', load: () => import('./commands/dump.js') },
  show: { summary: 'show IMAGE [--json]          print an image', load: () => import('./commands/show.js') },
  plan: { summary: 'plan INPUT [--json] [--target-fds LIST] [--rlimit N]   plan a restore and verify it', load: () => import('./commands/plan.js') },
  restore: { summary: 'restore IMAGE [--detach] [--same-pid]   restart a dumped process where it stopped\n  restore IMAGE -- CMD | --into PID   give a new or running process the image\'s fd table', load: () => import('./commands/restore.js') },
  diff: { summary: 'diff A B                     compare two images', load: () => import('./commands/diff.js') },
  fuzz: { summary: 'fuzz [--seed N] [--count N]  check the planner on random tables', load: () => import('./commands/fuzz.js') },
  'fuzz-image': { summary: 'fuzz-image [IMAGE...]        check that bad images are refused cleanly', load: () => import('./commands/fuzz-image.js') },
  demo: { summary: 'demo                         dump and restore a real process, step by step', load: () => import('./commands/demo.js') },
};

function usage(): string {
  return ['usage: node cr.mjs <command> [args]', '', ...Object.values(commands).map((c) => '  ' + c.summary)].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    console.log(usage());
    return name ? 0 : 2;
  }
  const command = commands[name];
  if (!command) {
    console.error(`cr: unknown command '${name}' (try: node cr.mjs help)`);
    return 2;
  }
  try {
    const mod = await command.load();
    return await mod.run(rest);
  } catch (err) {
    if (err instanceof CrError) {
      console.error(`cr ${name}: ${err.message}`);
      return err.code;
    }
    const message = err instanceof Error ? err.message : String(err);
    console.error(`cr ${name}: internal error: ${message.split('\n')[0]}`);
    if (process.env.CR_DEBUG) console.error(err);
    return 70;
  }
}
