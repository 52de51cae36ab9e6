import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryStorage, isFresh, manifestRecordKey, type RecordKey } from '@nixyard/core';
import { RecordCache } from '../src/record-cache.js';
import { fakeClock } from './fake-clock.js';
import { jobFor, publishImage } from './registry-fixture.js';

class CountingStorage extends MemoryStorage {
  gets = 0;
  override async getRecord(key: RecordKey) {
    this.gets++;
    return super.getRecord(key);
  }
}

describe('RecordCache', () => {
  it('reads a record once, then answers from memory until it must revalidate', async () => {
    const storage = new CountingStorage();
    const time = fakeClock();
    const cache = new RecordCache(storage, { revalidateMs: 30_000, now: time.now });
    const { job, record } = await publishImage(storage, jobFor('hello'));

    assert.deepEqual(await cache.get(job.imageKey), record);
    assert.deepEqual(await cache.get(job.imageKey), record);
    assert.equal(storage.gets, 1);
    time.advance(30_000);
    assert.deepEqual(await cache.get(job.imageKey), record);
    assert.equal(storage.gets, 2);
  });

  it('does not remember a missing record', async () => {
    const storage = new CountingStorage();
    const cache = new RecordCache(storage);
    const job = jobFor('hello');
    assert.equal(await cache.get(job.imageKey), undefined);
    const { record } = await publishImage(storage, job);
    assert.deepEqual(await cache.get(job.imageKey), record);
  });

  it('reads storage again when the cached record is stale for the request, and finds a newer one', async () => {
    const storage = new CountingStorage();
    const time = fakeClock();
    const cache = new RecordCache(storage, { revalidateMs: 60 * 60_000, now: time.now });
    const job = jobFor('hello');
    const old = await publishImage(storage, job, new Date('2026-12-01T00:00:00Z'));
    assert.deepEqual(await cache.get(job.imageKey), old.record);

    // Another replica rebuilds it; a request that wants a record newer than the old one must see it.
    const rebuilt = await publishImage(storage, job, new Date('2026-12-01T00:10:00Z'));
    const freshAfter = new Date('2026-12-01T00:05:00Z');
    assert.deepEqual(await cache.get(job.imageKey, (r) => isFresh(r, freshAfter)), rebuilt.record);
    // And without one, nothing: the caller builds.
    assert.equal(await cache.get(job.imageKey, (r) => isFresh(r, new Date('2026-12-01T01:00:00Z'))), undefined);
  });

  it('forgets a record deleted from storage once it revalidates', async () => {
    const storage = new CountingStorage();
    const time = fakeClock();
    const cache = new RecordCache(storage, { revalidateMs: 1_000, now: time.now });
    const { job } = await publishImage(storage, jobFor('hello'));
    assert.ok(await cache.get(job.imageKey));
    await storage.deleteRecord(manifestRecordKey(job.imageKey));
    time.advance(1_000);
    assert.equal(await cache.get(job.imageKey), undefined);
  });

  it('keeps at most maxEntries records', async () => {
    const storage = new CountingStorage();
    const cache = new RecordCache(storage, { maxEntries: 2 });
    const jobs = await Promise.all(['hello', 'git', 'jq'].map(async (name) => (await publishImage(storage, jobFor(name))).job));
    for (const job of jobs) await cache.get(job.imageKey);
    const before = storage.gets;
    await cache.get(jobs[2]!.imageKey);
    await cache.get(jobs[1]!.imageKey);
    assert.equal(storage.gets, before, 'the two most recent are in memory');
    await cache.get(jobs[0]!.imageKey);
    assert.equal(storage.gets, before + 1, 'the oldest was evicted');
  });
});
