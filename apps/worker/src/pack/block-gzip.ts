// Block-parallel gzip (docs/layering.md, "Compression"). A layer's tar is cut into blocks of
// GZIP_BLOCK_SIZE bytes (the last one shorter), each block becomes one complete gzip member
// (header, deflate stream, CRC-32 and length of that block), and the members are written one after
// another in input order. RFC 1952 §2.2 defines a gzip file as a series of members, and every
// gzip reader a client uses decompresses them as one stream (Go's compress/gzip in containerd,
// podman, skopeo and umoci; zlib's gunzip; GNU gzip); the tar inside, and so the diff_id, is the
// same as with one member. Because the blocks are independent, the pool's threads compress them
// at once and one big layer uses every core.
//
// The bytes are a pure function of the tar and the level: block boundaries fall at fixed offsets
// of the tar (never where a read happened to end, never on the thread count), each member is
// node:zlib's gzipSync of its block (no time, no name in the header) at the level, or at level 0
// when the block does not compress (gzip-pool.ts, PROBE_MIN: judged on the block's bytes alone),
// and order is input order. A layer smaller than INLINE_LIMIT, too small to be judged, is
// compressed right here, which gives the very member a thread would. Changing GZIP_BLOCK_SIZE (or
// the probe) changes the bytes of every layer over one block: the layer records keep the farm
// consistent (docs/layering.md), but workers with different block sizes would pack different blobs
// for the same new layer.
//
// Memory is bounded: a block exists only against one of the pool's tokens, taken while it fills and
// given back once its member has been passed on, so a layer holds at most the blocks it has
// queued plus the one filling, and all layers together at most the pool's maxBlocks.

import { gzipSync } from 'node:zlib';
import { GZIP_BLOCK_SIZE, PROBE_MIN, type GzipPool } from './gzip-pool.js';

/**
 * A layer whose whole tar is below this is compressed here: a thread hop would cost more. It is
 * PROBE_MIN, so that such a block is never one a thread would have stored instead.
 */
export const INLINE_LIMIT = PROBE_MIN;

export interface BlockGzipOptions {
  level: number;
  pool: GzipPool;
}

/**
 * The gzip members of `source`, in order. Stopping the iteration early (a failing storage) stops
 * reading `source` and drops the blocks still in work; a failing source makes the iteration throw
 * its error.
 */
export async function* gzipBlocks(source: AsyncIterable<Uint8Array>, { level, pool }: BlockGzipOptions): AsyncGenerator<Buffer> {
  // Members in work, in input order; each holds one token until it has been yielded.
  const inWork: InWork[] = [];
  let block: ArrayBuffer | undefined;
  let view: Uint8Array | undefined;
  let filled = 0;
  let blocks = 0;
  try {
    for await (const chunk of source) {
      for (let offset = 0; offset < chunk.length; ) {
        if (!block) {
          // Pass members on while waiting for a token, so a layer never waits on tokens it holds.
          for (;;) {
            block = pool.tryAcquire();
            if (block) break;
            if (inWork.length === 0) {
              block = await pool.acquire();
              break;
            }
            yield await next(inWork, pool);
          }
          view = new Uint8Array(block);
          filled = 0;
        }
        const n = Math.min(chunk.length - offset, GZIP_BLOCK_SIZE - filled);
        view!.set(chunk.subarray(offset, offset + n), filled);
        filled += n;
        offset += n;
        if (filled === GZIP_BLOCK_SIZE) {
          inWork.push(inWorkOf(pool.gzip(block, filled, level)));
          blocks++;
          block = view = undefined;
          // Members already done go on at once, so they do not hold tokens while more tar is read.
          while (inWork[0]?.done) yield await next(inWork, pool);
        }
      }
    }
    // The last, shorter block; or the only one. Empty input still makes one (empty) member, a valid gzip file.
    if (blocks === 0 && filled < INLINE_LIMIT) {
      const member = gzipSync(view ? view.subarray(0, filled) : new Uint8Array(0), { level });
      if (block) pool.release(block);
      block = view = undefined;
      yield member;
      return;
    }
    if (block && filled > 0) {
      inWork.push(inWorkOf(pool.gzip(block, filled, level)));
      block = view = undefined;
    }
    while (inWork.length > 0) yield await next(inWork, pool);
  } finally {
    // Early exit or failure: give back the filling block's token and, as they finish, those of the
    // blocks still in work (their members are dropped).
    if (block) pool.release(block);
    for (const { member } of inWork.splice(0)) member.then(() => pool.release(), () => pool.release());
  }
}

interface InWork {
  member: Promise<Buffer>;
  done: boolean;
}

/** Tracks when a member is done; a failure is handled here too, so it is no unhandled rejection while earlier members are awaited. */
function inWorkOf(member: Promise<Buffer>): InWork {
  const entry: InWork = { member, done: false };
  member.then(
    () => (entry.done = true),
    () => (entry.done = true),
  );
  return entry;
}

/** The first member in work, once done; its token goes back as it is passed on. */
async function next(inWork: InWork[], pool: GzipPool): Promise<Buffer> {
  try {
    return await inWork[0]!.member;
  } finally {
    // Removed only once settled, so that the finally of gzipBlocks releases the tokens of the rest.
    inWork.shift();
    pool.release();
  }
}
