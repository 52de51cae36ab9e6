import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import { MemoryStorage, sha256Digest, type Digest } from '@nixyard/core';
import { ContentCache } from '../src/content-cache.js';
import { fakeClock } from './fake-clock.js';

/** MemoryStorage that counts the calls the cache is meant to save. */
class CountingStorage extends MemoryStorage {
  stats = 0;
  reads = 0;
  override async statBlob(digest: Digest) {
    this.stats++;
    return super.statBlob(digest);
  }
  override async readBlob(digest: Digest, range?: { start: number; end: number }) {
    this.reads++;
    return super.readBlob(digest, range);
  }
}

async function stored(storage: MemoryStorage, size: number): Promise<{ digest: Digest; bytes: Buffer }> {
  const bytes = randomBytes(size);
  const digest = sha256Digest(bytes);
  await storage.writeBlob(Readable.from([bytes]), digest);
  return { digest, bytes };
}

describe('ContentCache', () => {
  it('reads a document once, then answers from memory until it must revalidate', async () => {
    const storage = new CountingStorage();
    const time = fakeClock();
    const cache = new ContentCache(storage, { maxBytes: 1024 * 1024, revalidateMs: 30_000, now: time.now });
    const { digest, bytes } = await stored(storage, 1500);

    assert.deepEqual(await cache.document(digest, 4096), bytes);
    assert.deepEqual([storage.stats, storage.reads], [1, 1]);
    for (let i = 0; i < 5; i++) assert.deepEqual(await cache.document(digest, 4096), bytes);
    assert.deepEqual([storage.stats, storage.reads], [1, 1], 'warm: no storage calls');

    time.advance(30_000);
    assert.deepEqual(await cache.document(digest, 4096), bytes);
    assert.deepEqual([storage.stats, storage.reads], [2, 1], 'revalidated with a stat, bytes kept');
  });

  it('forgets a blob deleted from storage once it revalidates', async () => {
    const storage = new CountingStorage();
    const time = fakeClock();
    const cache = new ContentCache(storage, { maxBytes: 1024 * 1024, revalidateMs: 10_000, now: time.now });
    const { digest } = await stored(storage, 100);
    assert.ok(await cache.document(digest, 4096));
    await storage.deleteBlob(digest);
    assert.ok(await cache.document(digest, 4096), 'within the window the copy still answers');
    time.advance(10_000);
    assert.equal(await cache.document(digest, 4096), undefined);
    assert.equal(cache.size, 0);
  });

  it('answers undefined for a missing document or one larger than asked for', async () => {
    const storage = new CountingStorage();
    const cache = new ContentCache(storage, { maxBytes: 1024 * 1024 });
    const { digest } = await stored(storage, 5000);
    assert.equal(await cache.document(`sha256:${'0'.repeat(64)}`, 4096), undefined);
    assert.equal(await cache.document(digest, 4096), undefined);
    assert.equal(storage.reads, 0, 'too large: never read');
  });

  it('still reads documents whole with caching off, without keeping them', async () => {
    const storage = new CountingStorage();
    const cache = new ContentCache(storage, { maxBytes: 0 });
    const { digest, bytes } = await stored(storage, 300);
    assert.deepEqual(await cache.document(digest, 4096), bytes);
    assert.deepEqual(await cache.document(digest, 4096), bytes);
    assert.equal(storage.reads, 2);
    assert.deepEqual(await cache.blob(digest), { kind: 'storage', size: 300 });
  });

  it('takes a layer into memory on its second request, and only if it fits', async () => {
    const storage = new CountingStorage();
    const cache = new ContentCache(storage, { maxBytes: 4096, maxEntryBytes: 2048 });
    const small = await stored(storage, 2000);
    const large = await stored(storage, 3000);

    assert.deepEqual(await cache.blob(small.digest), { kind: 'storage', size: 2000 });
    assert.deepEqual(await cache.blob(small.digest), { kind: 'memory', bytes: small.bytes });
    assert.equal(storage.reads, 1);
    assert.deepEqual(await cache.blob(large.digest), { kind: 'storage', size: 3000 });
    assert.deepEqual(await cache.blob(large.digest), { kind: 'storage', size: 3000 });
    assert.equal(storage.reads, 1, 'the large one is never read whole');
    assert.equal(await cache.blob(`sha256:${'1'.repeat(64)}`), undefined);
  });

  it('reads a blob once for many requests at once, and stays within its byte budget', async () => {
    const storage = new CountingStorage();
    const cache = new ContentCache(storage, { maxBytes: 5000, maxEntryBytes: 2000 });
    const blobs = await Promise.all([1, 2, 3, 4].map(() => stored(storage, 1500)));
    await cache.blob(blobs[0]!.digest);
    const answers = await Promise.all(Array.from({ length: 20 }, () => cache.blob(blobs[0]!.digest)));
    assert.ok(answers.every((a) => a?.kind === 'memory' && a.bytes.equals(blobs[0]!.bytes)));
    assert.equal(storage.reads, 1);

    for (const blob of blobs) {
      await cache.blob(blob.digest);
      await cache.blob(blob.digest);
    }
    assert.ok(cache.size <= 5000, `holds ${cache.size} bytes`);
    assert.equal(cache.size, 4500, 'the three most recent');
  });
});
