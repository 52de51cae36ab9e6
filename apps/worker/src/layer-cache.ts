// Which layers are already packed, by layer key (docs/design.md §2). Records live in storage, the source
// of truth that every replica shares, and in a Redis hash in front of it, so a warm build asks
// Redis once per layer instead of reading a file or an object. A hit is trusted only while its
// blob is still in storage (garbage collection may have removed it).

import { LAYER_CACHE_HASH, LayerRecordSchema, layerRecordKey, type LayerRecord, type Storage } from '@nixyard/core';
import type { Redis } from 'ioredis';

export class LayerCache {
  constructor(
    private readonly storage: Storage,
    private readonly redis?: Redis,
  ) {}

  async get(layerKey: string): Promise<LayerRecord | undefined> {
    let record = parse(this.redis ? await this.redis.hget(LAYER_CACHE_HASH, layerKey) : null);
    if (!record) {
      record = LayerRecordSchema.safeParse(await this.storage.getRecord(layerRecordKey(layerKey))).data;
      if (record) await this.redis?.hset(LAYER_CACHE_HASH, layerKey, JSON.stringify(record));
    }
    if (!record || !(await this.storage.statBlob(record.digest))) return undefined;
    return record;
  }

  async put(record: LayerRecord): Promise<void> {
    await this.storage.putRecord(layerRecordKey(record.layerKey), record);
    await this.redis?.hset(LAYER_CACHE_HASH, record.layerKey, JSON.stringify(record));
  }
}

function parse(json: string | null): LayerRecord | undefined {
  if (json === null) return undefined;
  try {
    return LayerRecordSchema.safeParse(JSON.parse(json)).data;
  } catch {
    return undefined;
  }
}
