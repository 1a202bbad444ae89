// SHA-256 (of the [vdso] a dump records and a restart compares, of an fd-table image's payload)
// by the OpenSSL the running node carries, called through koffi: loading node:crypto for it costs
// about as much as all the rest of a dump's modules (10 ms CPU and 250 page faults in process,
// docs/performance.md). Where node exports no OpenSSL, node:crypto's, the same function.
import { createRequire } from 'node:module';
import { nodeFunction } from './libc.js';

/** SHA-256's output, in bytes. */
const DIGEST_BYTES = 32;

type EvpDigest = (data: Uint8Array, count: number, md: Buffer, size: null, type: unknown, engine: null) => unknown;

/** OpenSSL's digest, one-shot and in pieces (EVP_MD_CTX), with EVP_sha256's descriptor. */
interface OpenSsl {
  digest: EvpDigest;
  sha256: unknown;
  ctxNew: () => unknown;
  ctxFree: (ctx: unknown) => void;
  init: (ctx: unknown, type: unknown, engine: null) => number;
  update: (ctx: unknown, data: Uint8Array, count: number) => number;
  final: (ctx: unknown, md: Buffer, size: null) => number;
}

let openssl: OpenSsl | null | undefined;

function evp(): typeof openssl {
  if (openssl === undefined) {
    try {
      const sha256 = nodeFunction('const void *EVP_sha256(void)')();
      openssl = {
        digest: nodeFunction('int EVP_Digest(const void *data, size_t count, _Out_ void *md, void *size, const void *type, void *engine)') as EvpDigest,
        sha256,
        ctxNew: nodeFunction('void *EVP_MD_CTX_new(void)') as OpenSsl['ctxNew'],
        ctxFree: nodeFunction('void EVP_MD_CTX_free(void *ctx)') as OpenSsl['ctxFree'],
        init: nodeFunction('int EVP_DigestInit_ex(void *ctx, const void *type, void *engine)') as OpenSsl['init'],
        update: nodeFunction('int EVP_DigestUpdate(void *ctx, const void *data, size_t count)') as OpenSsl['update'],
        final: nodeFunction('int EVP_DigestFinal_ex(void *ctx, _Out_ void *md, void *size)') as OpenSsl['final'],
      };
    } catch {
      openssl = null;
    }
  }
  return openssl;
}

/**
 * Look OpenSSL's functions up now (the program's own symbols opened, the prototypes declared:
 * about 0.2 ms), so that the first sha256() does not pay for it: a dump calls this before it
 * freezes anything, and its first digest (the vdso's) is taken while frozen.
 */
export function readySha256(): void {
  evp();
}

/** SHA-256 of bytes, or of the bytes of several buffers one after the other (not joined first). */
export function sha256(bytes: Uint8Array | readonly Uint8Array[]): Buffer {
  const ssl = evp();
  if (ssl) {
    const md = Buffer.alloc(DIGEST_BYTES);
    // Each call returns 1 on success; on anything else, the other implementation answers.
    if (!Array.isArray(bytes)) {
      const one = bytes as Uint8Array;
      if (ssl.digest(one, one.length, md, null, ssl.sha256, null) === 1) return md;
    } else {
      const ctx = ssl.ctxNew();
      if (ctx !== null) {
        try {
          let ok = ssl.init(ctx, ssl.sha256, null) === 1;
          for (const part of bytes) ok &&= ssl.update(ctx, part, part.length) === 1;
          if (ok && ssl.final(ctx, md, null) === 1) return md;
        } finally {
          ssl.ctxFree(ctx);
        }
      }
    }
  }
  const { createHash } = createRequire(import.meta.url)('node:crypto') as typeof import('node:crypto');
  const hash = createHash('sha256');
  for (const part of Array.isArray(bytes) ? (bytes as readonly Uint8Array[]) : [bytes as Uint8Array]) hash.update(part);
  return hash.digest();
}
