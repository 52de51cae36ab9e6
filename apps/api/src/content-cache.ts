// Content by digest, kept in the API's memory so that a warm pull costs memory lookups instead of
// file operations. Content-addressed bytes never change, so a cached copy is correct on every
// replica for as long as the blob exists; the only thing that can go out of date is whether it
// still exists (gc deletes unreferenced blobs), so that is checked against storage again once an
// entry is older than `revalidateMs`. Memory is bounded by bytes (least recently used goes first).
//
// Manifests and configs are cached as soon as they are asked for. Layers are cached only once they
// are asked for a second time and fit the entry limit: a CI fleet pulling the same image then
// reads each layer from disk once, and a one-off pull of something large never evicts the hot set.
// Node has no sendfile, so a blob served from one shared Buffer is also the cheapest way to send
// it: one copy into the socket, no per-stream read buffers however many clients share it.

import { LRUCache } from 'lru-cache';
import type { Digest, Storage } from '@nixyard/core';

export interface ContentCacheOptions {
  /** Memory for cached content, in bytes; 0 disables caching. */
  maxBytes: number;
  /** The largest single entry (default: half of maxBytes). */
  maxEntryBytes?: number;
  /** How long a cached entry is served before storage is asked whether it still exists. */
  revalidateMs?: number;
  /** The clock, in milliseconds (default Date.now). */
  now?: () => number;
}

/** How a blob is served: from its bytes in memory, or streamed from storage. */
export type ContentLookup = { kind: 'memory'; bytes: Buffer } | { kind: 'storage'; size: number };

/** When to take a blob into memory: at once (manifests), or once asked for again (layers). */
type Admission = 'first' | 'repeat';

export const DEFAULT_REVALIDATE_MS = 30_000;
/** How many digests asked for once are remembered for the repeat admission. */
const SEEN_DIGESTS = 10_000;

interface Entry {
  bytes: Buffer;
  checkedAt: number;
}

export class ContentCache {
  private readonly entries: LRUCache<Digest, Entry> | undefined;
  private readonly seen = new LRUCache<Digest, true>({ max: SEEN_DIGESTS });
  private readonly loads = new Map<Digest, Promise<Buffer>>();
  private readonly maxEntryBytes: number;
  private readonly revalidateMs: number;
  private readonly now: () => number;

  constructor(
    private readonly storage: Pick<Storage, 'statBlob' | 'readBlob'>,
    options: ContentCacheOptions,
  ) {
    this.maxEntryBytes = Math.min(options.maxEntryBytes ?? Math.floor(options.maxBytes / 2), options.maxBytes);
    this.revalidateMs = options.revalidateMs ?? DEFAULT_REVALIDATE_MS;
    this.now = options.now ?? Date.now;
    this.entries =
      options.maxBytes > 0
        ? new LRUCache<Digest, Entry>({ maxSize: options.maxBytes, maxEntrySize: this.maxEntryBytes, sizeCalculation: (e) => Math.max(e.bytes.length, 1) })
        : undefined;
  }

  /** Forgets everything (storage announced deletions: cache-epoch). */
  clear(): void {
    this.entries?.clear();
    this.seen.clear();
  }

  /** Bytes held now, for metrics. */
  get size(): number {
    return this.entries?.calculatedSize ?? 0;
  }

  /**
   * The whole of a small document (a manifest, an index), or undefined when storage has no such
   * blob or it is larger than `maxBytes`. Taken into memory at once.
   */
  async document(digest: Digest, maxBytes: number): Promise<Buffer | undefined> {
    const found = await this.find(digest, 'first', maxBytes);
    if (!found || found.kind === 'memory') return found?.bytes;
    return found.size <= maxBytes ? this.load(digest, found.size) : undefined;
  }

  /** Where to serve a layer from, or undefined when storage has no such blob. */
  blob(digest: Digest): Promise<ContentLookup | undefined> {
    return this.find(digest, 'repeat', Number.MAX_SAFE_INTEGER);
  }

  private async find(digest: Digest, admission: Admission, maxBytes: number): Promise<ContentLookup | undefined> {
    const cached = this.entries?.get(digest);
    const now = this.now();
    if (cached && now - cached.checkedAt < this.revalidateMs) return { kind: 'memory', bytes: cached.bytes };

    const stat = await this.storage.statBlob(digest);
    if (!stat) {
      this.entries?.delete(digest);
      return undefined;
    }
    if (cached && cached.bytes.length === stat.size) {
      cached.checkedAt = now;
      return { kind: 'memory', bytes: cached.bytes };
    }
    if (!this.entries || stat.size > this.maxEntryBytes || stat.size > maxBytes) return { kind: 'storage', size: stat.size };
    if (admission === 'repeat' && !this.seen.has(digest)) {
      this.seen.set(digest, true);
      return { kind: 'storage', size: stat.size };
    }
    const bytes = await this.load(digest, stat.size);
    if (!bytes) return undefined;
    this.entries.set(digest, { bytes, checkedAt: now });
    this.seen.delete(digest);
    return { kind: 'memory', bytes };
  }

  /** One read per digest however many requests ask at once; undefined if the blob went away. */
  private async load(digest: Digest, size: number): Promise<Buffer | undefined> {
    let pending = this.loads.get(digest);
    if (!pending) {
      pending = readWhole(this.storage, digest, size).finally(() => this.loads.delete(digest));
      this.loads.set(digest, pending);
    }
    try {
      return await pending;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || err instanceof BlobGoneError) return undefined;
      throw err;
    }
  }
}

class BlobGoneError extends Error {}

/** The blob's bytes in one buffer of exactly `size` bytes (no concatenation copy). */
async function readWhole(storage: Pick<Storage, 'readBlob'>, digest: Digest, size: number): Promise<Buffer> {
  const stream = await storage.readBlob(digest);
  if (!stream) throw new BlobGoneError(digest);
  const bytes = Buffer.allocUnsafe(size);
  let offset = 0;
  for await (const chunk of stream) {
    const buffer = chunk as Buffer;
    if (offset + buffer.length > size) throw new Error(`blob ${digest} is larger than its stat said`);
    buffer.copy(bytes, offset);
    offset += buffer.length;
  }
  if (offset !== size) throw new Error(`blob ${digest} is smaller than its stat said`);
  return bytes;
}
