// diff of two whole-process images beyond their fd tables: what the process is (argv, exe, cwd,
// umask, credentials, limits, no_new_privs), its memory layout (mappings: address, protection,
// backing, flags), its signals (actions, blocked mask, pending, alternate stack) and each
// thread's (name, blocked mask, pending, alternate stack), one line per difference. Not compared: the pid (a restart gets a new one), registers and interval timers
// (they move while a process runs), the kernel and cr versions.
import { sha256 } from '../../bridge/sha256.js';
import { kindOf } from '../kinds/registry.js';
import { tableJson } from '../model/json.js';
import type { HeadJson, MappingJson } from '../image/head-json.js';
import { printable } from '../printable.js';

/** How many mapping differences are named before `+N more`. */
const MAPPINGS_SHOWN = 10;

const text = (v: unknown): string => printable(JSON.stringify(v));

const mappingText = (m: MappingJson): string =>
  `${m.start.slice(2)}-${m.end.slice(2)} ${m.prot} ${m.kind}${m.name ? ` ${printable(m.name)}` : ''}${m.unnamed ? ` of description ${m.unnamed.desc} @ ${m.unnamed.offset}` : ''}${m.vmflags.length ? ` [${m.vmflags.join(' ')}]` : ''}`;

function compareMappings(a: MappingJson[], b: MappingJson[]): string[] {
  // Guard regions are compared on their own (src/diff/guards.ts), in pages not counts.
  const key = (m: MappingJson): string => text({ ...m, guards: 0 });
  const inB = new Set(b.map(key));
  const inA = new Set(a.map(key));
  const lines = [
    ...a.filter((m) => !inB.has(key(m))).map((m) => `mapping only in A: ${mappingText(m)}`),
    ...b.filter((m) => !inA.has(key(m))).map((m) => `mapping only in B: ${mappingText(m)}`),
  ];
  if (lines.length === 0) return [];
  const head = a.length === b.length ? `mappings: ${lines.length} differ` : `mappings: ${a.length} in A, ${b.length} in B`;
  const more = lines.length > MAPPINGS_SHOWN ? [`  +${lines.length - MAPPINGS_SHOWN} more`] : [];
  return [head, ...lines.slice(0, MAPPINGS_SHOWN).map((l) => `  ${l}`), ...more];
}

/** Every difference between two heads, one line each (mappings: a count and the first few). */
export function compareHeads(a: HeadJson, b: HeadJson): string[] {
  const out: string[] = [];
  const same = (name: string, x: unknown, y: unknown): void => {
    if (text(x) !== text(y)) out.push(`${name}: ${text(x)} in A, ${text(y)} in B`);
  };
  same('argv', a.argv, b.argv);
  same('comm', a.comm, b.comm);
  same('exe', a.exe, b.exe);
  same('cwd', a.cwd, b.cwd);
  same('umask', a.umask, b.umask);
  same('uids (real, effective, saved, fs)', a.uids, b.uids);
  same('gids (real, effective, saved, fs)', a.gids, b.gids);
  same('groups', a.groups, b.groups);
  for (const name of new Set([...Object.keys(a.rlimits), ...Object.keys(b.rlimits)])) same(`rlimit ${name}`, a.rlimits[name], b.rlimits[name]);
  same('no_new_privs', a.noNewPrivs, b.noNewPrivs);
  out.push(...compareMappings(a.mappings, b.mappings));
  const actions = (h: HeadJson): Map<number, string> => new Map(h.signalActions.map((s) => [s.signal, `${s.handler} flags ${s.flags} mask ${s.mask}`]));
  const actA = actions(a);
  const actB = actions(b);
  for (const sig of [...new Set([...actA.keys(), ...actB.keys()])].sort((x, y) => x - y)) {
    const x = actA.get(sig) ?? 'default';
    const y = actB.get(sig) ?? 'default';
    if (x !== y) out.push(`signal ${sig} action: ${x} in A, ${y} in B`);
  }
  same('blocked signals', a.blocked, b.blocked);
  same('pending signals', a.pending, b.pending);
  same('alternate signal stack', a.altstack, b.altstack);
  same('file locks', a.locks, b.locks);
  // Threads pair up in tid order (a restart without --same-pid gives them new ids).
  same('threads (by name)', a.threads.map((t) => t.comm), b.threads.map((t) => t.comm));
  a.threads.forEach((t, i) => {
    const u = b.threads[i];
    if (!u) return;
    same(`thread ${t.tid}/${u.tid} blocked signals`, t.blocked, u.blocked);
    same(`thread ${t.tid}/${u.tid} pending signals`, t.pending, u.pending);
    same(`thread ${t.tid}/${u.tid} alternate signal stack`, t.altstack, u.altstack);
  });
  // Contents as the fd table's memfds are compared: whether they differ, not the bytes.
  const unheld = (h: HeadJson): string[] => h.unheld.map((u) => `${u.id}: ${kindOf(u).detail(u as never)} ${sha256(Buffer.from(tableJson(u.extents))).toString('hex').slice(0, 12)}`);
  same('memfds and deleted files mapped with no fd', unheld(a), unheld(b));
  return out;
}
