// x86-64 general-purpose registers as ptrace(PTRACE_GETREGS) and the process image lay them out.
// No libc here: the image format and its checks use the layout without loading the bridge.
/** struct user_regs_struct, field order as the kernel lays it out. */
export const REG_NAMES = [
  'r15', 'r14', 'r13', 'r12', 'rbp', 'rbx', 'r11', 'r10', 'r9', 'r8', 'rax', 'rcx', 'rdx', 'rsi', 'rdi',
  'orig_rax', 'rip', 'cs', 'eflags', 'rsp', 'ss', 'fs_base', 'gs_base', 'ds', 'es', 'fs', 'gs',
] as const;
export type RegName = (typeof REG_NAMES)[number];
/** General-purpose registers as signed 64-bit values (so orig_rax -1 and rax -errno read naturally). */
export type Regs = Record<RegName, bigint>;

/** Index of each register in the raw user_regs_struct image (getRegsInto / setRegsFrom). */
export const REG_INDEX = Object.fromEntries(REG_NAMES.map((name, i) => [name, i])) as Record<RegName, number>;
export const REG_COUNT = REG_NAMES.length;
