// Layers across images, with the real processor: real Nix on the bundled set, real filesystem
// storage, and a real redis-server for the layer cache and the learned popularity.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import {
  FilesystemStorage,
  ManifestRecordSchema,
  buildJobFor,
  manifestRecordKey,
  parseImageName,
  type ManifestRecord,
} from '@nixyard/core';
import { buildImage, type BuildImageDeps } from '../../src/build-image.js';
import { LayerCache } from '../../src/layer-cache.js';
import { Nix } from '../../src/nix/nix.js';
import { LearnedPopularity } from '../../src/popularity.js';
import { BUNDLED_SET, prepareBundledSet } from '../../../../test/helpers/bundled-set.js';
import { NIX_ENV } from '../../../../test/helpers/nix.js';
import { startTestRedis, type TestRedis } from '../../../../test/helpers/redis.js';
import { tempDir } from '../../../../test/helpers/temp-dir.js';

const nix = new Nix({ timeoutSeconds: 600, env: NIX_ENV });
const dir = tempDir('image-layers');
let redisServer: TestRedis;

before(async () => {
  prepareBundledSet();
  redisServer = await startTestRedis();
});
after(async () => {
  await redisServer?.stop();
  dir.cleanup();
});

/** A worker's dependencies over a fresh storage directory and a fresh Redis database. */
let farms = 0;
function freshFarm(): { deps: BuildImageDeps; storagePath: string } {
  const n = ++farms;
  const storagePath = join(dir.path, `storage-${n}`);
  const storage = new FilesystemStorage(storagePath);
  const redis = redisServer.client(n);
  return {
    storagePath,
    deps: { nix, storage, layerCache: new LayerCache(storage, redis), popularity: new LearnedPopularity(redis), maxLayers: 95, gzipLevel: 6 },
  };
}

async function build(deps: BuildImageDeps, name: string): Promise<ManifestRecord> {
  const job = buildJobFor({ spec: parseImageName(name), source: { kind: 'path', path: BUNDLED_SET }, revision: 'test' });
  await buildImage(deps, job);
  return ManifestRecordSchema.parse(await deps.storage.getRecord(manifestRecordKey(job.imageKey)));
}

function blobNames(storagePath: string): Set<string> {
  return new Set(readdirSync(join(storagePath, 'blobs', 'sha256')).map((hex) => `sha256:${hex}`));
}

describe('layers shared between images', () => {
  test('shell/jq after shell/hello writes only the layers jq adds', async () => {
    const { deps, storagePath } = freshFarm();
    const hello = await build(deps, 'shell/hello');
    const before = blobNames(storagePath);
    const jq = await build(deps, 'shell/jq');
    const written = [...blobNames(storagePath)].filter((b) => !before.has(b)).sort();

    const helloLayers = new Set(hello.layers.map((l) => l.digest));
    const shared = jq.layers.filter((l) => helloLayers.has(l.digest));
    const added = jq.layers.filter((l) => !helloLayers.has(l.digest));
    // Everything but jq's own layers and its symlink layer is shared: glibc, bash, coreutils ...
    assert.ok(shared.length >= 5, `shared layers: ${shared.length}`);
    assert.ok(added.length >= 2 && added.length <= 3, `jq adds its package layer(s) and a symlink layer, got ${added.length}`);
    const expected = [...added.map((l) => l.digest), jq.config.digest, jq.manifests.oci.digest, jq.manifests.docker.digest].sort();
    assert.deepEqual(written, [...new Set(expected)].sort(), 'the only new blobs are the added layers, the config and the manifests');

    // The layers both images share sit in both manifests with the same digests and diff_ids.
    for (const layer of shared) {
      assert.deepEqual(hello.layers.find((l) => l.digest === layer.digest), layer);
    }
  });

  test('the same image built twice from empty storage is byte-identical', async () => {
    const first = freshFarm();
    const second = freshFarm();
    const a = await build(first.deps, 'shell/curl');
    const b = await build(second.deps, 'shell/curl');
    assert.equal(a.manifests.oci.digest, b.manifests.oci.digest);
    assert.equal(a.manifests.docker.digest, b.manifests.docker.digest);
    const blobsA = blobNames(first.storagePath);
    assert.deepEqual(blobsA, blobNames(second.storagePath));
    for (const digest of blobsA) {
      const hex = digest.slice('sha256:'.length);
      assert.ok(readFileSync(join(first.storagePath, 'blobs/sha256', hex)).equals(readFileSync(join(second.storagePath, 'blobs/sha256', hex))));
    }
  });

  test('a warm rebuild of an image whose layers are all cached packs nothing new but its symlink layer', async () => {
    const { deps, storagePath } = freshFarm();
    await build(deps, 'shell/curl/jq');
    const before = blobNames(storagePath);
    const curl = await build(deps, 'shell/curl');
    const written = [...blobNames(storagePath)].filter((b) => !before.has(b));
    // The symlink layer differs (no jq links); config and manifests are new; no store-path layer is.
    assert.equal(written.length, 4, `new blobs: ${written.join(' ')}`);
    assert.ok(written.includes(curl.layers.at(-1)!.digest), 'the symlink layer is the last layer');
  });
});
