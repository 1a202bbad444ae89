// The System V semaphore sets and message queues an image's processes used (head sysvIpc,
// src/checkpoint/sysv-ipc.ts) at restart. They are keyed objects that outlive their processes,
// like files: one still where it was (same id and key, a set with as many semaphores) is the one
// the restarted process uses, in the state it has now (other processes may have used it
// meanwhile, as they could while it ran). One that is gone is made again from the image: same
// key (or IPC_PRIVATE), same id (a program keeps the id it got; the kernel's kernel.sem_next_id
// and msg_next_id, which cr may write as root, choose it), the values or messages it had, then
// its owner and mode. It is made inside the husk that used it, once its pid is final and before
// its credentials are set (the kernel records that pid as the set's and queue's last user), with
// the husk's effective ids switched to its creator's: the image's author (docs/trust.md), or,
// for root's image, the creator it had. Decided before anything starts: a key another object
// holds now, or an owner the author could not give it, is refused in one line; so is an object
// the kernel made under another id, which is removed again, as is everything made for a restart
// that fails.
import { readFileSync, writeFileSync } from 'node:fs';
import { removeIpc } from '../../bridge/sysv-ipc.js';
import { CrError, EXIT_BAD_INPUT } from '../errors.js';
import type { ProcessHead, SysvIpcObject, SysvMsgSaved, SysvSemSaved } from '../image/process-head.js';
import { IPC_CREAT, IPC_EXCL, IPC_RMID, IPC_SET, SYS } from '../inject/syscalls.js';
import { readCreds } from '../proc/process.js';
import { isRoot, type Author } from '../trust/author.js';
import { fsIdentityOf } from '../trust/fsids.js';
import type { Husk } from './husk.js';

const NAMES = {
  sem: { file: 'sem', id: 'semid', what: 'semaphore set', remove: 's', get: SYS.semget, ctl: SYS.semctl },
  msg: { file: 'msg', id: 'msqid', what: 'message queue', remove: 'q', get: SYS.msgget, ctl: SYS.msgctl },
} as const;
type Kind = SysvIpcObject['kind'];
const hexKey = (key: number): string => `0x${(key >>> 0).toString(16).padStart(8, '0')}`;
const isErrno = (r: bigint): boolean => r < 0n && r > -4096n;
const NO_ID = -1n; // setresuid/setresgid: this id unchanged
const SETALL = 17;
const IPC_NOWAIT = 0o4000;
/** struct semid64_ds and msqid64_ds (x86_64): their perm's uid, gid, mode; a queue's msg_qbytes */
const DS_BYTES = 120;
const PERM_UID_AT = 4;
const PERM_GID_AT = 8;
const PERM_MODE_AT = 20;
const MSG_QBYTES_AT = 88;

interface Live {
  key: number;
  id: number;
  /** a set's semaphores */
  nsems: number;
}

/** kind's objects as /proc/sysvipc lists them now. */
function live(kind: Kind): Live[] {
  const lines = readFileSync(`/proc/sysvipc/${NAMES[kind].file}`, 'latin1').split('\n');
  const head = lines[0]!.trim().split(/\s+/);
  return lines
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((cols) => cols.length === head.length)
    .map((cols) => ({ key: Number(cols[head.indexOf('key')]), id: Number(cols[head.indexOf(NAMES[kind].id)]), nsems: Number(cols[head.indexOf('nsems')] ?? 0) }));
}

/** An object to make again: what the image saved of it, and whose effective ids make it. */
type ToMake = (
  | { kind: 'sem'; key: number; id: number; saved: SysvSemSaved }
  | { kind: 'msg'; key: number; id: number; saved: SysvMsgSaved }
) & { where: string; creator: { uid: number; gid: number } };

/**
 * The image's semaphore sets and message queues at restart: plan() decides before anything starts
 * (found again, made again, or refused), makeFor() makes a member's gone ones in its husk, and
 * removeMade() takes them away again when the restart fails.
 */
export class SysvIpc {
  private readonly made: Array<{ kind: Kind; id: number }> = [];
  private readonly done = new Set<string>();

  private constructor(private readonly toMake: Map<string, ToMake>) {}

  /** Throws, naming the first, for an object the heads' processes used that cannot be had again. */
  static plan(heads: readonly ProcessHead[], author: Author): SysvIpc {
    const toMake = new Map<string, ToMake>();
    const now = { sem: heads.some((h) => h.sysvIpc.some((o) => o.kind === 'sem')) ? live('sem') : [], msg: heads.some((h) => h.sysvIpc.some((o) => o.kind === 'msg')) ? live('msg') : [] };
    const seen = new Set<string>();
    for (const h of heads) {
      for (const o of h.sysvIpc) {
        const tag = `${o.kind}:${o.id}`;
        if (seen.has(tag)) continue;
        seen.add(tag);
        const n = NAMES[o.kind];
        const where = `System V ${n.what} ${o.id}${o.key !== 0 ? ` (key ${hexKey(o.key)})` : ''}, which process ${h.process.pid} used`;
        const nsems = o.kind === 'sem' && o.saved ? o.saved.values.length : null;
        const at = now[o.kind].find((x) => x.id === o.id);
        if (at && at.key === o.key && (nsems === null || at.nsems === nsems)) continue;
        const holder = o.key !== 0 ? now[o.kind].find((x) => x.key === o.key) : undefined;
        if (holder) {
          throw new CrError(`${where}: its key is now ${n.what} ${holder.id}'s, another one; remove that one (ipcrm -${n.remove} ${holder.id}) if the process should get its own again`, EXIT_BAD_INPUT);
        }
        if (at) throw new CrError(`${where}: its id is now another ${n.what}'s (key ${hexKey(at.key)}), so it cannot be made again under it`, EXIT_BAD_INPUT);
        if (!o.saved) throw new CrError(`${where}: it is gone, and cr could not read it at dump (no read permission) to make it again`, EXIT_BAD_INPUT);
        const s = o.saved;
        if (!isRoot(author) && (s.uid !== author.uid || !author.groups.includes(s.gid))) {
          throw new CrError(`${where}: gone, and made again it would be owned by ${s.uid}:${s.gid}, which its author (${author.source}, uid ${author.uid}) could not give it`, EXIT_BAD_INPUT);
        }
        // Root's image: the creator it had. Anyone else's: its author, in the group it had if the author is in it.
        const creator = isRoot(author) ? { uid: s.cuid, gid: s.cgid } : { uid: author.uid, gid: author.groups.includes(s.cgid) ? s.cgid : s.gid };
        toMake.set(tag, { ...(o as ToMake), where, creator });
      }
    }
    return new SysvIpc(toMake);
  }

  /**
   * In the husk of head's process, once its pid is final and before its credentials are set:
   * make again the gone objects it used that no member made before it. Throws a CrError naming
   * the object (whatever was made stays listed for removeMade).
   */
  makeFor(husk: Husk, head: ProcessHead): void {
    for (const o of head.sysvIpc) {
      const tag = `${o.kind}:${o.id}`;
      const m = this.toMake.get(tag);
      if (!m || this.done.has(tag)) continue;
      this.done.add(tag);
      asCreator(husk, m.creator, () => this.make(husk, m));
    }
  }

  /** Remove what makeFor made: the restart failed, nothing of it may stay. */
  removeMade(): void {
    for (const { kind, id } of this.made.splice(0)) {
      try {
        removeIpc(kind, id);
      } catch {
        // removed meanwhile: nothing to take away
      }
    }
  }

  private make(husk: Husk, m: ToMake): void {
    const n = NAMES[m.kind];
    const fail = (call: string, r: bigint): never => {
      throw new CrError(`${m.where}: making it again failed: ${husk.failure(call, r).message}`);
    };
    const asked = askForId(m.kind, m.id);
    // Owner-only until it is filled: its own mode may not let its creator write it.
    const got = create(husk, m.kind, m.key, m.kind === 'sem' ? m.saved.values.length : 0, IPC_CREAT | IPC_EXCL | 0o600);
    if (isErrno(got)) {
      if (asked) takeBackId(husk, m.kind, m.id);
      fail(`${m.kind}get(${hexKey(m.key)})`, got);
    }
    const id = Number(got);
    this.made.push({ kind: m.kind, id });
    if (id !== m.id) {
      throw new CrError(
        `${m.where}: gone, and made again the kernel gave it id ${id}${asked ? ' (another process took the id asked for meanwhile)' : ': choosing the id needs CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN (kernel.' + m.kind + '_next_id)'}; a program that kept the id would find none under it, so it was removed again`,
        EXIT_BAD_INPUT,
      );
    }
    const ds = Buffer.alloc(DS_BYTES);
    ds.writeUInt32LE(m.creator.uid, PERM_UID_AT);
    ds.writeUInt32LE(m.creator.gid, PERM_GID_AT);
    ds.writeUInt32LE(0o600, PERM_MODE_AT);
    if (m.kind === 'sem') {
      const values = Buffer.alloc(m.saved.values.length * 2);
      m.saved.values.forEach((v, i) => values.writeUInt16LE(v, i * 2));
      const r = husk.syscall(SYS.semctl, BigInt(id), 0n, BigInt(SETALL), husk.put(values));
      if (isErrno(r)) fail('semctl(SETALL)', r);
    } else {
      const bytes = m.saved.messages.reduce((sum, x) => sum + x.text.length, 0);
      // A new queue holds kernel.msgmnb bytes: more, and it must hold them all while they go in.
      if (bytes > msgmnb()) {
        ds.writeBigUInt64LE(BigInt(bytes), MSG_QBYTES_AT);
        const r = husk.syscall(SYS.msgctl, BigInt(id), BigInt(IPC_SET), husk.put(ds));
        if (isErrno(r)) fail(`msgctl(IPC_SET) for ${bytes} bytes of messages, above kernel.msgmnb`, r);
      }
      // In order, as many to a batch as fit: one ptrace round trip per batch, not per message.
      const q = husk.queue();
      for (const msg of m.saved.messages) {
        const buf = Buffer.alloc(8 + msg.text.length);
        buf.writeBigInt64LE(BigInt(msg.type), 0);
        msg.text.copy(buf, 8);
        const at = q.put(buf);
        q.add('msgsnd', SYS.msgsnd, [BigInt(id), at, BigInt(msg.text.length), BigInt(IPC_NOWAIT)], 0n, (r) =>
          isErrno(r) ? new CrError(`${m.where}: making it again failed: ${husk.failure(`msgsnd of a message of ${msg.text.length} bytes`, r).message}`) : new Error(`msgsnd returned ${r}`),
        );
      }
      q.run();
      ds.writeBigUInt64LE(BigInt(m.saved.qbytes), MSG_QBYTES_AT);
    }
    ds.writeUInt32LE(m.saved.uid, PERM_UID_AT);
    ds.writeUInt32LE(m.saved.gid, PERM_GID_AT);
    ds.writeUInt32LE(m.saved.mode, PERM_MODE_AT);
    const r = husk.syscall(n.ctl, BigInt(id), ...(m.kind === 'sem' ? [0n] : []), BigInt(IPC_SET), husk.put(ds));
    if (isErrno(r)) fail(`${m.kind}ctl(IPC_SET) of owner ${m.saved.uid}:${m.saved.gid}, mode ${m.saved.mode.toString(8)}${m.kind === 'msg' ? `, msg_qbytes ${m.saved.qbytes} (kernel.msgmnb ${msgmnb()}: only CAP_SYS_RESOURCE goes above it)` : ''}`, r);
    husk.reset();
  }
}

function msgmnb(): number {
  return Number(readFileSync('/proc/sys/kernel/msgmnb', 'latin1').trim());
}

/** semget(key, nsems, flags) or msgget(key, flags) in the husk: its raw result. */
function create(husk: Husk, kind: Kind, key: number, nsems: number, flags: number): bigint {
  return kind === 'sem' ? husk.syscall(SYS.semget, BigInt(key), BigInt(nsems), BigInt(flags)) : husk.syscall(SYS.msgget, BigInt(key), BigInt(flags));
}

const nextIdFile = (kind: Kind): string => `/proc/sys/kernel/${kind}_next_id`;

/**
 * Ask the kernel for `id` as the next new object's of its kind in this IPC namespace. Writable
 * with CAP_CHECKPOINT_RESTORE or CAP_SYS_ADMIN over the namespace: false when cr may not (the
 * caller then finds another id given).
 */
function askForId(kind: Kind, id: number): boolean {
  try {
    writeFileSync(nextIdFile(kind), String(id));
    return true;
  } catch {
    return false;
  }
}

/**
 * The id asked for stays asked for until an object takes it (the kernel takes no -1 back): after
 * a failed get, a private object takes it in the husk and goes again, so that no later object of
 * another program gets an id it did not ask for by cr's doing.
 */
function takeBackId(husk: Husk, kind: Kind, id: number): void {
  if (readFileSync(nextIdFile(kind), 'latin1').trim() !== String(id)) return;
  const r = create(husk, kind, 0, 1, IPC_CREAT | 0o600);
  if (!isErrno(r)) husk.syscall(NAMES[kind].ctl, r, ...(kind === 'sem' ? [0n] : []), BigInt(IPC_RMID), 0n);
}

/**
 * fn() with the husk's effective uid and gid the creator's (the kernel makes the object the
 * caller's: cuid, cgid), its own put back afterwards. Only a husk that may switch does: one
 * running as an unprivileged cr's user makes it as that user, which is then its author.
 */
function asCreator(husk: Husk, creator: { uid: number; gid: number }, fn: () => void): void {
  const { uid, gid } = readCreds(husk.pid);
  const own = { uid: uid[1]!, gid: gid[1]! };
  if ((own.uid === creator.uid && own.gid === creator.gid) || !fsIdentityOf(husk.pid).maySwitch) {
    fn();
    return;
  }
  // The gid while the uid still gives CAP_SETGID; back in the opposite order.
  husk.call('setresgid', SYS.setresgid, NO_ID, BigInt(creator.gid), NO_ID);
  husk.call('setresuid', SYS.setresuid, NO_ID, BigInt(creator.uid), NO_ID);
  try {
    fn();
  } finally {
    husk.call('setresuid', SYS.setresuid, NO_ID, BigInt(own.uid), NO_ID);
    husk.call('setresgid', SYS.setresgid, NO_ID, BigInt(own.gid), NO_ID);
  }
}
