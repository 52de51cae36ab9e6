// Garbage collection of blobs (mark and sweep over the storage interface, so it works the same on
// every backend). Marked: every blob a manifest record names (config, both manifests, layers),
// and, while builds are in flight, every blob a layer record names, since an in-flight build may
// be about to publish a manifest that reuses any of them. Swept: unmarked blobs older than the
// grace period; younger ones may belong to a build that has not written its record yet.
// Layer records left pointing at swept blobs are removed too, so the cache stays truthful.
// Before the first deletion, API replicas are told to drop their in-memory copies (cache-epoch.ts).
// Last, what writers that died left in the temporary area is removed once older than the same grace
// period (temporary.ts); nothing there was ever served, so no replica needs telling.

import { LayerRecordSchema, ManifestRecordSchema, LAYER_RECORD_PREFIX, MANIFEST_RECORD_PREFIX, blobsOfRecord } from '../records.js';
import { CACHE_EPOCH_SETTLE_MS, announceDeletion } from '../cache-epoch.js';
import type { Digest } from '../digest.js';
import type { Storage, TemporaryItem } from '../storage/storage.js';
import { findStaleTemporary, graceCutoff, removeStaleTemporary } from './temporary.js';

export interface GcOptions {
  graceSeconds: number;
  dryRun: boolean;
  /** True while build jobs are waiting or running (see the module comment). */
  buildsInFlight: boolean;
  now?: Date;
  /** How long to wait between telling API replicas and deleting (default CACHE_EPOCH_SETTLE_MS). */
  settleMs?: number;
}

export interface GcReport {
  manifests: number;
  markedBlobs: number;
  /** Deleted (or, in a dry run, deletable) blobs. */
  swept: Array<{ digest: Digest; size: number }>;
  sweptBytes: number;
  /** Unreferenced blobs kept because they are younger than the grace period. */
  keptYoung: number;
  /** Layer records removed (or removable) because their blob is swept. */
  layerRecords: string[];
  /** Temporary items older than the grace period, removed (or, in a dry run, removable); oldest first. */
  temporary: TemporaryItem[];
  temporaryBytes: number;
  /** Temporary items kept because they were written within the grace period (writes in progress). */
  keptYoungTemporary: number;
}

export async function collectGarbage(storage: Storage, options: GcOptions): Promise<GcReport> {
  const now = options.now ?? new Date();
  const marked = new Set<string>();
  let manifests = 0;
  for await (const key of storage.listRecords(MANIFEST_RECORD_PREFIX)) {
    const record = ManifestRecordSchema.safeParse(await storage.getRecord(key));
    if (!record.success) continue;
    manifests += 1;
    for (const digest of blobsOfRecord(record.data)) marked.add(digest);
  }

  const layerDigests = new Map<string, string>(); // record key → blob
  for await (const key of storage.listRecords(LAYER_RECORD_PREFIX)) {
    const record = LayerRecordSchema.safeParse(await storage.getRecord(key));
    if (!record.success) continue;
    layerDigests.set(key, record.data.digest);
    if (options.buildsInFlight) marked.add(record.data.digest);
  }

  const cutoff = now.getTime() - options.graceSeconds * 1000;
  const swept: GcReport['swept'] = [];
  let keptYoung = 0;
  for await (const blob of storage.listBlobs()) {
    if (marked.has(blob.digest)) continue;
    if (blob.modified.getTime() > cutoff) {
      keptYoung += 1;
      continue;
    }
    swept.push({ digest: blob.digest, size: blob.size });
  }
  if (!options.dryRun && swept.length > 0) {
    await announceDeletion(storage, options.settleMs ?? CACHE_EPOCH_SETTLE_MS, now);
    for (const blob of swept) await storage.deleteBlob(blob.digest);
  }

  const sweptDigests = new Set<string>(swept.map((b) => b.digest));
  const layerRecords = [...layerDigests].filter(([, digest]) => sweptDigests.has(digest)).map(([key]) => key);
  if (!options.dryRun) for (const key of layerRecords) await storage.deleteRecord(key);

  const tempCutoff = graceCutoff(now, options.graceSeconds);
  const stale = await findStaleTemporary(storage, tempCutoff);
  const temporary = options.dryRun ? stale.items : await removeStaleTemporary(storage, stale.items, tempCutoff);

  return {
    manifests,
    markedBlobs: marked.size,
    swept,
    sweptBytes: swept.reduce((sum, b) => sum + b.size, 0),
    keptYoung,
    layerRecords,
    temporary,
    temporaryBytes: temporary.reduce((sum, item) => sum + item.size, 0),
    keptYoungTemporary: stale.keptYoung,
  };
}
