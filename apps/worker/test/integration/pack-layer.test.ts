// Store-path layers, checked with the tools a client would use: the blob is read back from a real
// FilesystemStorage, gunzipped and listed/extracted with GNU tar, and compared with the store.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, before, describe, test } from 'node:test';
import { FilesystemStorage, digestHex, type Digest } from '@nixyard/core';
import { storePathEntries, treeEntries } from '../../src/pack/layer-tar.js';
import { GZIP_BLOCK_SIZE, GzipPool } from '../../src/pack/gzip-pool.js';
import { packLayer } from '../../src/pack/pack-layer.js';
import { nixBuildScript } from '../../../../test/helpers/nix.js';
import { collect } from '../../../../test/helpers/streams.js';

const sh = (command: string, cwd?: string) =>
  execFileSync('/bin/sh', ['-c', command], { cwd, encoding: 'utf8', env: { ...process.env, TZ: 'UTC', LC_ALL: 'C' } });

const sha256File = async (file: string): Promise<Digest> =>
  `sha256:${createHash('sha256').update(await readFile(file)).digest('hex')}`;

// Names and targets longer than ustar's 100-byte fields, and a non-ASCII name, need pax headers.
const LONG = 'd'.repeat(60);
const tree = [
  'mkdir -p $out/bin $out/share/doc/' + LONG + '/' + LONG,
  'printf "#!/bin/sh\\necho hi\\n" > $out/bin/hello; chmod 555 $out/bin/hello',
  'printf "readme\\n" > $out/share/doc/README',
  'printf "deep\\n" > $out/share/doc/' + LONG + '/' + LONG + '/file',
  'printf "\\000\\001binary" > $out/share/B; : > $out/share/empty',
  'printf "accent\\n" > "$out/share/$(printf "caf\\303\\251")"', // café, in UTF-8
  'ln -s hello $out/bin/hi',
  'ln -s $out/share/doc/' + LONG + '/' + LONG + '/file $out/share/long-link',
  'ln -s /nonexistent $out/share/dangling',
  'ln $out/share/doc/README $out/share/hardlink',
].join('; ');

describe('packLayer of store paths', () => {
  let work: string;
  let storage: FilesystemStorage;
  let storePaths: string[];

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'nixyard-pack-'));
    storage = new FilesystemStorage(join(work, 'storage'));
    storePaths = [nixBuildScript('pack-test-a', tree), nixBuildScript('pack-test-b', 'mkdir $out; echo b > $out/b')];
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  test('the blob is a gzipped tar of the store paths, byte for byte, with pinned metadata', async () => {
    // Unsorted, with a duplicate: the layer must not care.
    const layer = await packLayer(storage, storePathEntries([...storePaths].reverse().concat(storePaths)), { gzipLevel: 6 });
    const blob = join(storage.rootDir, 'blobs', 'sha256', digestHex(layer.digest));

    assert.equal(layer.digest, await sha256File(blob));
    assert.equal(layer.size, (await stat(blob)).size);
    assert.equal(layer.created, true);
    sh(`gzip -dc < ${blob} > ${work}/layer.tar`);
    assert.equal(layer.diffId, `sha256:${sh(`sha256sum < ${work}/layer.tar`).split(' ')[0]}`);

    const extracted = join(work, 'extracted');
    sh(`mkdir ${extracted} && tar -xpf ${work}/layer.tar -C ${extracted}`);
    for (const storePath of storePaths) sh(`diff -r --no-dereference ${storePath} ${extracted}${storePath}`);
    assert.deepEqual(await readdir(join(extracted, 'nix', 'store')), [...storePaths].sort().map((p) => p.slice(11)));

    // Order, modes, owners and times as GNU tar sees them.
    const listing = sh(`tar --full-time --numeric-owner -tvf ${work}/layer.tar`).trim().split('\n');
    const rows = listing.map((line) => {
      const [mode, owner, , date, time, ...rest] = line.split(/\s+/);
      return { mode, owner, when: `${date} ${time}`, name: rest.join(' ').replace(/ -> .*/, '') };
    });
    const [a, b] = [...storePaths].sort().map((p) => p.slice(1)) as [string, string];
    for (const row of rows) {
      assert.equal(row.owner, '0/0', row.name);
      assert.equal(row.when, '1970-01-01 00:00:01', row.name);
    }
    const names = rows.map((row) => row.name);
    assert.deepEqual(names.slice(0, 2), ['nix/', 'nix/store/']);
    // Each store path as one depth-first walk, store paths in order, entries sorted within a directory.
    const firstOfB = names.indexOf(`${b}/`);
    assert.ok(names.indexOf(`${a}/`) === 2 && firstOfB > 2);
    assert.ok(names.slice(2, firstOfB).every((name) => name.startsWith(`${a}/`)));
    const byName = new Map(rows.map((row) => [row.name, row]));
    const pa = storePaths[0]!.slice(1); // pack-test-a
    assert.equal(byName.get('nix/')?.mode, 'drwxr-xr-x');
    assert.equal(byName.get(`${pa}/`)?.mode, 'dr-xr-xr-x');
    assert.equal(byName.get(`${pa}/bin/hello`)?.mode, '-r-xr-xr-x');
    assert.equal(byName.get(`${pa}/share/doc/README`)?.mode, '-r--r--r--');
    assert.equal(byName.get(`${pa}/share/hardlink`)?.mode, '-r--r--r--'); // a file, not a tar hard link
    assert.equal(byName.get(`${pa}/bin/hi`)?.mode, 'lrwxrwxrwx');
    assert.ok(listing.some((line) => line.endsWith(`${pa}/bin/hi -> hello`)));
    const sharedEntries = names.filter((n) => n.startsWith(`${pa}/share/`) && n.split('/').length === 5);
    assert.deepEqual(sharedEntries, [...sharedEntries].sort());
  });

  test('packing the same paths again gives the same digest and diff_id, and creates nothing', async () => {
    const first = await packLayer(storage, storePathEntries(storePaths), { gzipLevel: 6 });
    const second = await packLayer(storage, storePathEntries(storePaths), { gzipLevel: 6 });
    assert.deepEqual({ ...second, created: true }, { ...first, created: true });
    assert.equal(second.created, false);

    // Another storage (another replica) gets the very same bytes: nothing in tar or gzip varies.
    const other = new FilesystemStorage(join(work, 'other-storage'));
    const elsewhere = await packLayer(other, storePathEntries(storePaths), { gzipLevel: 6 });
    assert.deepEqual(elsewhere, { ...first, created: true });
    const blob = await readFile(join(other.rootDir, 'blobs', 'sha256', digestHex(elsewhere.digest)));
    assert.deepEqual([...blob.subarray(0, 4)], [0x1f, 0x8b, 8, 0]); // gzip, deflate, no name/comment
    assert.equal(blob.readUInt32LE(4), 0); // no mtime in the gzip header
  });

  test('a layer over one block is gzip members that GNU gzip and tar read as one stream, the same with any thread count', async () => {
    // ~3 MiB of base64 text: four blocks of tar, each compressing to about three quarters.
    const big = nixBuildScript('pack-test-blocks', 'mkdir $out; head -c 2400000 /dev/urandom | base64 > $out/text');
    const one = new GzipPool({ threads: 1 });
    const four = new GzipPool({ threads: 4 });
    try {
      const layer = await packLayer(storage, storePathEntries([big]), { gzipLevel: 6, pool: four });
      const blobPath = join(storage.rootDir, 'blobs', 'sha256', digestHex(layer.digest));
      sh(`gzip -t ${blobPath} && gzip -dc < ${blobPath} > ${work}/blocks.tar`);
      const tar = await readFile(`${work}/blocks.tar`);
      assert.equal(layer.diffId, await sha256File(`${work}/blocks.tar`));
      assert.ok(tar.length > 3 * GZIP_BLOCK_SIZE, `${tar.length} bytes of tar`);
      const members: Buffer[] = [];
      for (let offset = 0; offset < tar.length; offset += GZIP_BLOCK_SIZE) members.push(gzipSync(tar.subarray(offset, offset + GZIP_BLOCK_SIZE), { level: 6 }));
      assert.ok((await readFile(blobPath)).equals(Buffer.concat(members)), `${members.length} members, one per block`);
      sh(`mkdir ${work}/blocks && tar -xpf ${work}/blocks.tar -C ${work}/blocks && diff -r ${big} ${work}/blocks${big}`);

      const other = new FilesystemStorage(join(work, 'blocks-storage'));
      assert.deepEqual(await packLayer(other, storePathEntries([big]), { gzipLevel: 6, pool: one }), { ...layer, created: true });
    } finally {
      await Promise.all([one.close(), four.close()]);
    }
  });

  test('the gzip level changes the digest but not the diff_id', async () => {
    const level6 = await packLayer(storage, storePathEntries(storePaths), { gzipLevel: 6 });
    const level1 = await packLayer(storage, storePathEntries(storePaths), { gzipLevel: 1 });
    assert.equal(level1.diffId, level6.diffId);
    assert.notEqual(level1.digest, level6.digest);
  });

  test('an unsupported file type fails the pack and leaves no blob behind', async () => {
    const dir = join(work, 'with-fifo');
    sh(`mkdir -p ${dir}/a && echo x > ${dir}/a/file && mkfifo ${dir}/a/pipe`);
    const empty = new FilesystemStorage(join(work, 'fifo-storage'));
    await assert.rejects(packLayer(empty, treeEntries(dir, 'root'), { gzipLevel: 6 }), /pipe: not a regular file, directory or symlink/);
    assert.deepEqual(await collect(empty.listBlobs()), []);
  });

  test('a file that ends before its entry does fails the pack mid-entry, and only the pack', async () => {
    const readme = `${storePaths[0]}/share/doc/README`;
    const entries = [{ type: 'file' as const, name: 'README', mode: 0o444, size: 1 << 20, source: readme }];
    await assert.rejects(packLayer(storage, entries, { gzipLevel: 6 }), /README: it shrank while being read/);
  });

  test('a failing storage fails the pack with its own error', async () => {
    sh(`touch ${work}/not-a-directory`);
    const broken = new FilesystemStorage(join(work, 'not-a-directory', 'storage'));
    await assert.rejects(packLayer(broken, storePathEntries(storePaths), { gzipLevel: 6 }), { code: 'ENOTDIR' });
  });

  test('only store paths are accepted', async () => {
    for (const bad of ['/tmp/x', '/nix/store', '/nix/store/a/b', 'nix/store/x']) {
      await assert.rejects(packLayer(storage, storePathEntries([bad]), { gzipLevel: 6 }), /not a store path/);
    }
  });
});
