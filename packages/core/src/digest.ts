// Digests: the content addresses of blobs and manifests (`sha256:<64 lowercase hex>`). They come
// from URLs (manifest references, blob paths) and go into storage paths, so only one algorithm and
// one exact spelling is accepted; anything else is DIGEST_INVALID (400), never a 500 or a lookup.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { displayValue } from './display.js';
import { isKey } from './keys.js';
import { RegistryError } from './registry-errors.js';

/** A digest as `sha256:<64 lowercase hex>`. */
export type Digest = `sha256:${string}`;

export function isDigest(value: unknown): value is Digest {
  return typeof value === 'string' && value.startsWith('sha256:') && isKey(value.slice('sha256:'.length));
}

/** Returns the digest unchanged, or throws RegistryError DIGEST_INVALID. */
export function parseDigest(value: string): Digest {
  if (isDigest(value)) return value;
  throw new RegistryError(
    'DIGEST_INVALID',
    `invalid digest ${displayValue(value)}: expected "sha256:" followed by 64 lowercase hex digits`,
    { digest: displayValue(value) },
  );
}

/** The hex part of a digest (what `blobs/sha256/<hex>` is named after). */
export function digestHex(digest: Digest): string {
  return digest.slice('sha256:'.length);
}

/** The sha256 digest of some bytes. */
export function sha256Digest(data: Uint8Array | string): Digest {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Zod schema for a digest, for records and job results. */
export const DigestSchema = z.custom<Digest>(isDigest, { message: 'expected "sha256:" followed by 64 lowercase hex digits' });
