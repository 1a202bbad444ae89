// Help and parser messages: every command's --help lists every flag its parser accepts (the list
// comes from the parser's own declaration, so a flag added without help fails here), the overall
// usage names every flag, --version is package.json's, and every mistake on the command line is
// one line of cr's own wording with exit 2.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compileBundle } from '../src/bundle.js';
import { allCommands, commands as table, helpTexts, HELP_TEXTS } from '../src/cli.js';
import { flagNames } from '../src/command-line.js';
import { cr, ROOT } from './helpers/cli.js';

const commands = await allCommands();
const oneLine = (text: string): boolean => text.endsWith('\n') && !text.slice(0, -1).includes('\n');

test('every module in src/commands is a command cr dispatches to, and none parses on its own', () => {
  const files = readdirSync(join(ROOT, 'src', 'commands')).filter((f) => f.endsWith('.ts'));
  assert.equal(commands.map((c) => `${c.name}.ts`).sort(), files.sort());
  for (const file of files) {
    const source = readFileSync(join(ROOT, 'src', 'commands', file), 'utf8');
    assert.not.match(source, /parseArgs|process\.argv/, `${file} parses its own arguments`);
  }
});

test('every command has a bundle, compiled from a code cache V8 takes', () => {
  for (const name of Object.keys(table)) {
    const { script } = compileBundle(name);
    assert.is(script.cachedDataRejected, false, name);
  }
});

test('the help texts the build wrote are the command modules\' own', async () => {
  assert.equal(JSON.parse(readFileSync(HELP_TEXTS, 'utf8')), await helpTexts());
});

for (const command of commands) {
  test(`${command.name} --help: usage, every flag its parser takes with one line, two examples; -h and help ${command.name} the same`, async () => {
    const r = await cr([command.name, '--help']);
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stderr, '');
    const text = r.stdout;
    assert.match(text, new RegExp(`^usage: node cr\\.mjs ${command.name}\\b`));
    const options = text.slice(text.indexOf('\noptions:\n'), text.indexOf('\nexamples:\n'));
    for (const name of flagNames(command)) {
      const line = options.split('\n').find((l) => new RegExp(`(^|[ ,])--${name}\\b`).test(l));
      assert.ok(line, `--${name} is not in ${command.name}'s help`);
      // The flag, then (after two spaces or more) what it does.
      assert.match(line!, /\S {2,}\S.{9,}$/, `--${name} has no line of help`);
    }
    for (const [name, flag] of Object.entries(command.flags)) {
      if (flag.short) assert.ok(options.includes(`-${flag.short}, --${name}`), `-${flag.short} for --${name}`);
    }
    const examples = text.slice(text.indexOf('\nexamples:\n')).split('\n').filter((l) => l.startsWith(`  node cr.mjs ${command.name}`));
    assert.ok(examples.length >= 2, `${command.name}: ${examples.length} examples`);
    assert.is((await cr([command.name, '-h'])).stdout, text);
    assert.is((await cr(['help', command.name])).stdout, text);
  });

  test(`${command.name}: an unknown flag, a flag without its value: one line each, exit 2, cr's own words`, async () => {
    // One at a time: cr() captures the console of this process.
    const runs = [await cr([command.name, '--no-such-flag']), await cr([command.name, '-Q'])];
    for (const [name, flag] of Object.entries(command.flags)) if (flag.value) runs.push(await cr([command.name, `--${name}`]));
    for (const r of runs) {
      assert.is(r.code, 2, r.stderr);
      assert.ok(oneLine(r.stderr), JSON.stringify(r.stderr));
      assert.match(r.stderr, new RegExp(`^cr ${command.name}: \\S.*; see node cr\\.mjs ${command.name} --help\\n$`));
      assert.not.match(r.stderr, /ERR_PARSE_ARGS|Unknown option|ambiguous|argument is/);
    }
    assert.is(runs[0]!.stderr, `cr ${command.name}: unknown option "--no-such-flag"; see node cr.mjs ${command.name} --help\n`);
  });
}

test('the overall usage names every flag of every command, each line with the same prefix', async () => {
  const r = await cr(['help']);
  assert.is(r.code, 0);
  const forms = r.stdout.split('\n').filter((l) => l.startsWith('  node cr.mjs '));
  for (const command of commands) {
    const mine = forms.filter((l) => l.startsWith(`  node cr.mjs ${command.name} `) || l === `  node cr.mjs ${command.name}`);
    assert.ok(mine.length > 0, command.name);
    for (const name of Object.keys(command.flags)) assert.ok(mine.some((l) => l.includes(`--${name}`) || l.includes(`-${command.flags[name]!.short} `)), `${command.name} --${name}`);
  }
  // Every line of the usage part starts `  node cr.mjs`, with no other prefix in between.
  const usagePart = r.stdout.slice(r.stdout.indexOf('\n\n') + 2, r.stdout.indexOf('\n\ncommands:'));
  assert.ok(usagePart.split('\n').every((l) => l.startsWith('  node cr.mjs ')), usagePart);
  assert.is((await cr(['--help'])).stdout, r.stdout);
  assert.is((await cr(['-h'])).stdout, r.stdout);
  // No command at all: the same usage, as a refusal.
  const bare = await cr([]);
  assert.is(bare.code, 2);
  assert.is(bare.stderr, r.stdout);
});

test('the README\'s Commands section names every command and every flag', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Commands\n'), readme.indexOf('\n## ', readme.indexOf('\n## Commands\n') + 1));
  for (const command of commands) {
    assert.ok(section.includes(`node cr.mjs ${command.name}`), command.name);
    for (const name of Object.keys(command.flags)) assert.ok(section.includes(`--${name}`) || section.includes(`-${command.flags[name]!.short} `), `${command.name} --${name}`);
  }
});

test('--version and -V print package.json\'s version', async () => {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  for (const flag of ['--version', '-V']) {
    const r = await cr([flag]);
    assert.is(r.code, 0);
    assert.is(r.stdout, `cr ${version}\n`);
  }
});

test('the messages the issue names: the missing option named, a negative pid, help for an unknown command', async () => {
  let r = await cr(['dump', '--pid', '4242']);
  assert.equal([r.code, r.stderr], [2, 'cr dump: -o IMAGE is required; see node cr.mjs dump --help\n']);
  r = await cr(['dump', '--pid', '-5', '-o', 'x.img']);
  assert.equal([r.code, r.stderr], [2, 'cr dump: --pid: "-5" is not a pid\n']);
  r = await cr(['restore', 'x.img', '--into', '-5']);
  assert.equal([r.code, r.stderr], [2, 'cr restore: --into: "-5" is not a pid\n']);
  r = await cr(['dump', '--pid', '1', '--pid', '2', '-o', 'x.img']);
  assert.equal([r.code, r.stderr], [2, 'cr dump: --pid is given twice; see node cr.mjs dump --help\n']);
  r = await cr(['diff', 'a']);
  assert.equal([r.code, r.stderr], [2, 'cr diff: B is required; see node cr.mjs diff --help\n']);
  r = await cr(['help', 'nope']);
  assert.equal([r.code, r.stderr], [2, 'cr: unknown command "nope"; node cr.mjs help lists them\n']);
  r = await cr(['nope']);
  assert.equal([r.code, r.stderr], [2, 'cr: unknown command "nope"; node cr.mjs help lists them\n']);
  // After "--" everything is CMD's: its --help is not cr's.
  r = await cr(['restore', join(ROOT, 'no-such.img'), '--', 'cat', '--help']);
  assert.is(r.code, 2);
  assert.is(r.stdout, '');
  assert.match(r.stderr, /^cr restore: cannot read [^\n]*no-such\.img[^\n]*\n$/);
});

test.run();
