// The storage conformance suite (docs/design.md §5): what every Storage backend must do, written once.
// Each backend's test file calls storageConformance() with a factory for a fresh, empty store;
// the filesystem backend runs it on a temp dir, the S3 backend against a local S3 server. A backend
// is done when this passes unchanged. (Not named *.test.ts: it registers no tests on its own.)
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { describe, it } from 'node:test';
import {
  DigestMismatchError,
  RangeNotSatisfiableError,
  sha256Digest,
  type Digest,
  type ListedBlob,
  type Storage,
  type TemporaryItem,
} from '../src/index.js';
import { seededBytes } from '../../../test/helpers/random.js';
import { collect, readAll } from '../../../test/helpers/streams.js';

export interface StorageUnderTest {
  storage: Storage;
  /** Called after each case, also when it failed; may assert on the backend's leftovers. */
  cleanup(): Promise<void>;
}

export interface ConformanceOptions {
  /** Size of the large streaming write (default 100 MiB). */
  largeBlobBytes?: number;
  /**
   * Most the process's RSS may grow during the large write and read (default 80 MiB). What is
   * measured: the peak RSS, sampled every 16 chunks, over the RSS just before the write. The
   * filesystem backend grows by 33-35 MiB for the default 100 MiB blob (chunks and stream buffers
   * waiting for the GC; the same with both cores busy), while holding the blob would grow it by
   * 100 MiB on top of that: 80 MiB is ~45 MiB clear of the one and ~55 MiB clear of the other.
   */
  maxRssGrowthBytes?: number;
}

const MiB = 1024 * 1024;

/** `bytes` as an async source of chunks of at most `size` bytes, yielding to the event loop between them. */
async function* chunked(bytes: Uint8Array, size = 7): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < bytes.length; offset += size) {
    await new Promise((resolve) => setImmediate(resolve));
    yield bytes.subarray(offset, offset + size);
  }
}

async function listedDigests(storage: Storage): Promise<Digest[]> {
  return (await collect(storage.listBlobs())).map((blob) => blob.digest).sort();
}

const sortStrings = (values: string[]): string[] => [...values].sort();

/** The temporary area's items once one holds bytes (a write under way has stored some); fails after `timeoutMs`. */
async function temporaryWithBytes(storage: Storage, timeoutMs = 30_000): Promise<TemporaryItem[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const items = await collect(storage.listTemporary());
    if (items.some((item) => item.size > 0)) return items;
    if (Date.now() > deadline) assert.fail(`no temporary item holding bytes within ${timeoutMs} ms: ${JSON.stringify(items)}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** What removeTemporary takes, from a listed item. */
const refOf = (item: TemporaryItem) => (item.uploadId === undefined ? { location: item.location } : { location: item.location, uploadId: item.uploadId });

export function storageConformance(
  name: string,
  makeStorage: () => Promise<StorageUnderTest>,
  options: ConformanceOptions = {},
): void {
  const largeBlobBytes = options.largeBlobBytes ?? 100 * MiB;
  const maxRssGrowthBytes = options.maxRssGrowthBytes ?? 80 * MiB;

  /** Runs `body` against a fresh store and always cleans up; the body's failure wins over cleanup's. */
  const withStorage = (body: (storage: Storage) => Promise<void>) => async () => {
    const { storage, cleanup } = await makeStorage();
    let failed = false;
    try {
      await body(storage);
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      if (failed) await cleanup().catch(() => undefined);
      else await cleanup();
    }
  };

  const hello = Buffer.from('hello, nixyard! 0123456789abcdefghijklmnopqrstuvwxyz');
  const helloDigest = sha256Digest(hello);
  const other = Buffer.from('something else entirely');

  describe(name, () => {
    describe('blobs', () => {
      it('writes a blob and reads it back whole, with stat', withStorage(async (storage) => {
        const written = await storage.writeBlob(chunked(hello));
        assert.deepEqual(written, { digest: helloDigest, size: hello.length, created: true });
        assert.deepEqual(await storage.statBlob(helloDigest), { digest: helloDigest, size: hello.length });
        assert.deepEqual(await readAll(await storage.readBlob(helloDigest)), hello);
      }));

      it('accepts the expected digest when the bytes match it', withStorage(async (storage) => {
        const written = await storage.writeBlob(chunked(hello), helloDigest);
        assert.equal(written.digest, helloDigest);
        assert.deepEqual(await readAll(await storage.readBlob(helloDigest)), hello);
      }));

      it('writes from a Node Readable and from a single chunk', withStorage(async (storage) => {
        const fromReadable = await storage.writeBlob(Readable.from([hello.subarray(0, 10), hello.subarray(10)]));
        assert.equal(fromReadable.digest, helloDigest);
        const single = await storage.writeBlob((async function* () { yield other; })());
        assert.equal(single.digest, sha256Digest(other));
        assert.deepEqual(await readAll(await storage.readBlob(single.digest)), other);
      }));

      it('stores the empty blob', withStorage(async (storage) => {
        const empty = await storage.writeBlob(chunked(Buffer.alloc(0)));
        assert.deepEqual(empty, { digest: sha256Digest(''), size: 0, created: true });
        assert.deepEqual(await storage.statBlob(empty.digest), { digest: empty.digest, size: 0 });
        assert.equal((await readAll(await storage.readBlob(empty.digest))).length, 0);
      }));

      it('reads inclusive byte ranges: first byte, last byte, middle, whole', withStorage(async (storage) => {
        await storage.writeBlob(chunked(hello));
        const n = hello.length;
        const read = async (start: number, end: number) => readAll(await storage.readBlob(helloDigest, { start, end }));
        assert.deepEqual(await read(0, 0), hello.subarray(0, 1));
        assert.deepEqual(await read(n - 1, n - 1), hello.subarray(n - 1));
        assert.deepEqual(await read(3, 9), hello.subarray(3, 10));
        assert.deepEqual(await read(0, n - 1), hello);
        assert.deepEqual(await read(7, n - 1), hello.subarray(7));
      }));

      it('rejects ranges outside the blob with RangeNotSatisfiableError', withStorage(async (storage) => {
        await storage.writeBlob(chunked(hello));
        const n = hello.length;
        for (const range of [
          { start: 0, end: n },
          { start: n, end: n },
          { start: n + 10, end: n + 20 },
          { start: 5, end: 2 },
          { start: -1, end: 3 },
          { start: 0.5, end: 3 },
        ]) {
          await assert.rejects(storage.readBlob(helloDigest, range), (error: unknown) => {
            assert.ok(error instanceof RangeNotSatisfiableError, `range ${JSON.stringify(range)}`);
            assert.equal(error.size, n);
            return true;
          });
        }
        const empty = await storage.writeBlob(chunked(Buffer.alloc(0)));
        await assert.rejects(storage.readBlob(empty.digest, { start: 0, end: 0 }), RangeNotSatisfiableError);
      }));

      it('answers missing digests with undefined / false', withStorage(async (storage) => {
        assert.equal(await storage.statBlob(helloDigest), undefined);
        assert.equal(await storage.readBlob(helloDigest), undefined);
        assert.equal(await storage.readBlob(helloDigest, { start: 0, end: 0 }), undefined);
        assert.equal(await storage.deleteBlob(helloDigest), false);
        assert.deepEqual(await collect(storage.listBlobs()), []);
      }));

      it('refuses malformed digests', withStorage(async (storage) => {
        for (const bad of ['sha256:../../../etc/passwd', 'sha256:ABC', `sha512:${'0'.repeat(64)}`, `sha256:${'A'.repeat(64)}`]) {
          const digest = bad as Digest;
          await assert.rejects(storage.statBlob(digest), `statBlob ${bad}`);
          await assert.rejects(storage.readBlob(digest), `readBlob ${bad}`);
          await assert.rejects(storage.deleteBlob(digest), `deleteBlob ${bad}`);
          await assert.rejects(storage.writeBlob(chunked(hello), digest), `writeBlob ${bad}`);
        }
        assert.deepEqual(await collect(storage.listBlobs()), []);
      }));

      it('reports created: true for a new blob and false for the same bytes again', withStorage(async (storage) => {
        assert.equal((await storage.writeBlob(chunked(hello))).created, true);
        const again = await storage.writeBlob(chunked(hello, 5));
        assert.deepEqual(again, { digest: helloDigest, size: hello.length, created: false });
        assert.deepEqual(await listedDigests(storage), [helloDigest]);
      }));

      it('lets 8 concurrent writers of the same bytes all succeed, leaving one blob', withStorage(async (storage) => {
        const bytes = seededBytes(64 * 1024, 1);
        const digest = sha256Digest(bytes);
        const results = await Promise.all(
          Array.from({ length: 8 }, (_, i) => storage.writeBlob(chunked(bytes, 4096 + i), i % 2 === 0 ? digest : undefined)),
        );
        for (const result of results) {
          assert.equal(result.digest, digest);
          assert.equal(result.size, bytes.length);
        }
        assert.ok(results.some((result) => result.created), 'at least one writer created the blob');
        assert.deepEqual(await collect(storage.listBlobs()).then((blobs) => blobs.map((b) => [b.digest, b.size])), [
          [digest, bytes.length],
        ]);
        assert.deepEqual(await readAll(await storage.readBlob(digest)), bytes);
      }));

      it('rejects bytes that do not match the expected digest, and nothing becomes visible', withStorage(async (storage) => {
        const expected = sha256Digest(other);
        await assert.rejects(storage.writeBlob(chunked(hello), expected), (error: unknown) => {
          assert.ok(error instanceof DigestMismatchError);
          assert.equal(error.expected, expected);
          assert.equal(error.actual, helloDigest);
          return true;
        });
        assert.equal(await storage.statBlob(helloDigest), undefined);
        assert.equal(await storage.statBlob(expected), undefined);
        assert.equal(await storage.readBlob(helloDigest), undefined);
        assert.deepEqual(await collect(storage.listBlobs()), []);
      }));

      it('makes nothing visible when the source throws midway, and passes its error on', withStorage(async (storage) => {
        const boom = new Error('source failed midway');
        async function* failing(): AsyncGenerator<Uint8Array> {
          yield hello.subarray(0, 10);
          await new Promise((resolve) => setImmediate(resolve));
          yield hello.subarray(10, 20);
          throw boom;
        }
        await assert.rejects(storage.writeBlob(failing()), (error: unknown) => error === boom);
        assert.equal(await storage.statBlob(helloDigest), undefined);
        assert.equal(await storage.statBlob(sha256Digest(hello.subarray(0, 20))), undefined);
        assert.deepEqual(await collect(storage.listBlobs()), []);
      }));

      it('refuses chunks that are not bytes with TypeError, and nothing becomes visible', withStorage(async (storage) => {
        async function* mixed(): AsyncGenerator<Uint8Array> {
          yield Buffer.from('bytes');
          yield 'a string' as unknown as Uint8Array;
        }
        await assert.rejects(storage.writeBlob(mixed()), TypeError);
        assert.equal(await storage.statBlob(sha256Digest('bytes')), undefined);
        assert.deepEqual(await collect(storage.listBlobs()), []);
      }));

      it('makes a blob visible only after its last byte', withStorage(async (storage) => {
        const seenDuringWrite: unknown[] = [];
        async function* observed(): AsyncGenerator<Uint8Array> {
          yield hello.subarray(0, 20);
          await new Promise((resolve) => setImmediate(resolve));
          seenDuringWrite.push(await storage.statBlob(helloDigest), await storage.readBlob(helloDigest));
          seenDuringWrite.push(...(await collect(storage.listBlobs())));
          yield hello.subarray(20);
        }
        await storage.writeBlob(observed());
        assert.deepEqual(seenDuringWrite, [undefined, undefined]);
        assert.deepEqual(await storage.statBlob(helloDigest), { digest: helloDigest, size: hello.length });
      }));

      it('lists blobs with digest, size and modification time', withStorage(async (storage) => {
        const contents = [hello, other, Buffer.alloc(0)];
        for (const bytes of contents) await storage.writeBlob(chunked(bytes));
        const listed = (await collect(storage.listBlobs())).sort((a, b) => (a.digest < b.digest ? -1 : 1));
        const expected = contents
          .map((bytes) => ({ digest: sha256Digest(bytes), size: bytes.length }))
          .sort((a, b) => (a.digest < b.digest ? -1 : 1));
        assert.deepEqual(listed.map(({ digest, size }: ListedBlob) => ({ digest, size })), expected);
        for (const blob of listed) {
          assert.ok(blob.modified instanceof Date && !Number.isNaN(blob.modified.getTime()));
        }
      }));

      it('deletes blobs', withStorage(async (storage) => {
        await storage.writeBlob(chunked(hello));
        await storage.writeBlob(chunked(other));
        assert.equal(await storage.deleteBlob(helloDigest), true);
        assert.equal(await storage.statBlob(helloDigest), undefined);
        assert.equal(await storage.readBlob(helloDigest), undefined);
        assert.equal(await storage.deleteBlob(helloDigest), false);
        assert.deepEqual(await listedDigests(storage), [sha256Digest(other)]);
        assert.equal((await storage.writeBlob(chunked(hello))).created, true, 'a deleted blob can be written again');
      }));

      it(`streams a ${largeBlobBytes / MiB} MiB blob in and out without holding it in memory`, withStorage(async (storage) => {
        // One random block, sliced at shifting offsets into chunks of shifting sizes: the content
        // is not periodic, and the source allocates nothing per chunk, so RSS growth is the backend's.
        const block = seededBytes(MiB, 2);
        const sizes = [65_536, 100_003, 4_099, 262_144, 31_337];
        const sourceHash = createHash('sha256');
        let peakRss = 0;
        const sample = () => {
          peakRss = Math.max(peakRss, process.memoryUsage().rss);
        };
        async function* generated(): AsyncGenerator<Uint8Array> {
          let produced = 0;
          for (let i = 0; produced < largeBlobBytes; i++) {
            const size = Math.min(sizes[i % sizes.length] as number, largeBlobBytes - produced);
            const offset = (i * 7919) % (block.length - size);
            const chunk = block.subarray(offset, offset + size);
            sourceHash.update(chunk);
            produced += size;
            if (i % 16 === 0) sample();
            yield chunk;
          }
        }
        (globalThis as { gc?: () => void }).gc?.();
        const baseline = process.memoryUsage().rss;
        peakRss = baseline;

        const written = await storage.writeBlob(generated());
        const expectedDigest: Digest = `sha256:${sourceHash.digest('hex')}`;
        assert.equal(written.digest, expectedDigest);
        assert.equal(written.size, largeBlobBytes);
        assert.deepEqual(await storage.statBlob(expectedDigest), { digest: expectedDigest, size: largeBlobBytes });

        const stream = await storage.readBlob(expectedDigest);
        assert.ok(stream);
        const readHash = createHash('sha256');
        let readBytes = 0;
        let chunks = 0;
        for await (const chunk of stream) {
          readHash.update(chunk as Uint8Array);
          readBytes += (chunk as Uint8Array).length;
          if (++chunks % 16 === 0) sample();
        }
        sample();
        assert.equal(readBytes, largeBlobBytes);
        assert.equal(`sha256:${readHash.digest('hex')}`, expectedDigest);
        const growth = peakRss - baseline;
        assert.ok(
          growth < maxRssGrowthBytes,
          `RSS grew by ${(growth / MiB).toFixed(1)} MiB (limit ${maxRssGrowthBytes / MiB} MiB) for a ${largeBlobBytes / MiB} MiB blob`,
        );
      }));
    });

    describe('temporary area', () => {
      const inAnHour = () => new Date(Date.now() + 3600_000);
      const recordKey = `manifests/${'c'.repeat(64)}`;

      it('holds nothing once writes have ended, whether they succeeded or failed', withStorage(async (storage) => {
        assert.deepEqual(await collect(storage.listTemporary()), []);
        await storage.writeBlob(chunked(hello));
        await storage.putRecord(recordKey, { a: 1 });
        await assert.rejects(storage.writeBlob(chunked(hello), sha256Digest(other)), DigestMismatchError);
        await assert.rejects(
          storage.writeBlob((async function* () {
            yield hello;
            throw new Error('source failed');
          })()),
          /source failed/,
        );
        assert.deepEqual(await collect(storage.listTemporary()), []);
        assert.equal(await storage.removeTemporary({ location: 'tmp/never-written' }, inAnHour()), false);
      }));

      it('shows a write stopped mid-stream; once removed, the write fails and nothing else is touched', withStorage(async (storage) => {
        // A writer whose source stops yielding is, to storage, what a writer that died mid-blob is.
        const kept = await storage.writeBlob(chunked(hello));
        await storage.putRecord(recordKey, { kept: true });
        const stalledBytes = seededBytes(6 * MiB, 5); // more than one S3 part: the upload is under way
        let release: () => void = () => undefined;
        const released = new Promise<void>((resolve) => {
          release = resolve;
        });
        async function* stalled(): AsyncGenerator<Uint8Array> {
          yield* chunked(stalledBytes, 256 * 1024);
          await released;
          yield Buffer.from('and the rest');
        }
        const startedAt = Date.now();
        const writing = storage.writeBlob(stalled());
        writing.catch(() => undefined); // awaited below, after the removal
        try {
          const items = await temporaryWithBytes(storage);
          assert.equal(items.length, 1, JSON.stringify(items));
          const item = items[0] as TemporaryItem;
          assert.ok(item.size > 0 && item.size <= stalledBytes.length, `size ${item.size}`);
          // Whole seconds on S3: LastModified has no milliseconds.
          assert.ok(item.modified.getTime() >= startedAt - 1000 && item.modified.getTime() <= Date.now() + 1000, `modified ${item.modified.toISOString()}`);

          assert.equal(await storage.removeTemporary(refOf(item), item.modified), false, 'written at the cutoff: kept');
          assert.equal(await storage.removeTemporary(refOf(item), new Date(startedAt - 3600_000)), false, 'written after the cutoff: kept');
          assert.deepEqual((await collect(storage.listTemporary())).map((i) => i.location), [item.location], 'still there');

          assert.equal(await storage.removeTemporary(refOf(item), inAnHour()), true);
          assert.deepEqual(await collect(storage.listTemporary()), []);
          assert.equal(await storage.removeTemporary(refOf(item), inAnHour()), false, 'already gone');
        } finally {
          release();
        }
        await assert.rejects(writing, 'a write whose temporary data was removed fails');
        assert.deepEqual(await listedDigests(storage), [kept.digest], 'nothing of the removed write became visible');
        assert.deepEqual(await readAll(await storage.readBlob(kept.digest)), hello);
        assert.deepEqual(await storage.getRecord(recordKey), { kept: true });
        assert.deepEqual(await collect(storage.listTemporary()), []);
      }));

      it('refuses to remove anything outside the temporary area', withStorage(async (storage) => {
        const { digest } = await storage.writeBlob(chunked(hello));
        await storage.putRecord(recordKey, { kept: true });
        const hex = digest.slice('sha256:'.length);
        const outside = [
          `blobs/sha256/${hex}`,
          `${recordKey}.json`,
          `tmp/../blobs/sha256/${hex}`,
          `tmp/../${recordKey}.json`,
          'tmp/..',
          'tmp/.',
          'tmp/',
          'tmp',
          '',
          '../tmp/x',
          '/tmp/x',
          'tmp//x',
          'tmp/a b',
          'tmp\\..\\x',
        ];
        for (const location of outside) {
          await assert.rejects(storage.removeTemporary({ location }, inAnHour()), `removeTemporary ${JSON.stringify(location)}`);
        }
        assert.deepEqual(await readAll(await storage.readBlob(digest)), hello);
        assert.deepEqual(await storage.getRecord(recordKey), { kept: true });
      }));
    });

    describe('records', () => {
      const manifestKey = `manifests/${'a'.repeat(64)}`;
      const layerKey = `layers/${'b'.repeat(64)}`;
      const value = { imageKey: 'a'.repeat(64), nested: { list: [1, 'two', null, true], text: 'é ✓' } };

      it('round-trips JSON records', withStorage(async (storage) => {
        await storage.putRecord(manifestKey, value);
        assert.deepEqual(await storage.getRecord(manifestKey), value);
        await storage.putRecord('a/b/c.d_e-f', [1, 2, 3]);
        assert.deepEqual(await storage.getRecord('a/b/c.d_e-f'), [1, 2, 3]);
        await storage.putRecord('top', 'just a string');
        assert.equal(await storage.getRecord('top'), 'just a string');
      }));

      it('answers missing records with undefined / false', withStorage(async (storage) => {
        assert.equal(await storage.getRecord(manifestKey), undefined);
        assert.equal(await storage.getRecord('never/written/anywhere'), undefined);
        assert.equal(await storage.deleteRecord(manifestKey), false);
        assert.deepEqual(await collect(storage.listRecords('manifests/')), []);
      }));

      it('overwrites records', withStorage(async (storage) => {
        await storage.putRecord(manifestKey, value);
        await storage.putRecord(manifestKey, { replaced: true });
        assert.deepEqual(await storage.getRecord(manifestKey), { replaced: true });
        assert.deepEqual(await collect(storage.listRecords('manifests/')), [manifestKey]);
      }));

      it('lists records by prefix, apart from blobs', withStorage(async (storage) => {
        const manifestKeys = [`manifests/${'0'.repeat(64)}`, manifestKey, `manifests/${'f'.repeat(64)}`];
        for (const key of [...manifestKeys, layerKey, 'other/thing']) await storage.putRecord(key, { key });
        await storage.writeBlob(chunked(hello));
        assert.deepEqual(sortStrings(await collect(storage.listRecords('manifests/'))), manifestKeys);
        assert.deepEqual(await collect(storage.listRecords('layers/')), [layerKey]);
        assert.deepEqual(sortStrings(await collect(storage.listRecords('manifests/f'))), [`manifests/${'f'.repeat(64)}`]);
        assert.deepEqual(await collect(storage.listRecords('nothing/')), []);
        assert.deepEqual(
          sortStrings(await collect(storage.listRecords(''))),
          sortStrings([...manifestKeys, layerKey, 'other/thing']),
        );
      }));

      it('deletes records', withStorage(async (storage) => {
        await storage.putRecord(manifestKey, value);
        await storage.putRecord(layerKey, value);
        assert.equal(await storage.deleteRecord(manifestKey), true);
        assert.equal(await storage.getRecord(manifestKey), undefined);
        assert.equal(await storage.deleteRecord(manifestKey), false);
        assert.deepEqual(await collect(storage.listRecords('')), [layerKey]);
      }));

      it('rejects hostile or malformed keys', withStorage(async (storage) => {
        const hostile = ['../x', '/abs', 'a//b', 'a/../../b', '..', '.', 'a/./b', 'a/', '', 'a\\b', 'a\0b', 'a b', 'ü', 'a/b/..'];
        for (const key of hostile) {
          await assert.rejects(storage.putRecord(key, { evil: true }), `putRecord ${JSON.stringify(key)}`);
          await assert.rejects(storage.getRecord(key), `getRecord ${JSON.stringify(key)}`);
          await assert.rejects(storage.deleteRecord(key), `deleteRecord ${JSON.stringify(key)}`);
        }
        for (const prefix of ['../', '/abs/', 'a//', '../../etc/']) {
          await assert.rejects(collect(storage.listRecords(prefix)), `listRecords ${JSON.stringify(prefix)}`);
        }
        assert.deepEqual(await collect(storage.listRecords('')), []);
      }));

      it('refuses values that are not JSON', withStorage(async (storage) => {
        await assert.rejects(storage.putRecord('x/undefined', undefined));
        const cyclic: Record<string, unknown> = {};
        cyclic.self = cyclic;
        await assert.rejects(storage.putRecord('x/cyclic', cyclic));
        assert.deepEqual(await collect(storage.listRecords('')), []);
      }));
    });
  });
}
