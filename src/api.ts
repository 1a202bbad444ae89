// cr as a library: `import { dump, restore, plan, show, diff } from 'cr'` (docs/api.md). Each
// function does what its command does and returns what the command prints, as data; it prints
// nothing. A refusal or failure is a CrError whose `code` is the exit status the CLI would end
// with (2: bad input, refused before anything was touched; 1: failed). The CLI (src/commands/)
// is a layer over these: its flags, its wording, its waiting and its signals. Each function lives
// in src/api/<command>.ts, which a command imports alone: `cr plan` loads neither koffi nor the
// checkpoint code, and a command's start-up pays only for its own modules.
import { CrError, EXIT_BAD_INPUT } from './errors.js';
import type { Image } from './image/format.js';
import type { ProcessImage } from './image/process-format.js';
import type { Desc, Fd, FdTable, Pipe } from './model/fdtable.js';
import type { PlanTarget, TargetMode } from './model/restore-target.js';
import type { Plan } from './plan/ops.js';

export { CrError, EXIT_BAD_INPUT };
export type { Desc, Fd, FdTable, Image, Pipe, Plan, PlanTarget, ProcessImage, TargetMode };
/** Exit status of a failure that is not bad input. */
export const EXIT_FAILED = 1;

export { describeCounts, tableCounts, type TableCounts } from './api/counts.js';
export { dump, type DumpOptions, type DumpResult } from './api/dump.js';
export { show, type ShowResult } from './api/show.js';
export { plan, type PlanOptions, type PlanResult } from './api/plan.js';
export { diff, type DiffResult } from './api/diff.js';
export { prepareRestore, restore, waitExit, type PreparedRestore, type RestoreOptions, type RestoreResult } from './api/restore.js';
