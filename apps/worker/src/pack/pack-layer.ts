// Packing one layer into storage (docs/design.md §1, phase 5): tar → sha256 (the diff_id, which the image
// config lists) → gzip → storage (which hashes what it writes: the digest, which the manifest lists).
// It is one streaming pass: a layer can be gigabytes, so it is never held whole in memory or
// written to a scratch file, and the tar is never produced twice to get its two hashes.

import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { Digest, Storage } from '@nixyard/core';
import { tarStream, type TarEntry } from './layer-tar.js';

export interface PackOptions {
  /** zlib level, 0–9. Node's gzip header carries no time or name, so equal input gives equal bytes. */
  gzipLevel: number;
}

export interface PackedLayer {
  /** Digest of the gzipped blob, as the manifest lists it. */
  digest: Digest;
  /** Digest of the uncompressed tar, as the image config's rootfs.diff_ids lists it. */
  diffId: Digest;
  /** Size of the gzipped blob in bytes. */
  size: number;
  /** False when storage already held an identical blob. */
  created: boolean;
}

export async function packLayer(
  storage: Storage,
  entries: AsyncIterable<TarEntry> | Iterable<TarEntry>,
  options: PackOptions,
): Promise<PackedLayer> {
  const tarHash = createHash('sha256');
  let sourceError: { error: unknown } | undefined;
  async function* hashed(source: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of source) {
        tarHash.update(chunk);
        yield chunk;
      }
    } catch (error) {
      sourceError = { error };
      throw error;
    }
  }
  const gzip = createGzip({ level: options.gzipLevel });
  // Both sides run at once: the pipeline pushes tar bytes into gzip while storage pulls from it,
  // and each waits for the other (backpressure), so memory stays at a few stream buffers.
  const [piped, written] = await Promise.allSettled([
    pipeline(hashed(tarStream(entries)), gzip),
    // A backend that fails before reading everything must not leave the pipeline waiting.
    storage.writeBlob(gzip).catch((error: unknown) => {
      gzip.destroy();
      throw error;
    }),
  ]);
  // Report the cause, not its echo: a failing walk (unreadable file, unsupported file type) reaches
  // storage as a stream error too, and a failing storage reaches the pipeline as an abort.
  if (sourceError) throw sourceError.error;
  if (written.status === 'rejected') throw written.reason;
  if (piped.status === 'rejected') throw piped.reason;
  return {
    digest: written.value.digest,
    diffId: `sha256:${tarHash.digest('hex')}`,
    size: written.value.size,
    created: written.value.created,
  };
}

