// Packing one layer into storage (docs/design.md §1, phase 5): tar → sha256 (the diff_id, which the image
// config lists) → gzip → storage (which hashes what it writes: the digest, which the manifest lists).
// It is one streaming pass: a layer can be gigabytes, so it is never held whole in memory or
// written to a scratch file, and the tar is never produced twice to get its two hashes. The gzip
// step compresses fixed-size blocks of the tar on the pool's threads, one gzip member each
// (block-gzip.ts), so one layer can use every core.

import { createHash } from 'node:crypto';
import type { Digest, Storage } from '@nixyard/core';
import { gzipBlocks } from './block-gzip.js';
import { sharedGzipPool, type GzipPool } from './gzip-pool.js';
import { tarStream, type TarEntry } from './layer-tar.js';

export interface PackOptions {
  /** zlib level, 0–9. Node's gzip header carries no time or name, so equal input gives equal bytes. */
  gzipLevel: number;
  /** The threads that compress; the process's shared pool (one thread per core) when not given. */
  pool?: GzipPool;
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
  const tar = tarStream(entries);
  let sourceError: { error: unknown } | undefined;
  async function* hashed(): AsyncGenerator<Buffer> {
    try {
      for await (const chunk of tar) {
        tarHash.update(chunk);
        yield chunk;
      }
    } catch (error) {
      sourceError = { error };
      throw error;
    }
  }
  // Storage pulls members as it writes them, the members pull tar as blocks free up, and the tar
  // reads files as it is pulled (backpressure all along), so memory stays at the pool's bounded
  // blocks and a few stream buffers, while the pool's threads compress blocks side by side.
  const members = gzipBlocks(hashed(), { level: options.gzipLevel, pool: options.pool ?? sharedGzipPool() });
  let written;
  try {
    written = await storage.writeBlob(members);
  } catch (error) {
    // Report the cause, not its echo: a failing walk (unreadable file, unsupported file type)
    // reaches storage as an error of the members it reads.
    throw sourceError ? sourceError.error : error;
  } finally {
    // A backend that fails before or while reading leaves the members unfinished: stop them (the
    // blocks still in work are dropped), and stop the walk even if the members never started.
    await members.return(undefined);
    tar.destroy();
  }
  if (sourceError) throw sourceError.error;
  return {
    digest: written.digest,
    diffId: `sha256:${tarHash.digest('hex')}`,
    size: written.size,
    created: written.created,
  };
}
