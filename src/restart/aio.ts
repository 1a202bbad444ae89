// aio contexts made again (mapping kind aio): the context id a program passes to io_submit is its
// ring's address, so each ring is made by io_setup and moved to the image's address with mremap,
// which the kernel allows an aio ring (fs/aio.c aio_ring_mremap moves the context's id with it).
// io_setup is asked for as many events as make a ring of the image's size (the kernel doubles
// what it is asked, adds two and fills whole pages: CRIU's aio.c inverts it the same way); a
// machine whose CPU count makes a larger ring fails the restart, naming the ring. Each ring's
// place is held by a PROT_NONE reservation first, so that no ring io_setup places lands where
// another must go. The dump refused any ring holding events: a new ring holds none either.
import { CrError } from '../errors.js';
import { ringEvents, type Mapping } from '../image/process-head.js';
import { MAP_ANONYMOUS, MAP_FIXED_NOREPLACE, MAP_NORESERVE, MAP_PRIVATE, MREMAP_FIXED, MREMAP_MAYMOVE, PROT_READ, PROT_WRITE, SYS } from '../inject/syscalls.js';
import type { Husk } from './husk.js';
import { addAdvice } from './memory.js';

/** What io_setup is asked for so that the ring it makes holds `events` (kernel: max(n, 4 per CPU) * 2 + 2, in whole pages). */
export const askedEvents = (events: number): number => Math.floor((events - 2) / 2);

/** Make every aio ring of the image in the husk, at its address, with its protection and advice. */
export function makeAioRings(husk: Husk, image: Mapping[]): void {
  const rings = image.filter((m) => m.kind === 'aio');
  if (rings.length === 0) return;
  const reserve = husk.queue();
  for (const m of rings) {
    const at = BigInt(m.start);
    reserve.add('mmap', SYS.mmap, [at, BigInt(m.end - m.start), 0n, BigInt(MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE), -1n, 0n], at);
  }
  reserve.run();
  const idAt = husk.scratch(8);
  try {
    for (const m of rings) {
      const where = `the aio ring at 0x${m.start.toString(16)}`;
      const len = m.end - m.start;
      const events = ringEvents(len);
      const ask = askedEvents(events);
      husk.write(idAt, Buffer.alloc(8)); // io_setup wants a zero id to fill
      husk.callNamed(where, `io_setup(${ask})`, SYS.io_setup, BigInt(ask), idAt);
      const ctx = husk.read(idAt, 8).readBigUInt64LE(0);
      const nr = husk.read(ctx + 4n, 4).readUInt32LE(0);
      if (nr !== events) throw new CrError(`${where}: io_setup(${ask}) made a ring of ${nr} events here, the image's holds ${events} (another number of CPUs)`);
      const q = husk.queue();
      const at = BigInt(m.start);
      q.add('mremap', SYS.mremap, [ctx, BigInt(len), BigInt(len), BigInt(MREMAP_MAYMOVE | MREMAP_FIXED), at], at);
      if (m.prot !== (PROT_READ | PROT_WRITE)) q.add('mprotect', SYS.mprotect, [at, BigInt(len), BigInt(m.prot)], 0n);
      addAdvice(q, m, at, BigInt(len));
      q.run();
    }
  } finally {
    husk.reset();
  }
}
