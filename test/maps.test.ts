// Mappings issue 17 asks to carry rather than refuse: shared anonymous memory named with
// PR_SET_VMA_ANON_NAME ([anon_shmem:NAME]; this kernel may lack CONFIG_ANON_VMA_NAME, so it is
// judged from smaps text: classified as the shared object it is, named again by restart).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { classify } from '../src/checkpoint/maps.js';
import { parseSmaps } from '../src/proc/smaps.js';
import { anonName } from '../src/restart/memory.js';

const smaps = (line: string): ReturnType<typeof parseSmaps>[number] => parseSmaps(`${line}\nVmFlags: rd wr sh mr mw me ms\n`)[0]!;

test('[anon_shmem:NAME] is shared anonymous memory of its inode, keeping its name, which restart gives it again; [anon:NAME] too', () => {
  const named = classify(smaps('7f0000000000-7f0000002000 rw-s 00001000 00:01 1025                       [anon_shmem:work counter]'))!;
  assert.is(named.mapping.kind, 'shared-anon');
  assert.is(named.mapping.name, '[anon_shmem:work counter]');
  assert.equal(named.mapping.shm, { object: 1025, offset: 4096, sysv: null });
  assert.is(anonName(named.mapping), 'work counter');
  // The same object unnamed: one object, no name to give.
  const plain = classify(smaps('7f0000004000-7f0000005000 rw-s 00000000 00:01 1025                       /dev/zero (deleted)'))!;
  assert.equal([plain.mapping.kind, plain.mapping.name, plain.mapping.shm!.object], ['shared-anon', '', 1025]);
  assert.is(anonName(plain.mapping), null);
  const priv = classify(smaps('7f0000006000-7f0000007000 rw-p 00000000 00:00 0                          [anon:arena]'))!;
  assert.equal([priv.mapping.kind, anonName(priv.mapping)], ['anon', 'arena']);
  // A name of the other family is not given: the kernel names each kind its own way.
  assert.is(anonName({ ...priv.mapping, name: '[anon_shmem:arena]' }), null);
});

test('a shared mapping with no inode is still refused in one line', () => {
  assert.throws(() => classify(smaps('7f0000000000-7f0000001000 rw-s 00000000 00:00 0                          [odd]')), /a shared mapping with no file behind it/);
});

test.run();
