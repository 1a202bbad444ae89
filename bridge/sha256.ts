// SHA-256 (of the [vdso] a dump records and a restart compares, of an fd-table image's payload)
// by the OpenSSL the running node carries, called through koffi: loading node:crypto for it costs
// about as much as all the rest of a dump's modules (10 ms CPU and 250 page faults in process,
// docs/performance.md). Where node exports no OpenSSL, node:crypto's, the same function.
import { createRequire } from 'node:module';
import { nodeFunction } from './libc.js';

/** SHA-256's output, in bytes. */
const DIGEST_BYTES = 32;

type EvpDigest = (data: Uint8Array, count: number, md: Buffer, size: null, type: unknown, engine: null) => unknown;

let openssl: { digest: EvpDigest; sha256: unknown } | null | undefined;

function evp(): typeof openssl {
  if (openssl === undefined) {
    try {
      const sha256 = nodeFunction('const void *EVP_sha256(void)')();
      openssl = { digest: nodeFunction('int EVP_Digest(const void *data, size_t count, _Out_ void *md, void *size, const void *type, void *engine)') as EvpDigest, sha256 };
    } catch {
      openssl = null;
    }
  }
  return openssl;
}

/**
 * Look OpenSSL's functions up now (the program's own symbols opened, two prototypes declared:
 * about 0.2 ms), so that the first sha256() does not pay for it: a dump calls this before it
 * freezes anything, and its first digest (the vdso's) is taken while frozen.
 */
export function readySha256(): void {
  evp();
}

/** SHA-256 of bytes. */
export function sha256(bytes: Uint8Array): Buffer {
  const ssl = evp();
  if (ssl) {
    const md = Buffer.alloc(DIGEST_BYTES);
    // EVP_Digest returns 1 on success; on anything else, the other implementation answers.
    if (ssl.digest(bytes, bytes.length, md, null, ssl.sha256, null) === 1) return md;
  }
  const { createHash } = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto');
  return createHash('sha256').update(bytes).digest();
}
