// /proc/PID/smaps as the kernel shows it: one entry per mapping with its header fields, VmFlags,
// Rss and Swap. Read by checkpoint (to classify a frozen process's mappings); restart parses
// /proc/PID/maps with it (the same header lines, nothing else) to see the husk's own mappings.
/** One /proc/PID/smaps entry as the kernel shows it. */
export interface RawMapping {
  start: number;
  end: number;
  perms: string;
  offset: number;
  /** major:minor as dev_t (new encoding, as stat reports it) */
  dev: number;
  ino: number;
  /** path or [name]; '' for plain anonymous memory */
  name: string;
  vmflags: string[];
  /** kB of the mapping in memory (Rss) and in swap (Swap) */
  rssKb: number;
  swapKb: number;
  /** ProtectionKey: the mapping's memory protection key (0, the default, where the CPU has none) */
  pkey: number;
}

const HEADER = /^([0-9a-f]+)-([0-9a-f]+) ([r-][w-][x-][ps]) ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) (\d+) *(.*)$/;

/** dev_t as the kernel encodes it for userspace (new_encode_dev), which node's stat.dev reports. */
export const encodeDev = (major: number, minor: number): number => (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12);

export function parseSmaps(text: string): RawMapping[] {
  const out: RawMapping[] = [];
  for (const line of text.split('\n')) {
    const m = HEADER.exec(line);
    if (m) {
      out.push({
        start: parseInt(m[1]!, 16),
        end: parseInt(m[2]!, 16),
        perms: m[3]!,
        offset: parseInt(m[4]!, 16),
        dev: encodeDev(parseInt(m[5]!, 16), parseInt(m[6]!, 16)),
        ino: Number(m[7]),
        name: m[8]!,
        vmflags: [],
        rssKb: 0,
        swapKb: 0,
        pkey: 0,
      });
      continue;
    }
    const last = out[out.length - 1];
    if (!last) continue;
    if (line.startsWith('VmFlags:')) last.vmflags = line.slice(8).trim().split(/\s+/).filter(Boolean);
    else if (line.startsWith('Rss:')) last.rssKb = parseInt(line.slice(4), 10);
    else if (line.startsWith('Swap:')) last.swapKb = parseInt(line.slice(5), 10);
    else if (line.startsWith('ProtectionKey:')) last.pkey = parseInt(line.slice(14), 10);
  }
  return out;
}
