// The image file as cr reads it and the files cr writes (issue 9): output paths that are devices,
// FIFOs or directories are never replaced, no temporary name can be guessed, IMAGE is opened
// once and never waited on, a failed dump leaves a stopped process stopped, and a checksum-valid
// image cannot make decoding exhaust memory or time.
import { execFileSync, spawn as spawnAsync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Packr } from 'msgpackr';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { kill, SIGSTOP } from '../bridge/signal.js';
import { readStatus } from '../src/proc/process.js';
import { PROCESS_FORMAT_VERSION } from '../src/image/process-format.js';
import { imageChecksum } from '../src/image/checksum.js';
import { IMAGE_FORMAT_VERSION } from '../src/image/format.js';
import { CR, cr, ROOT, type Run } from './helpers/cli.js';
import { ensureReaped, withProcess } from './helpers/processes.js';

const dir = mkdtempSync(join(tmpdir(), 'cr-imageio-'));
const sha256 = (bytes: Uint8Array): Buffer => createHash('sha256').update(bytes).digest();
const plain = new Packr({ useRecords: false, mapsAsObjects: true, variableMapSize: true });

/** `node cr.mjs ...` as a process of its own, killed (and the test failed) if it has not ended within 60 s. */
function crGuarded(args: string[]): Run {
  const r = spawnSync(process.execPath, [CR, ...args], { encoding: 'utf8', cwd: ROOT, timeout: 60_000, killSignal: 'SIGKILL', maxBuffer: 1 << 20 });
  assert.is(r.signal, null, `cr ${args.join(' ')} did not end by itself (${r.signal})`);
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A whole-process image of a tree of one (pid 1), an empty fd record and the given head record body, its checksum right. */
function processImage(head: Buffer): Buffer {
  const record = (type: number, body: Buffer): Buffer => {
    const h = Buffer.alloc(8);
    h.writeUInt32LE(type, 0);
    h.writeUInt32LE(body.length, 4);
    return Buffer.concat([h, body]);
  };
  const header = Buffer.alloc(16);
  Buffer.from('cr-proc\n', 'latin1').copy(header);
  header.writeUInt32LE(PROCESS_FORMAT_VERSION, 8);
  const tree = plain.pack({ formatVersion: PROCESS_FORMAT_VERSION, members: [{ pid: 1, ppid: 0, pgid: 1, sid: 1, comm: 'x', cmdline: [], stopped: false, zombie: null }] });
  const sealed = Buffer.concat([header, record(5, tree), record(2, plain.pack(null)), record(1, head)]);
  return Buffer.concat([sealed, record(4, imageChecksum(sealed))]);
}

/** An fd-table image whose payload is given as bytes, its checksum right. */
const fdImage = (payload: Buffer): Buffer => plain.pack({ magic: 'cr-fd-image', formatVersion: IMAGE_FORMAT_VERSION, checksum: { sha256: sha256(payload) }, payload });

test('decoding bombs with valid checksums are refused (exit 2, one line), not decoded', async () => {
  // 600 mappings sharing one 1M-entry list through msgpackr's shared references: 1 MB that
  // would decode to 600M values.
  const big = new Array<number>(1 << 20).fill(0);
  const mappings = Array.from({ length: 600 }, (_, i) => ({ start: i * 4096, end: (i + 1) * 4096, prot: 1, kind: 'anon', name: '', file: null, vmflags: big }));
  const shared = join(dir, 'shared.img');
  writeFileSync(shared, processImage(new Packr({ useRecords: false, structuredClone: true }).pack({ formatVersion: 1, mappings })));
  // 24 MiB of empty lists as the fd table's fds: each byte a JS array.
  const n = 24 << 20;
  const lists = Buffer.alloc(5 + n, 0x90);
  lists[0] = 0xdd;
  lists.writeUInt32BE(n, 1);
  const before = plain.pack({ toolVersion: '0.1.0', kernel: 'x', process: { pid: 1, comm: 'x', cmdline: [], uid: 0 }, dropped: [] });
  // The payload map with one more entry, `table: {fds: <lists>, ...}`, spliced in by hand.
  const tail = plain.pack({ descs: [], pipes: [], rlimit: { soft: 64, hard: 64 } });
  const payload = Buffer.concat([
    Buffer.from([0x86]), before.subarray(1), plain.pack('table'),
    Buffer.from([0x84]), plain.pack('fds'), lists, tail.subarray(1),
  ]);
  const empty = join(dir, 'empty.img');
  writeFileSync(empty, fdImage(payload));
  for (const [image, why] of [
    [shared, 'not a valid cr process image: head: a msgpack extension (type 0x69); images are plain msgpack'],
    [empty, `not a valid cr image: payload: it would decode to over 224 MiB (32 MiB + 8 x its ${payload.length} bytes): too many values for its size`],
  ] as const) {
    // show as a process of its own (bounded, should the bound ever fail), restore in this one.
    for (const command of ['show', 'restore']) {
      const r = command === 'show' ? crGuarded([command, image]) : await cr([command, image]);
      assert.is(r.code, 2, `${command} ${image}: ${r.stderr}`);
      assert.is(r.stderr, `cr ${command}: ${image}: ${why}\n`);
    }
  }
  rmSync(empty);
});

test('nesting, key types and counts that lie are refused before decoding', async () => {
  const base = (table: Buffer): Buffer =>
    Buffer.concat([Buffer.from([0x85]), plain.pack({ toolVersion: '0.1.0', kernel: 'x', process: { pid: 1, comm: 'x', cmdline: [], uid: 0 }, dropped: [] }).subarray(1), plain.pack('table'), table]);
  const cases: Array<[Buffer, string]> = [
    [Buffer.concat([Buffer.alloc(40, 0x91), Buffer.from([0xc0])]), 'payload: nesting deeper than 16'],
    [Buffer.from([0x81, 0x01, 0xc0]), 'payload: a map key that is not a string'],
    [Buffer.from([0xdd, 0x7f, 0xff, 0xff, 0xff, 0xc0]), 'payload: a list of 2147483647 entries in 1 bytes'],
  ];
  for (const [table, why] of cases) {
    const image = join(dir, 'lie.img');
    writeFileSync(image, fdImage(base(table)));
    const r = await cr(['show', image]);
    assert.is(r.code, 2, r.stderr);
    assert.is(r.stderr, `cr show: ${image}: not a valid cr image: ${why}\n`);
  }
});

const EMPTY_TABLE = JSON.stringify({ descs: [], pipes: [], processes: [{ pid: 1, fds: [], rlimit: { soft: 64, hard: 64 } }] });

/** Wait (bounded) until pid is in state T: stopped by a signal, not traced. */
function waitStopped(pid: number): void {
  const until = Date.now() + 10_000;
  while (readStatus(pid).state !== 'T') {
    if (Date.now() > until) throw new Error(`pid ${pid} did not stop`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
  }
}

test('dump -o and --pidfile never replace a device, FIFO or directory, with or without --force', async () => {
  const fifo = join(dir, 'out.fifo');
  execFileSync('mkfifo', [fifo]);
  const table = join(dir, 'empty.json');
  writeFileSync(table, EMPTY_TABLE);
  await withProcess(['sleep', '1000'], { fds: [] }, async (pid) => {
    for (const [path, kind] of [['/dev/null', 'a character device'], [fifo, 'a FIFO']] as const) {
      for (const extra of [['--fds-only'], ['--fds-only', '--force'], ['--force']]) {
        const r = await cr(['dump', '--pid', String(pid), '-o', path, ...extra]);
        assert.is(r.code, 2, r.stderr);
        assert.is(r.stderr, `cr dump: ${path} is ${kind}: cr writes only a new file or over a regular file or a symlink\n`);
      }
      const r = await cr(['restore', table, '--pidfile', path, '--', 'true']);
      assert.is(r.code, 2, r.stderr);
      assert.is(r.stderr, `cr restore: the pidfile ${path} is ${kind}: cr writes only a new file or over a regular file or a symlink\n`);
    }
    assert.is(readStatus(pid).state, 'S', 'the process was not touched');
  });
  assert.ok(statSync('/dev/null').isCharacterDevice());
  assert.is(statSync('/dev/null').rdev, (1 << 8) | 3, '/dev/null is still 1:3');
  assert.ok(lstatSync(fifo).isFIFO());
  const d = join(dir, 'adir');
  mkdirSync(d);
  const r = await cr(['restore', table, '--pidfile', d, '--', 'true']);
  assert.is(r.code, 2, r.stderr);
  assert.is(r.stderr, `cr restore: the pidfile ${d} is a directory\n`);
});

test('a pidfile symlink is replaced itself, and temporary names cannot be guessed or planted', async () => {
  const sub = mkdtempSync(join(dir, 'pid-'));
  const victim = join(sub, 'victim');
  writeFileSync(victim, 'untouched');
  const pidfile = join(sub, 'pid');
  symlinkSync(victim, pidfile);
  // The names the old writers used (F.<pid>.tmp, .F.<pid>.*.tmp), planted as symlinks.
  for (const planted of [`pid.${process.pid}.tmp`, `.pid.${process.pid}.tmp`, `image.${process.pid}.tmp`]) symlinkSync(victim, join(sub, planted));
  const table = join(sub, 'table.json');
  writeFileSync(table, EMPTY_TABLE);
  const r = await cr(['restore', table, '--pidfile', pidfile, '--', 'true']);
  assert.is(r.code, 0, r.stderr);
  assert.ok(lstatSync(pidfile).isFile(), 'the symlink itself was replaced');
  assert.match(readFileSync(pidfile, 'utf8'), /^[1-9]\d*\n$/);
  assert.is(readFileSync(victim, 'utf8'), 'untouched');
  await withProcess(['sleep', '1000'], { fds: [] }, async (pid) => {
    const d = await cr(['dump', '--fds-only', '--pid', String(pid), '-o', join(sub, 'image')]);
    assert.is(d.code, 0, d.stderr);
  });
  assert.is(readFileSync(victim, 'utf8'), 'untouched');
  // Nothing else was created beside them: the files were written with no name until complete.
  assert.equal(readdirSync(sub).sort(), ['.pid.' + process.pid + '.tmp', 'image', 'image.' + process.pid + '.tmp', 'pid', 'pid.' + process.pid + '.tmp', 'table.json', 'victim']);
});

test('a failed dump leaves a stopped process stopped, and a missing directory is found before the freeze', async () => {
  await withProcess(['sleep', '1000'], { fds: [] }, async (pid) => {
    kill(pid, SIGSTOP);
    waitStopped(pid);
    const missing = join(dir, 'missing', 'image');
    for (const extra of [['--fds-only', '--leave-stopped'], ['--fds-only'], ['--leave-stopped'], []]) {
      const r = await cr(['dump', '--pid', String(pid), '-o', missing, ...extra]);
      assert.is(r.code, 1, r.stderr);
      assert.is(r.stderr, `cr dump: cannot write ${missing}: ENOENT (open)\n`);
      // Before, --fds-only --leave-stopped froze it, failed to write, and sent SIGCONT.
      assert.is(readStatus(pid).state, 'T', `still stopped after dump ${extra.join(' ')}`);
    }
  });
});

/**
 * The number of times each name in directory d was opened while fn ran (inotify, watched by a
 * python3 of its own: it ends when its stdin closes).
 */
async function opensDuring(d: string, fn: () => Promise<void>): Promise<Record<string, number>> {
  const watcher = spawnAsync('python3', ['-c', WATCH_PY, d], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  watcher.stdout.on('data', (c: Buffer) => void (out += c.toString()));
  const ended = new Promise<void>((resolve) => watcher.on('close', () => resolve()));
  try {
    const until = Date.now() + 20_000;
    while (!out.startsWith('ready\n')) {
      if (Date.now() > until || watcher.exitCode !== null) throw new Error('the inotify watcher did not start');
      await new Promise((r) => setTimeout(r, 10));
    }
    await fn();
  } finally {
    watcher.stdin.end();
    await ended;
  }
  return JSON.parse(out.slice('ready\n'.length)) as Record<string, number>;
}

const WATCH_PY = `
import ctypes, json, os, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init1(os.O_NONBLOCK)
# IN_OPEN | IN_CLOSE_NOWRITE: the kernel merges an event identical to the one queued before it,
# so opens are counted between closes.
if fd < 0 or libc.inotify_add_watch(fd, sys.argv[1].encode(), 0x20 | 0x10) < 0:
    sys.exit('inotify: ' + os.strerror(ctypes.get_errno()))
print('ready', flush=True)
sys.stdin.read()
counts = {}
while True:
    try:
        buf = os.read(fd, 1 << 16)
    except BlockingIOError:
        break
    off = 0
    while off < len(buf):
        _, mask, _, n = struct.unpack_from('iIII', buf, off)
        name = buf[off + 16:off + 16 + n].rstrip(b'\\0').decode()
        if mask & 0x20:
            counts[name] = counts.get(name, 0) + 1
        off += 16 + n
print(json.dumps(counts))
`;

test('IMAGE is opened exactly once by show, plan and restore, and never by the dump that wrote it', async () => {
  const sub = mkdtempSync(join(dir, 'once-'));
  const image = join(sub, 'image');
  let restarted = 0;
  await withProcess(['sleep', '1000'], { fds: [] }, async (pid) => {
    const dumped = await opensDuring(sub, async () => {
      const r = await cr(['dump', '--pid', String(pid), '-o', image]);
      assert.is(r.code, 0, r.stderr);
    });
    assert.is(dumped.image ?? 0, 0, 'dump did not read its image back');
  });
  try {
    const opens = await opensDuring(sub, async () => {
      for (const args of [['show', image], ['plan', image], ['restore', image, '--', 'true'], ['restore', image, '--detach']]) {
        const r = await cr(args);
        assert.is(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
        if (args.includes('--detach')) restarted = Number(r.stdout.trim());
      }
    });
    assert.is(opens.image, 4, 'once per command');
  } finally {
    if (restarted > 0) ensureReaped(restarted);
  }
});

test('an IMAGE that is a FIFO or a symlink is refused at once (no wait for a writer)', async () => {
  const fifo = join(dir, 'image.fifo');
  execFileSync('mkfifo', [fifo]);
  // The first as a process of its own, killed if it waits; badimage.test.ts tries show and plan.
  for (const r of [crGuarded(['restore', fifo]), await cr(['restore', fifo, '--', 'true'])]) {
    assert.is(r.code, 2, r.stderr);
    assert.is(r.stderr, `cr restore: ${fifo} is not a regular file\n`);
  }
  const target = join(dir, 'table.json');
  writeFileSync(target, EMPTY_TABLE);
  const link = join(dir, 'table.link');
  symlinkSync(target, link);
  const r = await cr(['plan', link]);
  assert.is(r.code, 2, r.stderr);
  assert.is(r.stderr, `cr plan: ${link} is a symlink: cr reads an image only from the file itself (give the path it points to)\n`);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
