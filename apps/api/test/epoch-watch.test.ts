import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CACHE_EPOCH_KEY, MemoryStorage, announceDeletion, type RecordKey } from '@nixyard/core';
import { EpochWatch } from '../src/epoch-watch.js';
import { fakeClock } from './fake-clock.js';

class CountingStorage extends MemoryStorage {
  gets = 0;
  failing = false;
  override async getRecord(key: RecordKey) {
    this.gets++;
    if (this.failing) throw new Error('storage is away');
    return super.getRecord(key);
  }
}

function setup() {
  const storage = new CountingStorage();
  const clock = fakeClock();
  let changes = 0;
  const watch = new EpochWatch(storage, () => void changes++, { checkMs: 1000, now: clock.now });
  return { storage, watch, advance: clock.advance, changes: () => changes };
}

describe('EpochWatch', () => {
  it('looks at most once per interval, one read shared by concurrent requests', async () => {
    const { storage, watch, advance } = setup();
    await Promise.all([watch.check(), watch.check(), watch.check()]);
    assert.equal(storage.gets, 1);
    assert.equal(watch.check(), undefined, 'fresh: nothing to await');
    advance(999);
    assert.equal(watch.check(), undefined);
    advance(1);
    await watch.check();
    assert.equal(storage.gets, 2);
  });

  it('drops the caches when the epoch moves, and only then', async () => {
    const { storage, watch, advance, changes } = setup();
    await watch.check();
    const first = changes();
    advance(1000);
    await watch.check();
    assert.equal(changes(), first, 'same epoch: caches kept');
    await announceDeletion(storage, 0);
    advance(1000);
    await watch.check();
    assert.equal(changes(), first + 1);
    assert.ok(await storage.getRecord(CACHE_EPOCH_KEY));
  });

  it('a failed look changes nothing and is tried again on the next request', async () => {
    const { storage, watch, changes } = setup();
    storage.failing = true;
    await watch.check();
    assert.equal(changes(), 0);
    storage.failing = false;
    await announceDeletion(storage, 0);
    await watch.check();
    assert.equal(storage.gets, 2, 'no interval after a failure');
    assert.equal(changes(), 1, 'what was cached while nothing was known goes');
  });
});
