// Who wrote an image (docs/trust.md): the owner of the image file, or for an image read from
// stdin the user running cr. An image anyone else could have written is trusted only from the
// user running cr. What the author may be given is what the user database says that uid has.
import { dirname } from 'node:path';
import { groupListOf, passwdOf } from '../../bridge/users.js';
import { badInput } from '../errors.js';
import { printable } from '../printable.js';
import type { ImageFile } from '../image/file.js';

export interface Author {
  uid: number;
  /** the primary group (passwd's pw_gid); null for a uid with no passwd entry */
  gid: number | null;
  /** every group the author is in, the primary one included (getgrouplist); none without a passwd entry */
  groups: number[];
  /** how the author was found, for messages: `owner of IMAGE`, `the user running cr` */
  source: string;
}

export const isRoot = (author: Author): boolean => author.uid === 0;

/**
 * uid as an author: its passwd entry's group and the groups getgrouplist gives it, asked of the
 * user database when a check first reads them (then kept). Every check lets root through before it
 * looks at groups, so a root author's are never asked for: the first lookup loads the C library's
 * NSS modules (0.7-1.2 ms of a restore here).
 */
export function authorOf(uid: number, source: string): Author {
  let known: { gid: number | null; groups: number[] } | null = null;
  const lookUp = (): { gid: number | null; groups: number[] } => {
    if (known !== null) return known;
    const entry = passwdOf(uid);
    // Without a passwd entry nothing says which groups the uid has: it gets none (docs/trust.md).
    if (entry === null) return (known = { gid: null, groups: [] });
    const groups = groupListOf(entry.name, entry.gid);
    return (known = { gid: entry.gid, groups: [...new Set([entry.gid, ...groups])].sort((a, b) => a - b) });
  };
  return {
    uid,
    get gid() {
      return lookUp().gid;
    },
    get groups() {
      return lookUp().groups;
    },
    source,
  };
}

const WRITABLE_BY_OTHERS = 0o022;

/**
 * The author of an image, from the fstat of its file as opened and of the directory it was
 * opened in (src/image/file.ts; null or `stdin`: read from stdin). Refuses (exit 2) an image whose file, or
 * whose directory (without the sticky bit), others than its owner may write, unless its owner is
 * the user running cr.
 */
export function imageAuthor(file: ImageFile | null): Author {
  if (file === null) return authorOf(process.geteuid!(), 'the user running cr (the image came from stdin)');
  // A restore asks in several places (its trust checks, connections, the husk's fs ids): one file
  // has one author, judged once.
  let author = judged.get(file);
  if (author === undefined) judged.set(file, (author = judgeAuthor(file)));
  return author;
}

const judged = new WeakMap<ImageFile, Author>();

function judgeAuthor(file: ImageFile): Author {
  const runner = process.geteuid!();
  if (file.stdin) return authorOf(runner, 'the user running cr (the image came from stdin)');
  const st = file.stat;
  const where = printable(file.path);
  const author = authorOf(st.uid, `owner of ${where}`);
  if (st.uid === runner) return author;
  const mode = (m: number): string => `mode ${(m & 0o7777).toString(8).padStart(4, '0')}`;
  if (st.mode & WRITABLE_BY_OTHERS) {
    badInput(`${where}: the image file is writable by others than its owner (${mode(st.mode)}), and its owner (uid ${st.uid}) is not the user running cr (uid ${runner}): anyone could have written it`);
  }
  const dir = file.dir;
  if (dir.mode & WRITABLE_BY_OTHERS && !dir.sticky) {
    badInput(`${where}: the image is in ${printable(dirname(file.path))}, which others may write without the sticky bit (${mode(dir.mode)}), and its owner (uid ${st.uid}) is not the user running cr (uid ${runner}): anyone could have replaced it`);
  }
  return author;
}
