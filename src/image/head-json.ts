// A whole-process image's head as plain JSON, for `show --json --all` and `diff` (docs/image-format.md
// "show --json --all"): every field a person or a script compares between two images, in words
// and hex rather than the raw buffers the image keeps (registers, signal actions, siginfo).
import { decodeRegs } from './process-format.js';
import type { Mapping, ProcessHead } from './process-head.js';

/** getrlimit's resources in number order (include/uapi/asm-generic/resource.h). */
const RLIMITS = ['CPU', 'FSIZE', 'DATA', 'STACK', 'CORE', 'RSS', 'NPROC', 'NOFILE', 'MEMLOCK', 'AS', 'LOCKS', 'SIGPENDING', 'MSGQUEUE', 'NICE', 'RTPRIO', 'RTTIME'];
const SIG_DFL = 0n;
const SIG_IGN = 1n;
/** struct kernel_sigaction on x86_64: handler, flags, restorer, mask (4 x u64). */
const ACTION_BYTES = 32;

const hex = (v: number | bigint): string => `0x${BigInt.asUintN(64, BigInt(v)).toString(16)}`;
const protText = (prot: number): string => `${prot & 1 ? 'r' : '-'}${prot & 2 ? 'w' : '-'}${prot & 4 ? 'x' : '-'}`;

export interface MappingJson {
  start: string;
  end: string;
  prot: string;
  kind: Mapping['kind'];
  /** what /proc/PID/maps names it: a path, [stack], [heap], ... or '' */
  name: string;
  /** the file and offset of a file mapping */
  file: { path: string; offset: number } | null;
  /** a shared-unnamed mapping's file: the description (fd table id) of the memfd or deleted file, and the offset */
  unnamed: { desc: number; offset: number } | null;
  vmflags: string[];
  guards: number;
}

export interface SignalActionJson {
  signal: number;
  /** 'default', 'ignore', or the handler's address */
  handler: string;
  flags: string;
  mask: string;
}

/** A thread besides the leader (its registers are left out: they move while it runs). */
export interface ThreadJson {
  tid: number;
  comm: string;
  blocked: string;
  /** signals queued to this thread alone */
  pending: number[];
  altstack: { sp: string; size: number; flags: number };
}

/** The head of a whole-process image, as show --json --all prints it. */
export interface HeadJson {
  pid: number;
  comm: string;
  argv: string[];
  /** the executable's path, null when it was gone at the dump */
  exe: string | null;
  cwd: string;
  umask: string;
  /** real, effective, saved, filesystem */
  uids: number[];
  gids: number[];
  groups: number[];
  /** null soft or hard: unlimited */
  rlimits: Record<string, { soft: number | null; hard: number | null }>;
  mappings: MappingJson[];
  registers: { rip: string; rsp: string; rax: string; origRax: string; xstateBytes: number };
  /** signals whose action is not the default, in number order */
  signalActions: SignalActionJson[];
  blocked: string;
  pending: Array<{ signal: number; shared: boolean }>;
  altstack: { sp: string; size: number; flags: number };
  noNewPrivs: boolean;
  itimers: Array<{ intervalUs: number; valueUs: number }>;
  locks: ProcessHead['locks'];
  /** the threads besides the leader, in tid order: what each could show a difference in */
  threads: ThreadJson[];
  /** the memfds and deleted files mapped shared with no fd of them left: each as the fd table prints a description (data as base64 in JSON) */
  unheld: ProcessHead['unheld'];
  kernel: string;
  toolVersion: string;
}

function signalActions(actions: Buffer): SignalActionJson[] {
  const out: SignalActionJson[] = [];
  for (let i = 0; i * ACTION_BYTES < actions.length; i++) {
    const handler = actions.readBigUInt64LE(i * ACTION_BYTES);
    const flags = actions.readBigUInt64LE(i * ACTION_BYTES + 8);
    const mask = actions.readBigUInt64LE(i * ACTION_BYTES + 24);
    if (handler === SIG_DFL && flags === 0n && mask === 0n) continue;
    out.push({ signal: i + 1, handler: handler === SIG_DFL ? 'default' : handler === SIG_IGN ? 'ignore' : hex(handler), flags: hex(flags), mask: hex(mask) });
  }
  return out;
}

export function headJson(head: ProcessHead, xstateBytes = head.xstate.length): HeadJson {
  const regs = decodeRegs(head.regs);
  return {
    pid: head.process.pid,
    comm: head.process.comm,
    argv: head.process.cmdline,
    exe: head.exe?.path ?? null,
    // as /proc shows a removed one
    cwd: head.cwdRemoved === null ? head.cwd : `${head.cwd} (deleted)`,
    umask: `0${head.umask.toString(8).padStart(3, '0')}`,
    uids: head.creds.uid,
    gids: head.creds.gid,
    groups: head.creds.groups,
    rlimits: Object.fromEntries(head.rlimits.map((r) => [RLIMITS[r.resource] ?? String(r.resource), { soft: r.soft, hard: r.hard }])),
    mappings: head.mappings.map((m) => ({
      start: hex(m.start), end: hex(m.end), prot: protText(m.prot), kind: m.kind, name: m.name,
      file: m.file ? { path: m.file.path, offset: m.file.offset } : null, unnamed: m.unnamed, vmflags: m.vmflags, guards: m.guards.length,
    })),
    registers: { rip: hex(regs.rip), rsp: hex(regs.rsp), rax: hex(regs.rax), origRax: hex(regs.orig_rax), xstateBytes },
    signalActions: signalActions(head.signals.actions),
    blocked: hex(head.signals.blocked.readBigUInt64LE(0)),
    pending: head.signals.pending.map((p) => ({ signal: p.info.readInt32LE(0), shared: p.shared })),
    altstack: { sp: hex(head.signals.altstack.sp), size: head.signals.altstack.size, flags: head.signals.altstack.flags },
    noNewPrivs: head.noNewPrivs,
    itimers: head.itimers,
    locks: head.locks,
    threads: head.threads.map((t) => ({
      tid: t.tid, comm: t.comm, blocked: hex(t.blocked.readBigUInt64LE(0)), pending: t.pending.map((info) => info.readInt32LE(0)),
      altstack: { sp: hex(t.altstack.sp), size: t.altstack.size, flags: t.altstack.flags },
    })),
    unheld: head.unheld,
    kernel: head.kernel,
    toolVersion: head.toolVersion,
  };
}
