import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, test } from 'node:test';
import type { Redis } from 'ioredis';
import { FilesystemStorage, LAYER_CACHE_HASH, OCI_IMAGE_LAYER_GZIP, layerKey, type LayerRecord } from '@nixyard/core';
import { LayerCache } from '../../src/layer-cache.js';
import { startTestRedis, type TestRedis } from '../../../../test/helpers/redis.js';
import { tempDir } from '../../../../test/helpers/temp-dir.js';

const dir = tempDir('layer-cache');
let server: TestRedis;
let redis: Redis;
before(async () => {
  server = await startTestRedis();
  redis = server.client();
});
after(async () => {
  await server?.stop();
  dir.cleanup();
});

async function storedLayer(storage: FilesystemStorage, paths: string[]): Promise<LayerRecord> {
  const blob = await storage.writeBlob(Readable.from([Buffer.from(`layer of ${paths.join(',')}`)]));
  return { layerKey: layerKey(paths), digest: blob.digest, diffId: blob.digest, size: blob.size, mediaType: OCI_IMAGE_LAYER_GZIP, storePaths: paths, rating: 1 };
}

test('a put layer is found through Redis, and through storage alone by another replica', async () => {
  const storage = new FilesystemStorage(join(dir.path, 'shared'));
  const record = await storedLayer(storage, ['/nix/store/aaaa-a']);
  await new LayerCache(storage, redis).put(record);
  assert.deepEqual(await new LayerCache(storage, redis).get(record.layerKey), record);
  assert.deepEqual(await new LayerCache(storage).get(record.layerKey), record, 'storage is the source of truth');
});

test('a record found only in storage is copied into Redis', async () => {
  const storage = new FilesystemStorage(join(dir.path, 'backfill'));
  const record = await storedLayer(storage, ['/nix/store/bbbb-b']);
  await new LayerCache(storage).put(record); // written by a replica without Redis
  assert.equal(await redis.hget(LAYER_CACHE_HASH, record.layerKey), null);
  await new LayerCache(storage, redis).get(record.layerKey);
  assert.deepEqual(JSON.parse((await redis.hget(LAYER_CACHE_HASH, record.layerKey))!), record);
});

test('a record whose blob is gone is a miss', async () => {
  const storage = new FilesystemStorage(join(dir.path, 'gone'));
  const record = await storedLayer(storage, ['/nix/store/cccc-c']);
  const cache = new LayerCache(storage, redis);
  await cache.put(record);
  await storage.deleteBlob(record.digest);
  assert.equal(await cache.get(record.layerKey), undefined);
});

test('garbage in Redis is ignored, not trusted', async () => {
  const storage = new FilesystemStorage(join(dir.path, 'garbage'));
  const key = layerKey(['/nix/store/dddd-d']);
  await redis.hset(LAYER_CACHE_HASH, key, '{not json');
  assert.equal(await new LayerCache(storage, redis).get(key), undefined);
});
