// System V shared memory at restart (docs/state.md). Each segment the image's mappings attach is
// attached again if it is still there: same id, key and size, the live segment, shared with
// whatever else maps it, is the one the process used, and its pages are left as they are now.
// Otherwise it is made again (shmget with its key, or IPC_PRIVATE), given the image's pages,
// owner and mode, and marked for removal again if it was. Decided in cr before the husk exists,
// with the rights of the image's author (docs/trust.md): a segment the author could not attach is
// refused, and so is a key another segment holds now.
import { readFileSync, writeFileSync } from 'node:fs';
import { removeIpc } from '../../bridge/sysv-ipc.js';
import { CrError, EXIT_BAD_INPUT } from '../errors.js';
import type { Mapping, SysvSegment } from '../image/process-head.js';
import type { Author } from '../trust/author.js';

/** A segment as /proc/sysvipc/shm lists it now. */
interface LiveSegment {
  key: number;
  id: number;
  size: number;
  /** permission bits and SHM_DEST */
  perms: number;
  uid: number;
  gid: number;
  cuid: number;
  cgid: number;
}

const SHM_DEST = 0o1000;
const hexKey = (key: number): string => `0x${(key >>> 0).toString(16).padStart(8, '0')}`;

function liveSegments(): LiveSegment[] {
  const lines = readFileSync('/proc/sysvipc/shm', 'latin1').split('\n');
  const head = lines[0]!.trim().split(/\s+/);
  return lines
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((cols) => cols.length === head.length)
    .map((cols) => {
      const at = (name: string): number => Number(cols[head.indexOf(name)]);
      return {
        key: at('key'), id: at('shmid'), size: at('size'), perms: parseInt(cols[head.indexOf('perms')]!, 8),
        uid: at('uid'), gid: at('gid'), cuid: at('cuid'), cgid: at('cgid'),
      };
    });
}

/**
 * What restart does for one segment: attach the live one, or make a new one (`made`: its id once
 * made, for removeMadeSegments).
 */
export type SegmentPlan = { segment: SysvSegment; live: boolean; made?: number };

/**
 * Remove the segments a failed restart made again (memory.ts makeSegment), once its husks are
 * killed: nothing of a half-restored process may stay, and a segment no process has attached lives
 * on until it is removed. One removed meanwhile (or marked for removal already, and gone with the
 * husks) is nothing to take away.
 */
export function removeMadeSegments(plans: Map<number, SegmentPlan>): void {
  for (const plan of plans.values()) {
    if (plan.made === undefined) continue;
    const id = plan.made;
    plan.made = undefined;
    try {
      removeIpc('shm', id);
    } catch {
      // gone already
    }
  }
}

/** The rights `author` has on a live segment (ipcperms: owner or creator, then group, then other). */
function rights(author: Author, s: LiveSegment): number {
  if (author.uid === 0) return 0o7;
  if (author.uid === s.uid || author.uid === s.cuid) return (s.perms >> 6) & 7;
  if (author.groups.includes(s.gid) || author.groups.includes(s.cgid)) return (s.perms >> 3) & 7;
  return s.perms & 7;
}

/**
 * For each System V segment of the image (by shared object number): attach the live one or make
 * it again. Throws, before anything is started, for a key another segment now holds, for a live
 * segment the author may not attach as the image did, and for a segment the author could not own.
 */
export function planSegments(mappings: Mapping[], author: Author): Map<number, SegmentPlan> {
  const plans = new Map<number, SegmentPlan>();
  const segments = new Map<number, { segment: SysvSegment; write: boolean }>();
  for (const m of mappings) {
    const sysv = m.shm?.sysv;
    if (!sysv) continue;
    const known = segments.get(m.shm!.object) ?? { segment: sysv, write: false };
    // 'mw': the mapping may be made writable, so the attach was read-write.
    known.write ||= m.vmflags.includes('mw');
    segments.set(m.shm!.object, known);
  }
  if (segments.size === 0) return plans;
  const live = liveSegments();
  for (const [object, { segment, write }] of segments) {
    const where = `System V shared memory segment ${segment.id}${segment.key !== 0 ? ` (key ${hexKey(segment.key)})` : ''}`;
    const same = live.find((s) => s.id === segment.id && s.key === segment.key && s.size === segment.size && (s.perms & SHM_DEST) === 0);
    const holder = segment.key !== 0 ? live.find((s) => s.key === segment.key) : undefined;
    if (!same && holder) {
      throw new CrError(
        `${where}: the key is now segment ${holder.id} of ${holder.size} bytes, not the image's of ${segment.size}; ` +
          `remove it (ipcrm -m ${holder.id}) if the process should get its own again`,
        EXIT_BAD_INPUT,
      );
    }
    // A live private segment not marked for removal is the process's own still (kept by its id).
    if (same && !segment.removed) {
      const need = write ? 6 : 4;
      if ((rights(author, same) & need) !== need) {
        throw new CrError(`${where}: still there, but its author (${author.source}) may not attach it ${write ? 'read-write' : 'read-only'} (mode ${(same.perms & 0o777).toString(8)})`, EXIT_BAD_INPUT);
      }
      plans.set(object, { segment, live: true });
    } else {
      if (author.uid !== 0 && (segment.uid !== author.uid || !author.groups.includes(segment.gid))) {
        throw new CrError(`${where}: gone, and made again it would be owned by ${segment.uid}:${segment.gid}, which its author (${author.source}, uid ${author.uid}) could not give it`, EXIT_BAD_INPUT);
      }
      plans.set(object, { segment, live: false });
    }
  }
  return plans;
}

/**
 * Before the husk's shmget of a new segment: as root, ask the kernel for the image's id
 * (kernel.shm_next_id, used by the next shmget in this IPC namespace) when no segment has it.
 * Best effort: the caller compares the id shmget gives.
 */
export function askForId(id: number): void {
  if (process.geteuid!() !== 0 || liveSegments().some((s) => s.id === id)) return;
  try {
    writeFileSync('/proc/sys/kernel/shm_next_id', String(id));
  } catch {
    // not root in this IPC namespace's user namespace: a new id, said by the caller
  }
}
