// The filesystem backend: the shared conformance suite on a temp dir, plus what only a filesystem
// can show (the on-disk layout, no temp files left behind, every visible blob file exactly right).
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { lutimes, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FilesystemStorage, sha256Digest, type Digest } from '../src/index.js';
import { chunksOf as chunks, collect, readAll } from '../../../test/helpers/streams.js';
import { storageConformance } from './storage-conformance.js';

async function filesUnder(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir, { recursive: true, withFileTypes: true }))
      .filter((entry) => !entry.isDirectory())
      .map((entry) => join(entry.parentPath, entry.name));
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return [];
    throw error;
  }
}

/**
 * What must hold after any sequence of operations, successful or not: no temp file is left, and
 * every file in blobs/sha256 is named after the sha256 of exactly its content.
 */
async function audit(root: string): Promise<void> {
  assert.deepEqual(await filesUnder(join(root, 'tmp')), [], 'temp files left behind');
  for (const path of await filesUnder(join(root, 'blobs'))) {
    const name = path.slice(path.lastIndexOf('/') + 1);
    const hash = createHash('sha256');
    hash.update(await readFile(path));
    assert.equal(hash.digest('hex'), name, `blob file ${path} does not match its name`);
  }
}

let scratch: string;
before(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'nixyard-fs-storage-'));
});
after(async () => {
  await rm(scratch, { recursive: true, force: true });
});

let stores = 0;
/** A store whose root does not exist yet: the backend must create its directories lazily. */
async function freshStore(): Promise<{ root: string; storage: FilesystemStorage }> {
  const root = join(scratch, `store-${++stores}`, 'root');
  return { root, storage: new FilesystemStorage(root) };
}

storageConformance('FilesystemStorage (conformance)', async () => {
  const { root, storage } = await freshStore();
  return {
    storage,
    async cleanup() {
      try {
        await audit(root);
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    },
  };
});

describe('FilesystemStorage (filesystem specifics)', () => {
  it('lays out blobs and records as documented', async () => {
    const { root, storage } = await freshStore();
    const { digest } = await storage.writeBlob(chunks('layer bytes'));
    const key = 'e'.repeat(64);
    await storage.putRecord(`manifests/${key}`, { a: 1 });
    await storage.putRecord(`layers/${key}`, [2]);
    assert.equal(await readFile(join(root, 'blobs', 'sha256', digest.slice(7)), 'utf8'), 'layer bytes');
    assert.equal(await readFile(join(root, 'manifests', `${key}.json`), 'utf8'), '{"a":1}');
    assert.equal(await readFile(join(root, 'layers', `${key}.json`), 'utf8'), '[2]');
    assert.deepEqual((await readdir(root)).sort(), ['blobs', 'layers', 'manifests', 'tmp']);
    await audit(root);
  });

  it('leaves no temp file after failed writes, and every visible blob file is exact', async () => {
    const { root, storage } = await freshStore();
    await assert.rejects(storage.writeBlob(chunks('abc'), sha256Digest('abd')));
    await assert.rejects(
      storage.writeBlob(
        (async function* () {
          yield Buffer.from('partial');
          throw new Error('gone');
        })(),
      ),
    );
    await assert.rejects(
      storage.writeBlob(
        (async function* () {
          yield Buffer.from('bytes');
          yield 'a string' as unknown as Uint8Array;
        })(),
      ),
      TypeError,
    );
    await Promise.all(Array.from({ length: 8 }, () => storage.writeBlob(chunks('same', ' bytes'))));
    assert.deepEqual(await readdir(join(root, 'blobs', 'sha256')), [sha256Digest('same bytes').slice(7)]);
    await audit(root);
  });

  it('lets exactly one of several concurrent writers report created', async () => {
    const { root, storage } = await freshStore();
    const results = await Promise.all(Array.from({ length: 8 }, () => storage.writeBlob(chunks('race', 'd'))));
    assert.equal(results.filter((result) => result.created).length, 1);
    await audit(root);
  });

  it('refreshes the modification time when an existing blob is written again', async () => {
    const { storage } = await freshStore();
    const { digest } = await storage.writeBlob(chunks('old blob'));
    const path = join(storage.rootDir, 'blobs', 'sha256', digest.slice(7));
    const longAgo = new Date('2001-01-01T00:00:00Z');
    await utimes(path, longAgo, longAgo);
    assert.equal((await storage.writeBlob(chunks('old blob'))).created, false);
    assert.ok((await stat(path)).mtime > longAgo);
    const [listed] = await collect(storage.listBlobs());
    assert.ok(listed && listed.modified > longAgo);
  });

  it('keeps serving a stream that was opened before the blob was deleted', async () => {
    const { storage } = await freshStore();
    const { digest } = await storage.writeBlob(chunks('still readable'));
    const stream = await storage.readBlob(digest, { start: 6, end: 13 });
    assert.equal(await storage.deleteBlob(digest), true);
    assert.equal((await readAll(stream)).toString(), 'readable');
  });

  it('skips files in the blob directory that are not named like a blob', async () => {
    const { root, storage } = await freshStore();
    const { digest } = await storage.writeBlob(chunks('real'));
    const blobDir = join(root, 'blobs', 'sha256');
    await writeFile(join(blobDir, 'README'), 'not a blob');
    await writeFile(join(blobDir, 'A'.repeat(64)), 'upper case');
    await writeFile(join(blobDir, `${'0'.repeat(64)}.partial`), 'partial');
    await mkdir(join(blobDir, '1'.repeat(64)));
    assert.deepEqual((await collect(storage.listBlobs())).map((blob) => blob.digest), [digest]);
    assert.equal(await storage.statBlob(`sha256:${'1'.repeat(64)}` as Digest), undefined);
    assert.equal(await storage.readBlob(`sha256:${'1'.repeat(64)}` as Digest), undefined);
  });

  it('refuses record keys under the directories it uses itself', async () => {
    const { storage } = await freshStore();
    for (const key of ['tmp/x', 'blobs/sha256/abc', 'blobs', 'tmp', 'a.json/b']) {
      await assert.rejects(storage.putRecord(key, 1), new RegExp('invalid record key'));
      await assert.rejects(storage.getRecord(key), new RegExp('invalid record key'));
    }
  });

  it('lists only .json files with valid keys as records', async () => {
    const { root, storage } = await freshStore();
    await storage.putRecord('manifests/one', 1);
    await storage.writeBlob(chunks('a blob'));
    await writeFile(join(root, 'manifests', 'stray.txt'), 'x');
    await writeFile(join(root, 'manifests', 'bad name.json'), '1');
    await mkdir(join(root, 'tmp'), { recursive: true });
    await writeFile(join(root, 'tmp', 'leftover.json'), '1');
    assert.deepEqual(await collect(storage.listRecords('')), ['manifests/one']);
    assert.deepEqual(await collect(storage.listRecords('manifests')), ['manifests/one']);
    await rm(join(root, 'tmp', 'leftover.json'));
  });

  it('works on a root that does not exist yet, for every operation', async () => {
    const { storage } = await freshStore();
    assert.deepEqual(await collect(storage.listBlobs()), []);
    assert.deepEqual(await collect(storage.listRecords('manifests/')), []);
    assert.equal(await storage.getRecord('manifests/x'), undefined);
    assert.equal(await storage.deleteRecord('manifests/x'), false);
    assert.equal(await storage.statBlob(sha256Digest('')), undefined);
  });
});

describe('FilesystemStorage (temporary files)', () => {
  const inAnHour = () => new Date(Date.now() + 3600_000);
  const longAgo = new Date('2001-01-01T00:00:00Z');

  it('lists the files writers left in tmp/ with size and mtime, and removes one only once old enough', async () => {
    const { root, storage } = await freshStore();
    const { digest } = await storage.writeBlob(chunks('a blob'));
    const tmp = join(root, 'tmp');
    await writeFile(join(tmp, '123-abc'), Buffer.alloc(4096));
    await writeFile(join(tmp, '124-def'), 'x');
    await mkdir(join(tmp, 'a-directory'));
    await utimes(join(tmp, '123-abc'), longAgo, longAgo);

    const listed = (await collect(storage.listTemporary())).sort((a, b) => (a.location < b.location ? -1 : 1));
    assert.deepEqual(listed.map(({ location, size }) => ({ location, size })), [
      { location: 'tmp/123-abc', size: 4096 },
      { location: 'tmp/124-def', size: 1 },
    ]);
    assert.equal(listed[0]?.modified.getTime(), longAgo.getTime());

    const anHourAgo = new Date(Date.now() - 3600_000);
    assert.equal(await storage.removeTemporary({ location: 'tmp/124-def' }, anHourAgo), false, 'written within the hour');
    assert.equal(await storage.removeTemporary({ location: 'tmp/123-abc' }, anHourAgo), true);
    assert.equal(await storage.removeTemporary({ location: 'tmp/a-directory' }, inAnHour()), false, 'directories are not temporary files');
    await assert.rejects(storage.removeTemporary({ location: 'tmp/a-directory/x' }, inAnHour()), /not a temporary file/);
    await assert.rejects(storage.removeTemporary({ location: 'tmp/124-def', uploadId: 'u' }, inAnHour()), /not a temporary file/);
    assert.deepEqual((await readdir(tmp)).sort(), ['124-def', 'a-directory']);
    assert.deepEqual(await readAll(await storage.readBlob(digest)), Buffer.from('a blob'));

    await rm(join(tmp, 'a-directory'), { recursive: true });
    assert.equal(await storage.removeTemporary({ location: 'tmp/124-def' }, inAnHour()), true);
    await audit(root);
  });

  it('removes a link in tmp/ itself, never what it points at', async () => {
    const { root, storage } = await freshStore();
    const { digest } = await storage.writeBlob(chunks('a blob'));
    const blobPath = join(root, 'blobs', 'sha256', digest.slice(7));
    const outsideDir = join(scratch, 'outside');
    await mkdir(outsideDir, { recursive: true });
    await writeFile(join(outsideDir, 'precious'), 'keep me');
    const links = { '97-to-a-file': join(outsideDir, 'precious'), '98-to-a-blob': blobPath, '99-to-a-dir': outsideDir };
    for (const [name, target] of Object.entries(links)) {
      await symlink(target, join(root, 'tmp', name));
      await lutimes(join(root, 'tmp', name), longAgo, longAgo);
    }
    const listed = (await collect(storage.listTemporary())).map((item) => item.location).sort();
    assert.deepEqual(listed, Object.keys(links).map((name) => `tmp/${name}`));
    await assert.rejects(storage.removeTemporary({ location: 'tmp/99-to-a-dir/precious' }, inAnHour()), /not a temporary file/);
    for (const location of listed) assert.equal(await storage.removeTemporary({ location }, inAnHour()), true, location);
    assert.equal(await readFile(join(outsideDir, 'precious'), 'utf8'), 'keep me');
    assert.deepEqual(await readAll(await storage.readBlob(digest)), Buffer.from('a blob'));
    await audit(root);
  });
});
