// Manifest records by image key, kept in the API's memory so that a warm pull by tag reads no file
// and parses no JSON. Whether a record may answer a pull is still decided per request from the
// record itself (isFresh: for ever on a pinned revision, NIXERY_MANIFEST_TTL on a moving one), so a
// cached record never answers longer than a stored one would. What a cache could miss is another
// replica's work: a record rebuilt or deleted elsewhere. So storage is read again whenever the cached
// record is stale for the request (a rebuild elsewhere may have replaced it) and at the latest
// `revalidateMs` after the last read (gc or a rebuild may have replaced a fresh one). Missing
// records are not remembered: the next pull looks again. Memory is bounded by entry count.

import { LRUCache } from 'lru-cache';
import { readManifestRecord, type ManifestRecord, type Storage } from '@nixyard/core';
import { DEFAULT_REVALIDATE_MS } from './content-cache.js';

export interface RecordCacheOptions {
  /** How many records are kept (default 2,000; a record is a few kilobytes). */
  maxEntries?: number;
  revalidateMs?: number;
  /** The clock, in milliseconds (default Date.now). */
  now?: () => number;
}

interface Entry {
  record: ManifestRecord;
  readAt: number;
}

export class RecordCache {
  private readonly entries: LRUCache<string, Entry>;
  private readonly revalidateMs: number;
  private readonly now: () => number;

  constructor(
    private readonly storage: Pick<Storage, 'getRecord'>,
    options: RecordCacheOptions = {},
  ) {
    this.entries = new LRUCache({ max: options.maxEntries ?? 2_000 });
    this.revalidateMs = options.revalidateMs ?? DEFAULT_REVALIDATE_MS;
    this.now = options.now ?? Date.now;
  }

  /**
   * The record of `imageKey` that `usable` accepts, from memory when it was read within
   * `revalidateMs`; otherwise read from storage (and kept). Undefined when storage has none, or
   * only one that `usable` refuses.
   */
  async get(imageKey: string, usable: (record: ManifestRecord) => boolean = () => true): Promise<ManifestRecord | undefined> {
    const cached = this.entries.get(imageKey);
    if (cached && this.now() - cached.readAt < this.revalidateMs && usable(cached.record)) return cached.record;
    const record = await this.read(imageKey);
    return record && usable(record) ? record : undefined;
  }

  /** Forgets everything (storage announced deletions: cache-epoch). */
  clear(): void {
    this.entries.clear();
  }

  /** Reads the stored record (after a build wrote it), keeping it for the next pulls. */
  async read(imageKey: string): Promise<ManifestRecord | undefined> {
    const readAt = this.now();
    const record = await readManifestRecord(this.storage, imageKey);
    if (record) this.entries.set(imageKey, { record, readAt });
    else this.entries.delete(imageKey);
    return record;
  }
}
