// Cost of syscall injection on a live `sleep`: one injected getppid (two ptrace syscall stops and
// the register traffic around them), and attach+finish (scratch mmap, signal mask, restore).
// Run: npm run build && node build/bench/inject.bench.js
import { Bench } from 'tinybench';
import { detach, seizeAndStop } from '../bridge/ptrace.js';
import { spawn } from '../bridge/spawn.js';
import { Injector } from '../src/inject/injector.js';
import { SYS } from '../src/inject/syscalls.js';
import { ensureReaped } from '../test/helpers/processes.js';

const p50 = (bench: Bench, name: string): number => {
  const result = bench.tasks.find((t) => t.name === name)!.result as unknown as { latency?: { p50?: number } };
  return result.latency?.p50 ?? NaN;
};

const pid = spawn(['sleep', '600'], { fds: [] });
try {
  seizeAndStop(pid);
  const bench = new Bench({ time: 1000, warmup: true });
  const inj = Injector.attach(pid);
  bench.add('injected getppid', () => {
    if (inj.syscall(SYS.getppid) !== BigInt(process.pid)) throw new Error('getppid: wrong result');
  });
  await bench.run();
  inj.finish();
  const whole = new Bench({ time: 1000, warmup: true });
  whole.add('attach + finish', () => Injector.attach(pid).finish());
  await whole.run();
  detach(pid);
  console.table([
    { what: 'one injected syscall (getppid)', 'median (µs)': (p50(bench, 'injected getppid') * 1000).toFixed(1) },
    { what: 'Injector.attach + finish', 'median (µs)': (p50(whole, 'attach + finish') * 1000).toFixed(1) },
  ]);
} finally {
  ensureReaped(pid);
}
