// What writers that died left in storage's temporary area (`tmp/`, and on S3 incomplete multipart
// uploads), shared by gc (which removes it) and fsck (which reports it, and removes it with
// --repair). Only items last written before a grace period are touched: a younger one may be a
// write in progress, and removing it would fail that write. Over the Storage interface, so it
// works the same on every backend; the backends refuse anything outside the temporary area.

import type { Storage, TemporaryItem } from '../storage/storage.js';

/** The grace period gc and fsck use unless told otherwise: a day, as the S3 lifecycle rule. */
export const DEFAULT_GRACE_SECONDS = 86_400;

export interface StaleTemporary {
  /** Items last written before the cutoff, oldest first. */
  items: TemporaryItem[];
  bytes: number;
  /** Items written since the cutoff: writes in progress, or too recent to tell. */
  keptYoung: number;
}

/** The instant before which an item counts as stale: `graceSeconds` before `now`. */
export function graceCutoff(now: Date, graceSeconds: number): Date {
  if (!Number.isFinite(graceSeconds) || graceSeconds < 0) throw new RangeError(`grace period must be >= 0 seconds, got ${graceSeconds}`);
  return new Date(now.getTime() - graceSeconds * 1000);
}

/** The temporary items last written before `cutoff`. */
export async function findStaleTemporary(storage: Storage, cutoff: Date): Promise<StaleTemporary> {
  const items: TemporaryItem[] = [];
  let keptYoung = 0;
  for await (const item of storage.listTemporary()) {
    if (item.modified.getTime() < cutoff.getTime()) items.push(item);
    else keptYoung += 1;
  }
  items.sort((a, b) => a.modified.getTime() - b.modified.getTime());
  return { items, bytes: sumBytes(items), keptYoung };
}

/**
 * Removes the given stale items, each only if it is still last written before `cutoff` (the backend
 * checks again); returns those it removed. One that was written to since, or is gone, is left.
 */
export async function removeStaleTemporary(storage: Storage, items: readonly TemporaryItem[], cutoff: Date): Promise<TemporaryItem[]> {
  const removed: TemporaryItem[] = [];
  for (const item of items) {
    const ref = item.uploadId === undefined ? { location: item.location } : { location: item.location, uploadId: item.uploadId };
    if (await storage.removeTemporary(ref, cutoff)) removed.push(item);
  }
  return removed;
}

function sumBytes(items: readonly { size: number }[]): number {
  return items.reduce((sum, item) => sum + item.size, 0);
}
