// What `show`, `plan`, `diff` and `restore` take as IMAGE: a whole-process image, an fd-table
// image, or a JSON fd table (docs/fd-table.md; a file whose first non-blank byte is `{`; with a
// tree's shape beside it, as `show --json` prints a tree image), from a
// file or from stdin (`-`). The
// file is read once (file.ts) and checked whole; the one Input a command gets is all it ever
// uses of IMAGE, so nothing opens the path again.
import { badInput } from '../errors.js';
import type { FdTables } from '../model/fdtable.js';
import { readImageFile, type ImageFile } from './file.js';
import { decodeImage, validTable, type Image } from './format.js';
import { jsonProblem } from './json-bounds.js';
import { isProcessImage, ProcessImage, streamProcessFile } from './process-format.js';
import { checkTreeTable, parseTreeMembers } from './tree-check.js';
import type { TreeMember } from '../model/tree.js';

export interface Input {
  /** the file as read: bytes, and what its fstat and its directory's said at open */
  file: ImageFile;
  /** the shared objects and every process's fds */
  tables: FdTables;
  /** the fd-table image (of either kind of image); absent for a JSON table */
  image?: Image;
  /** a whole-process image */
  process?: ProcessImage;
  /** the process tree: a whole-process image's, or a JSON table's `tree` (docs/fd-table.md); absent otherwise */
  tree?: TreeMember[];
}

/**
 * Read path once and validate it whole; anything wrong is a one-line badInput. A process image's
 * pages stay in its file, kept open only with `keepPages` (a restart, which closes it when done:
 * file.pages.close()).
 */
export function loadInput(given: string, opts: { keepPages?: boolean; deferPagesFrom?: number } = {}): Input {
  // A large process image may have its checksum left to the pass that writes its pages
  // (deferPagesFrom: PagesInFile.verify): whatever is found wrong before that may be the damage
  // it would find.
  const file = readImageFile(given, streamProcessFile, opts.keepPages ? opts.deferPagesFrom : undefined);
  try {
    const input = inputOf(file);
    if (!opts.keepPages) file.pages?.close();
    return input;
  } catch (err) {
    const corrupt = file.pages?.corruption();
    file.pages?.close();
    throw corrupt ?? err;
  }
}

function inputOf(file: ImageFile): Input {
  // How messages name it: the path as given, or `stdin` for `-`.
  const path = file.path;
  const bytes = file.bytes;
  if (isProcessImage(bytes)) {
    const process = new ProcessImage(file);
    return { file, tables: process.fdImage.table, image: process.fdImage, process, tree: process.tree };
  }
  const first = bytes.find((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0x09);
  if (first !== 0x7b) {
    const image = decodeImage(bytes, path);
    return { file, tables: image.table, image };
  }
  const text = bytes.toString('utf8');
  const problem = jsonProblem(text);
  if (problem !== null) badInput(`${path}: not a JSON fd table cr will read: ${problem}`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    badInput(`${path}: not valid JSON: ${(err as Error).message}`);
  }
  // A tree's shape (show --json of a tree image) comes along with its table: checked, kept apart.
  if (typeof json === 'object' && json !== null && !Array.isArray(json) && Object.hasOwn(json, 'tree')) {
    const { tree: given, ...rest } = json as Record<string, unknown>;
    const bad = (what: string): never => badInput(`${path}: ${what}`);
    const tree = parseTreeMembers(given, 'tree', bad);
    const tables = validTable(rest, path);
    checkTreeTable(tree, tables, bad);
    return { file, tables, tree };
  }
  return { file, tables: validTable(json, path) };
}
