// Consistency check of storage: every blob re-hashed (or a random sample), every manifest record's
// blobs present and sound. With `repair`, what is broken is removed so that it gets rebuilt: a
// corrupt blob, the manifest records that name a missing or corrupt blob (the next pull rebuilds
// the image) and the layer records pointing at one (the next build repacks the layer).
// It also reports what writers that died left in the temporary area, once older than a grace period
// (temporary.ts); `repair` removes that too.

import { createHash, randomInt } from 'node:crypto';
import { announceDeletion } from '../cache-epoch.js';
import type { Digest } from '../digest.js';
import { LayerRecordSchema, ManifestRecordSchema, LAYER_RECORD_PREFIX, MANIFEST_RECORD_PREFIX, blobsOfRecord } from '../records.js';
import type { Storage, TemporaryItem } from '../storage/storage.js';
import { DEFAULT_GRACE_SECONDS, findStaleTemporary, graceCutoff, removeStaleTemporary } from './temporary.js';

export interface FsckOptions {
  /** Re-hash only this many blobs, chosen at random; all when absent. */
  sample?: number;
  repair: boolean;
  /** How long a repair waits between telling API replicas and deleting (default CACHE_EPOCH_SETTLE_MS). */
  settleMs?: number;
  /** Temporary items last written longer ago than this are reported (default DEFAULT_GRACE_SECONDS). */
  graceSeconds?: number;
  now?: Date;
}

export interface FsckReport {
  blobs: number;
  hashed: number;
  corruptBlobs: Digest[];
  brokenManifests: Array<{ key: string; missing: Digest[]; corrupt: Digest[] }>;
  brokenLayerRecords: string[];
  /** Temporary items older than the grace period: what writers that died left behind. Oldest first. */
  staleTemporary: TemporaryItem[];
  staleTemporaryBytes: number;
  /** How long ago the oldest of them was last written, in seconds; undefined when there is none. */
  oldestTemporaryAgeSeconds: number | undefined;
  repaired: { blobs: number; manifestRecords: number; layerRecords: number };
  /** Stale temporary items a repair removed, and their bytes. */
  repairedTemporary: { items: number; bytes: number };
  ok: boolean;
}

async function hashOf(storage: Storage, digest: Digest): Promise<string | undefined> {
  const stream = await storage.readBlob(digest);
  if (!stream) return undefined;
  const hash = createHash('sha256');
  for await (const chunk of stream) hash.update(chunk as Uint8Array);
  return `sha256:${hash.digest('hex')}`;
}

function sampleOf<T>(items: T[], n: number | undefined): T[] {
  if (n === undefined || n >= items.length) return items;
  const pool = [...items];
  for (let i = 0; i < n; i++) {
    const j = i + randomInt(pool.length - i);
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, n);
}

export async function checkStorage(storage: Storage, options: FsckOptions): Promise<FsckReport> {
  const all: Digest[] = [];
  for await (const blob of storage.listBlobs()) all.push(blob.digest);
  const present = new Set<string>(all);
  const toHash = sampleOf(all, options.sample);
  const corrupt = new Set<string>();
  for (const digest of toHash) {
    if ((await hashOf(storage, digest)) !== digest) corrupt.add(digest);
  }

  const brokenManifests: FsckReport['brokenManifests'] = [];
  for await (const key of storage.listRecords(MANIFEST_RECORD_PREFIX)) {
    const record = ManifestRecordSchema.safeParse(await storage.getRecord(key));
    if (!record.success) {
      brokenManifests.push({ key, missing: [], corrupt: [] });
      continue;
    }
    const named = blobsOfRecord(record.data);
    const missing = named.filter((d) => !present.has(d));
    const bad = named.filter((d) => corrupt.has(d));
    if (missing.length > 0 || bad.length > 0) brokenManifests.push({ key, missing, corrupt: bad });
  }

  const brokenLayerRecords: string[] = [];
  for await (const key of storage.listRecords(LAYER_RECORD_PREFIX)) {
    const record = LayerRecordSchema.safeParse(await storage.getRecord(key));
    if (!record.success || !present.has(record.data.digest) || corrupt.has(record.data.digest)) brokenLayerRecords.push(key);
  }

  const now = options.now ?? new Date();
  const cutoff = graceCutoff(now, options.graceSeconds ?? DEFAULT_GRACE_SECONDS);
  const stale = await findStaleTemporary(storage, cutoff);
  const oldest = stale.items[0];

  const repaired = { blobs: 0, manifestRecords: 0, layerRecords: 0 };
  const repairedTemporary = { items: 0, bytes: 0 };
  if (options.repair) {
    // Nothing in the temporary area was ever served: no replica needs telling before it goes.
    const removed = await removeStaleTemporary(storage, stale.items, cutoff);
    repairedTemporary.items = removed.length;
    repairedTemporary.bytes = removed.reduce((sum, item) => sum + item.size, 0);
    // A corrupt blob may sit in an API replica's memory as well: tell them first (cache-epoch.ts).
    if (corrupt.size + brokenManifests.length + brokenLayerRecords.length > 0) await announceDeletion(storage, options.settleMs);
    for (const digest of corrupt) if (await storage.deleteBlob(digest as Digest)) repaired.blobs += 1;
    for (const { key } of brokenManifests) if (await storage.deleteRecord(key)) repaired.manifestRecords += 1;
    for (const key of brokenLayerRecords) if (await storage.deleteRecord(key)) repaired.layerRecords += 1;
  }

  return {
    blobs: all.length,
    hashed: toHash.length,
    corruptBlobs: [...corrupt] as Digest[],
    brokenManifests,
    brokenLayerRecords,
    staleTemporary: stale.items,
    staleTemporaryBytes: stale.bytes,
    oldestTemporaryAgeSeconds: oldest === undefined ? undefined : Math.max(0, Math.floor((now.getTime() - oldest.modified.getTime()) / 1000)),
    repaired,
    repairedTemporary,
    ok: corrupt.size === 0 && brokenManifests.length === 0 && brokenLayerRecords.length === 0 && stale.items.length === 0,
  };
}
