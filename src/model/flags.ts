// Open flags in words, for messages and `show`: one spelling everywhere a flag word is printed.
import {
  O_ACCMODE, O_APPEND, O_ASYNC, O_CLOEXEC, O_CREAT, O_DIRECT, O_DIRECTORY, O_DSYNC, O_EXCL, O_LARGEFILE, O_NOATIME,
  O_NOCTTY, O_NOFOLLOW, O_NONBLOCK, O_PATH, O_RDONLY, O_RDWR, O_SYNC, O_TRUNC, O_WRONLY,
} from './fdtable.js';

// O_SYNC is __O_SYNC|O_DSYNC: it comes before O_DSYNC so it is named once, as O_SYNC.
const FLAG_BITS: Array<[number, string]> = [
  [O_SYNC, 'O_SYNC'],
  [O_DSYNC, 'O_DSYNC'],
  [O_APPEND, 'O_APPEND'],
  [O_NONBLOCK, 'O_NONBLOCK'],
  [O_DIRECT, 'O_DIRECT'],
  [O_ASYNC, 'O_ASYNC'],
  [O_NOATIME, 'O_NOATIME'],
  [O_LARGEFILE, 'O_LARGEFILE'],
  [O_CLOEXEC, 'O_CLOEXEC'],
  [O_CREAT, 'O_CREAT'],
  [O_EXCL, 'O_EXCL'],
  [O_TRUNC, 'O_TRUNC'],
  [O_NOCTTY, 'O_NOCTTY'],
  [O_NOFOLLOW, 'O_NOFOLLOW'],
  [O_DIRECTORY, 'O_DIRECTORY'],
  [O_PATH, 'O_PATH'],
];

/** `O_WRONLY|O_NONBLOCK|O_LARGEFILE`: the access mode, each flag set, then any unnamed bits in octal. */
export function flagNames(flags: number): string {
  const mode = flags & O_ACCMODE;
  const names = [mode === O_RDONLY ? 'O_RDONLY' : mode === O_WRONLY ? 'O_WRONLY' : mode === O_RDWR ? 'O_RDWR' : 'O_ACCMODE'];
  let rest = flags & ~O_ACCMODE;
  for (const [bit, name] of FLAG_BITS) {
    if ((rest & bit) === bit) {
      names.push(name);
      rest &= ~bit;
    }
  }
  if (rest !== 0) names.push(`0o${(rest >>> 0).toString(8)}`);
  return names.join('|');
}
