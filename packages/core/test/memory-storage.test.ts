// The in-memory backend: the shared conformance suite, plus what is particular to holding
// everything in one process's memory (copies in and out, separate instances, listing order).
// Hermetic: no disk, no network, no child processes.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryStorage, sha256Digest } from '../src/index.js';
import { chunksOf as chunks, collect, readAll } from '../../../test/helpers/streams.js';
import { storageConformance } from './storage-conformance.js';

const MiB = 1024 * 1024;

// This backend holds every blob in memory by design, so the large write is kept small: the RSS bound
// then only checks that a blob is held about once, not several times over.
storageConformance(
  'MemoryStorage (conformance)',
  async () => ({ storage: new MemoryStorage(), cleanup: async () => undefined }),
  { largeBlobBytes: 8 * MiB, maxRssGrowthBytes: 64 * MiB },
);

describe('MemoryStorage (memory specifics)', () => {
  it('shares nothing between two instances', async () => {
    const a = new MemoryStorage();
    const b = new MemoryStorage();
    const { digest } = await a.writeBlob(chunks('only in a'));
    await a.putRecord('manifests/x', { in: 'a' });
    assert.equal(await b.statBlob(digest), undefined);
    assert.equal(await b.getRecord('manifests/x'), undefined);
    assert.deepEqual(await collect(b.listBlobs()), []);
    assert.deepEqual(await collect(b.listRecords('')), []);
    assert.equal((await b.writeBlob(chunks('only in a'))).created, true);
  });

  it('copies written bytes, so the source may reuse its buffer', async () => {
    const storage = new MemoryStorage();
    const buffer = Buffer.from('first');
    const written = await storage.writeBlob(
      (async function* () {
        yield buffer;
        buffer.write('again');
        yield buffer;
        buffer.fill(0);
      })(),
    );
    assert.equal(written.digest, sha256Digest('firstagain'));
    assert.equal((await readAll(await storage.readBlob(written.digest))).toString(), 'firstagain');
  });

  it('hands out copies, so a reader cannot change the stored bytes', async () => {
    const storage = new MemoryStorage();
    const { digest } = await storage.writeBlob(chunks('do not touch'));
    const stream = await storage.readBlob(digest);
    assert.ok(stream);
    for await (const chunk of stream) (chunk as Buffer).fill(0x21);
    assert.equal((await readAll(await storage.readBlob(digest))).toString(), 'do not touch');
  });

  it('returns a fresh parse from getRecord, never the stored or the caller’s object', async () => {
    const storage = new MemoryStorage();
    const value = { list: [1, 2] };
    await storage.putRecord('layers/x', value);
    value.list.push(3);
    const first = (await storage.getRecord('layers/x')) as { list: number[] };
    assert.deepEqual(first, { list: [1, 2] });
    first.list.push(4);
    assert.deepEqual(await storage.getRecord('layers/x'), { list: [1, 2] });
  });

  it('refreshes the modification time when an existing blob is written again', async () => {
    const storage = new MemoryStorage();
    await storage.writeBlob(chunks('old blob'));
    const [before] = await collect(storage.listBlobs());
    await new Promise((resolve) => setTimeout(resolve, 5));
    assert.equal((await storage.writeBlob(chunks('old blob'))).created, false);
    const [after] = await collect(storage.listBlobs());
    assert.ok(before && after && after.modified > before.modified);
  });

  it('lets exactly one of several concurrent writers report created', async () => {
    const storage = new MemoryStorage();
    const results = await Promise.all(Array.from({ length: 8 }, () => storage.writeBlob(chunks('race', 'd'))));
    assert.equal(results.filter((result) => result.created).length, 1);
  });

  it('keeps serving a stream that was opened before the blob was deleted', async () => {
    const storage = new MemoryStorage();
    const { digest } = await storage.writeBlob(chunks('still readable'));
    const stream = await storage.readBlob(digest, { start: 6, end: 13 });
    assert.equal(await storage.deleteBlob(digest), true);
    assert.ok(stream);
    assert.equal((await readAll(stream)).toString(), 'readable');
  });

  it('reads a blob larger than one read chunk, whole and by range', async () => {
    const storage = new MemoryStorage();
    const bytes = Buffer.alloc(200_000);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) % 251;
    const { digest } = await storage.writeBlob(chunks(bytes));
    assert.deepEqual(await readAll(await storage.readBlob(digest)), bytes);
    const stream = await storage.readBlob(digest, { start: 65_530, end: 131_080 });
    assert.ok(stream);
    assert.deepEqual(await readAll(stream), bytes.subarray(65_530, 131_081));
  });

  it('lists records in the order the filesystem backend does: depth first, names sorted', async () => {
    const storage = new MemoryStorage();
    for (const key of ['z', 'a.c', 'a/b', 'A', 'a-b', 'a/b.c/d', 'a0', 'a/a/z', 'a/b-c']) await storage.putRecord(key, 1);
    // Not plain key order ('a-b' < 'a.c' < 'a/b'): the directory `a` sorts before the file `a-b.json`.
    assert.deepEqual(await collect(storage.listRecords('')), ['A', 'a/a/z', 'a/b-c', 'a/b.c/d', 'a/b', 'a-b', 'a.c', 'a0', 'z']);
    assert.deepEqual(await collect(storage.listRecords('a/b')), ['a/b-c', 'a/b.c/d', 'a/b']);
    assert.deepEqual(await collect(storage.listRecords('a')), ['a/a/z', 'a/b-c', 'a/b.c/d', 'a/b', 'a-b', 'a.c', 'a0']);
  });

  it('refuses record keys under the locations it uses itself', async () => {
    const storage = new MemoryStorage();
    for (const key of ['tmp/x', 'blobs/sha256/abc', 'blobs', 'tmp', 'a.json/b']) {
      await assert.rejects(storage.putRecord(key, 1), /invalid record key/);
      await assert.rejects(storage.getRecord(key), /invalid record key/);
    }
  });
});
