// The storage's cache epoch: how a deletion in storage reaches the copies API replicas keep in
// memory (records and content by digest). Nothing else ever changes under a key or digest, but gc
// deletes, and a replica that went on serving a deleted image's manifest would send clients to
// blobs that are gone. So before gc deletes anything it writes a new epoch to storage and waits
// CACHE_EPOCH_SETTLE_MS; every replica looks at the epoch at most CACHE_EPOCH_CHECK_MS apart
// while it serves pulls, and drops its copies when the epoch changed. Storage is the only thing
// gc and the replicas share (gc needs no Redis), so that is where the epoch lives.

import { randomUUID } from 'node:crypto';
import type { Storage } from './storage/storage.js';

export const CACHE_EPOCH_KEY = 'maintenance/cache-epoch';
/** How stale a replica's view of the epoch may be. */
export const CACHE_EPOCH_CHECK_MS = 1_000;
/** How long a deleter waits after a new epoch: every serving replica has looked by then. */
export const CACHE_EPOCH_SETTLE_MS = 2 * CACHE_EPOCH_CHECK_MS;

/** The current epoch, or undefined when nothing was ever deleted. */
export async function readCacheEpoch(storage: Pick<Storage, 'getRecord'>): Promise<string | undefined> {
  const value = (await storage.getRecord(CACHE_EPOCH_KEY)) as { epoch?: unknown } | undefined;
  return typeof value?.epoch === 'string' ? value.epoch : undefined;
}

/** Writes a new epoch, then waits `settleMs` so that no replica serves what is about to go. */
export async function announceDeletion(storage: Pick<Storage, 'putRecord'>, settleMs = CACHE_EPOCH_SETTLE_MS, now = new Date()): Promise<void> {
  await storage.putRecord(CACHE_EPOCH_KEY, { epoch: randomUUID(), announcedAt: now.toISOString() });
  if (settleMs > 0) await new Promise((resolve) => setTimeout(resolve, settleMs));
}
