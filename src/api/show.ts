// show (src/api.ts): an image read and checked whole, as data.
import { headJson, type HeadJson } from '../image/head-json.js';
import type { Image } from '../image/format.js';
import { loadInput, type Input } from '../image/input.js';
import type { ProcessImage } from '../image/process-format.js';
import type { FdTables } from '../model/fdtable.js';
import type { TreeMember } from '../model/tree.js';

export interface ShowResult {
  /** the image as named in messages (`stdin` for `-`) */
  path: string;
  /** a whole-process image, an fd-table image, or a JSON fd table */
  kind: 'process' | 'fds' | 'json';
  /** the shared objects and every process's fds (one process, for what a dump writes) */
  table: FdTables;
  /** the fd-table image (absent for a JSON table): the process's pid, comm, uid, cmdline; dropped fds */
  image?: Image;
  /** a whole-process image: head (mappings, registers, signals, credentials, ...) and pages */
  process?: ProcessImage;
  /** a whole-process image's head as plain JSON (show --json --all; docs/image-format.md); the root's for a tree */
  head?: HeadJson;
  /** the process tree (a whole-process image's, or a JSON table's): root first, parents before children */
  tree?: TreeMember[];
}

export const shown = (input: Input): ShowResult => ({
  path: input.file.path,
  kind: input.process ? 'process' : input.image ? 'fds' : 'json',
  table: input.tables,
  ...(input.image ? { image: input.image } : {}),
  ...(input.process ? { process: input.process, head: headJson(input.process.head) } : {}),
  ...(input.tree ? { tree: input.tree } : {}),
});

/** Read an image (a path, or `-` for stdin), checked whole (docs/image-format.md). */
export function show(image: string): ShowResult {
  return shown(loadInput(image));
}
