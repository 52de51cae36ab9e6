// GET/HEAD /v2/<name>/manifests/<reference> in-process (manifests.ts, accept.ts): content
// negotiation as the real clients of docs/design.md §8 ask, indexes for NIXYARD_INDEX_SYSTEMS,
// warm records served without a job, cold ones built by exactly one job, the TTL of a moving
// target. Errors of this route are in registry-api-errors.test.ts.

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, test } from 'node:test';
import {
  MemoryStorage,
  PATH_REVISION,
  announceDeletion,
  manifestRecordKey,
  buildDockerManifestList,
  buildOciIndex,
  sha256Digest,
  type ByteRange,
  type Digest,
  type RecordKey,
} from '@nixyard/core';
import {
  CONTAINERD_ACCEPT,
  DOCKER,
  DOCKER_LIST,
  OCI,
  OCI_INDEX,
  SCHEMA1,
  SCHEMA1_SIGNED,
  SKOPEO_ACCEPT,
  SOURCE,
  TTL_SECONDS,
  assertHeadLikeGet,
  jobFor,
  seedImage,
  startRegistry,
  type PublishedImage,
  type Response,
  type TestRegistry,
} from './registry-fixture.js';

/** Status, the four manifest headers, and the exact bytes. */
function assertManifest(res: Response, bytes: Buffer, mediaType: string, what = ''): void {
  const digest = sha256Digest(bytes);
  assert.equal(res.status, 200, what);
  assert.equal(res.headers['content-type'], mediaType, what);
  assert.equal(res.headers['content-length'], String(bytes.length), what);
  assert.equal(res.headers['docker-content-digest'], digest, what);
  assert.equal(res.headers['etag'], `"${digest}"`, what);
  assert.deepEqual(res.body, bytes, what);
}

async function metric(registry: TestRegistry, line: string): Promise<number> {
  const text = await registry.metrics.registry.metrics();
  const found = text.split('\n').find((l) => l.startsWith(`${line} `));
  return found ? Number(found.slice(line.length + 1)) : 0;
}
const HITS = 'nixyard_manifest_requests_total{cache="hit"}';
const MISSES = 'nixyard_manifest_requests_total{cache="miss"}';

describe('one system: content negotiation on a stored image', () => {
  let registry: TestRegistry;
  let hello: PublishedImage;
  beforeEach(async () => {
    registry = await startRegistry();
    hello = await seedImage(registry.storage, 'hello');
  });
  afterEach(() => registry.close());

  const path = '/v2/hello/manifests/latest';

  test('no Accept: the OCI manifest', async () => {
    assertManifest(await registry.request('GET', path), hello.oci.bytes, OCI);
  });

  test('only Docker schema 2 accepted: the Docker manifest, over the same blobs', async () => {
    const res = await registry.request('GET', path, { accept: DOCKER });
    assertManifest(res, hello.docker.bytes, DOCKER);
    assert.equal(res.headers['docker-content-digest'], hello.record.manifests.docker.digest);
  });

  test('Docker schema 2 and the schema-1 types, OCI not named: Docker', async () => {
    assertManifest(await registry.request('GET', path, { accept: [DOCKER, SCHEMA1_SIGNED, SCHEMA1] }), hello.docker.bytes, DOCKER);
  });

  test("skopeo's six Accept lines: OCI (no index without NIXYARD_INDEX_SYSTEMS)", async () => {
    const res = await registry.request('GET', path, { accept: SKOPEO_ACCEPT });
    assertManifest(res, hello.oci.bytes, OCI);
    assert.equal(res.headers['docker-content-digest'], hello.record.manifests.oci.digest);
  });

  test("containerd's comma-joined Accept: HEAD gives the digest, GET by it gives the OCI manifest", async () => {
    const head = await registry.request('HEAD', path, { accept: CONTAINERD_ACCEPT });
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-type'], OCI);
    assert.equal(head.headers['content-length'], String(hello.oci.bytes.length));
    assert.equal(head.body.length, 0);
    const digest = head.headers['docker-content-digest'] as string;
    assert.equal(digest, hello.oci.descriptor.digest);
    assertManifest(await registry.request('GET', `/v2/hello/manifests/${digest}`, { accept: CONTAINERD_ACCEPT }), hello.oci.bytes, OCI);
  });

  test('a strict OCI client: OCI', async () => {
    assertManifest(await registry.request('GET', path, { accept: OCI }), hello.oci.bytes, OCI);
  });

  test('*/* and parameters: OCI; Docker with a q-value alone: Docker', async () => {
    assertManifest(await registry.request('GET', path, { accept: '*/*' }), hello.oci.bytes, OCI);
    assertManifest(await registry.request('GET', path, { accept: `${DOCKER};q=0.5` }), hello.docker.bytes, DOCKER);
    assertManifest(await registry.request('GET', path, { accept: 'text/html' }), hello.oci.bytes, OCI);
  });

  test('HEAD by tag: the headers of GET, no body', async () => {
    for (const accept of [OCI, DOCKER, CONTAINERD_ACCEPT]) {
      const { get } = await assertHeadLikeGet(registry, path, { accept });
      assert.equal(get.status, 200);
    }
  });

  test('by digest: each manifest under its own type, whatever the Accept; HEAD like GET', async () => {
    for (const doc of [hello.oci, hello.docker]) {
      const byDigest = `/v2/hello/manifests/${doc.descriptor.digest}`;
      for (const accept of [OCI, DOCKER, undefined]) {
        const res = await registry.request('GET', byDigest, accept ? { accept } : {});
        assertManifest(res, doc.bytes, doc.descriptor.mediaType, `${doc.descriptor.mediaType} accepting ${accept}`);
      }
      await assertHeadLikeGet(registry, byDigest);
    }
  });

  test('by digest the name is only checked: any valid name serves any stored manifest', async () => {
    assertManifest(await registry.request('GET', `/v2/shell/jq/manifests/${hello.oci.descriptor.digest}`), hello.oci.bytes, OCI);
  });

  test('a warm image is served without a build job, the package index or the worker count', async () => {
    registry.workers.counts.set('x86_64-linux', 0);
    for (let i = 0; i < 3; i++) assertManifest(await registry.request('GET', path), hello.oci.bytes, OCI);
    assert.equal(registry.builds.jobs.length, 0);
    assert.equal(registry.packageIndex.asked.length, 0);
    assert.equal(await metric(registry, HITS), 3);
    assert.equal(await metric(registry, MISSES), 0);
  });

  test('every spelling of the same image is the same record', async () => {
    const shellJq = await seedImage(registry.storage, 'shell/jq');
    for (const name of ['shell/jq', 'jq/shell', 'jq/bashInteractive/shell/jq', 'coreutils/jq/moreutils/nano/bashInteractive']) {
      assertManifest(await registry.request('GET', `/v2/${name}/manifests/latest`), shellJq.oci.bytes, OCI, name);
    }
    assert.equal(registry.builds.jobs.length, 0);
  });

  test('a query string is ignored', async () => {
    assertManifest(await registry.request('GET', `${path}?ns=docker.io`), hello.oci.bytes, OCI);
  });
});

describe('cold images: one build job, then served from the record', () => {
  let registry: TestRegistry;
  beforeEach(async () => {
    registry = await startRegistry();
  });
  afterEach(() => registry.close());

  test('a cold pull makes exactly one job with the image’s packages, system, source and request id', async () => {
    const before = Date.now();
    const res = await registry.request('GET', '/v2/shell/jq/manifests/latest', { 'x-request-id': 'pull-42' });
    const after = Date.now();
    assert.equal(registry.builds.jobs.length, 1);
    const [job] = registry.builds.jobs;
    const { freshAfter, ...rest } = job!;
    assert.deepEqual(rest, {
      imageKey: jobFor('shell/jq').imageKey,
      packages: ['bashInteractive', 'coreutils', 'jq', 'moreutils', 'nano'],
      system: 'x86_64-linux',
      source: SOURCE,
      revision: PATH_REVISION,
      requestId: 'pull-42',
    });
    // A path is a moving target: the job asks for a record younger than the TTL.
    const fresh = Date.parse(freshAfter!);
    assert.ok(fresh >= before - TTL_SECONDS * 1000 && fresh <= after - TTL_SECONDS * 1000, `freshAfter ${freshAfter}`);
    assert.deepEqual(registry.packageIndex.asked, [
      { source: { identity: `path:${SOURCE.path}`, revision: PATH_REVISION }, system: 'x86_64-linux' },
    ]);
    assertManifest(res, registry.builds.published[0]!.oci.bytes, OCI);

    // Built once: the next pulls, in any spelling, are answered from the record.
    assertManifest(await registry.request('GET', '/v2/jq/shell/manifests/latest'), registry.builds.published[0]!.oci.bytes, OCI);
    assert.equal(registry.builds.jobs.length, 1);
    assert.equal(await metric(registry, MISSES), 1);
    assert.equal(await metric(registry, HITS), 1);
  });

  test('HEAD on a cold manifest builds it like GET (containerd starts with HEAD)', async () => {
    const res = await registry.request('HEAD', '/v2/hello/manifests/latest', { accept: CONTAINERD_ACCEPT });
    assert.equal(registry.builds.jobs.length, 1);
    assert.equal(registry.builds.jobs[0]!.imageKey, jobFor('hello').imageKey);
    const oci = registry.builds.published[0]!.oci;
    assert.equal(res.status, 200);
    assert.equal(res.headers['docker-content-digest'], oci.descriptor.digest);
    assert.equal(res.headers['content-length'], String(oci.bytes.length));
    assert.equal(res.body.length, 0);
  });

  test('a cold pull accepting only Docker gets the Docker manifest of the new build', async () => {
    const res = await registry.request('GET', '/v2/hello/manifests/latest', { accept: DOCKER });
    assertManifest(res, registry.builds.published[0]!.docker.bytes, DOCKER);
  });

  test('arm64 in the name builds for aarch64-linux when the registry serves it', async () => {
    await registry.close();
    registry = await startRegistry({ systems: ['x86_64-linux', 'aarch64-linux'] });
    await registry.request('GET', '/v2/arm64/hello/manifests/latest');
    assert.deepEqual(registry.builds.jobs.map((j) => [j.system, j.packages, j.imageKey]), [
      ['aarch64-linux', ['hello'], jobFor('arm64/hello').imageKey],
    ]);
  });

  test('without an X-Request-Id the job carries the generated one the response names', async () => {
    const res = await registry.request('GET', '/v2/hello/manifests/latest');
    assert.equal(registry.builds.jobs[0]!.requestId, res.headers['x-request-id']);
  });

  test('a package index that knows every top-level name lets the job go ahead', async () => {
    registry.packageIndex.names = new Set(['hello', 'jq', 'xorg']);
    await registry.request('GET', '/v2/hello/xorg.nosuch/manifests/latest');
    assert.deepEqual(registry.builds.jobs.map((j) => j.packages), [['hello', 'xorg.nosuch']]);
  });

  test('unknown top-level names beside a nested one: only Nix can list them all, so the job goes ahead', async () => {
    registry.packageIndex.names = new Set(['hello', 'xorg']);
    await registry.request('GET', '/v2/nosuch/xorg.nosuch/manifests/latest');
    assert.deepEqual(registry.builds.jobs.map((j) => j.packages), [['nosuch', 'xorg.nosuch']]);
  });
});

describe('moving targets: the TTL', () => {
  let registry: TestRegistry;
  beforeEach(async () => {
    registry = await startRegistry();
  });
  afterEach(() => registry.close());

  test('a record older than the TTL is rebuilt, and the new record is served', async () => {
    const old = await seedImage(registry.storage, 'hello', new Date(Date.now() - (TTL_SECONDS + 5) * 1000));
    const res = await registry.request('GET', '/v2/hello/manifests/latest');
    assert.equal(registry.builds.jobs.length, 1);
    assert.equal(registry.builds.jobs[0]!.imageKey, old.job.imageKey);
    const fresh = registry.builds.published[0]!;
    assert.notEqual(fresh.record.createdAt, old.record.createdAt);
    assertManifest(res, fresh.oci.bytes, OCI);
    // The rebuild's record is fresh: no second job.
    await registry.request('GET', '/v2/hello/manifests/latest');
    assert.equal(registry.builds.jobs.length, 1);
  });

  test('a record younger than the TTL is served as it is', async () => {
    const recent = await seedImage(registry.storage, 'hello', new Date(Date.now() - (TTL_SECONDS - 60) * 1000));
    assertManifest(await registry.request('GET', '/v2/hello/manifests/latest'), recent.oci.bytes, OCI);
    assert.equal(registry.builds.jobs.length, 0);
  });

  test('a stale record still answers by digest: digests never go stale', async () => {
    const old = await seedImage(registry.storage, 'hello', new Date(Date.now() - (TTL_SECONDS + 5) * 1000));
    assertManifest(await registry.request('GET', `/v2/hello/manifests/${old.oci.descriptor.digest}`), old.oci.bytes, OCI);
    assert.equal(registry.builds.jobs.length, 0);
  });
});

describe('warm manifests from memory (record-cache.ts, content-cache.ts)', () => {
  test('after the first pull, pulls by tag and by digest read nothing from storage', async () => {
    const storage = new CountingStorage();
    // The storage's cache epoch is looked at once a second; not within this test.
    const registry = await startRegistry({ storage, epochCheckMs: 60_000 });
    try {
      const image = await seedImage(storage, 'hello');
      assertManifest(await registry.request('GET', '/v2/hello/manifests/latest'), image.oci.bytes, OCI);
      assertManifest(await registry.request('GET', `/v2/hello/manifests/${image.docker.descriptor.digest}`, { accept: DOCKER }), image.docker.bytes, DOCKER);
      storage.calls = 0;
      for (let i = 0; i < 3; i++) {
        assertManifest(await registry.request('GET', '/v2/hello/manifests/latest'), image.oci.bytes, OCI);
        assertManifest(await registry.request('GET', `/v2/hello/manifests/${image.oci.descriptor.digest}`), image.oci.bytes, OCI);
        assertManifest(await registry.request('GET', '/v2/hello/manifests/latest', { accept: DOCKER }), image.docker.bytes, DOCKER);
      }
      assert.equal(storage.calls, 0);
    } finally {
      await registry.close();
    }
  });

  test('a cached record past the TTL is looked up again, and a rebuild by another replica is served without a job', async () => {
    const storage = new CountingStorage();
    const registry = await startRegistry({ storage });
    try {
      // Served while fresh, then it ages past the TTL in this replica's memory...
      const old = await seedImage(storage, 'hello', new Date(Date.now() - (TTL_SECONDS - 1) * 1000));
      assertManifest(await registry.request('GET', '/v2/hello/manifests/latest'), old.oci.bytes, OCI);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      // ...while another replica rebuilt it.
      const rebuilt = await seedImage(storage, 'hello');
      assertManifest(await registry.request('GET', '/v2/hello/manifests/latest'), rebuilt.oci.bytes, OCI);
      assert.equal(registry.builds.jobs.length, 0);
    } finally {
      await registry.close();
    }
  });
});

test('after gc announces deletions, a deleted image is looked up again and built, not served from memory', async () => {
  const registry = await startRegistry({ epochCheckMs: 50 });
  try {
    const image = await seedImage(registry.storage, 'hello');
    assertManifest(await registry.request('GET', '/v2/hello/manifests/latest'), image.oci.bytes, OCI);
    await registry.storage.deleteRecord(manifestRecordKey(image.job.imageKey));
    // Deleted behind the replica's back: its copy still answers (the blobs are all still there)...
    assertManifest(await registry.request('GET', '/v2/hello/manifests/latest'), image.oci.bytes, OCI);
    assert.equal(registry.builds.jobs.length, 0);
    // ...until gc announces that it is about to delete blobs.
    await announceDeletion(registry.storage, 60);
    await registry.request('GET', '/v2/hello/manifests/latest');
    assert.equal(registry.builds.jobs.length, 1);
  } finally {
    await registry.close();
  }
});

/** Memory storage that counts the calls a warm pull should not make. */
class CountingStorage extends MemoryStorage {
  calls = 0;
  override async getRecord(key: RecordKey) {
    this.calls++;
    return super.getRecord(key);
  }
  override async statBlob(digest: Digest) {
    this.calls++;
    return super.statBlob(digest);
  }
  override async readBlob(digest: Digest, range?: ByteRange) {
    this.calls++;
    return super.readBlob(digest, range);
  }
}

describe('NIXYARD_INDEX_SYSTEMS with two systems', () => {
  let registry: TestRegistry;
  let amd: PublishedImage;
  let arm: PublishedImage;
  beforeEach(async () => {
    registry = await startRegistry({ systems: ['x86_64-linux', 'aarch64-linux'], indexSystems: ['x86_64-linux', 'aarch64-linux'] });
    amd = await seedImage(registry.storage, 'hello');
    arm = await seedImage(registry.storage, 'arm64/hello');
  });
  afterEach(() => registry.close());

  const path = '/v2/hello/manifests/latest';

  function ociIndex(): Buffer {
    return buildOciIndex([
      { system: 'x86_64-linux', manifest: amd.record.manifests.oci },
      { system: 'aarch64-linux', manifest: arm.record.manifests.oci },
    ]).bytes;
  }

  test("skopeo's Accept: an OCI index of both systems' OCI manifests, stored for a fetch by digest", async () => {
    const expected = ociIndex();
    const res = await registry.request('GET', path, { accept: SKOPEO_ACCEPT });
    assertManifest(res, expected, OCI_INDEX);
    assert.deepEqual(JSON.parse(res.body.toString()), {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI, digest: amd.oci.descriptor.digest, size: amd.oci.bytes.length, platform: { architecture: 'amd64', os: 'linux' } },
        { mediaType: OCI, digest: arm.oci.descriptor.digest, size: arm.oci.bytes.length, platform: { architecture: 'arm64', os: 'linux' } },
      ],
    });
    const digest = sha256Digest(expected);
    assert.equal((await registry.storage.statBlob(digest))?.size, expected.length);
    assertManifest(await registry.request('GET', `/v2/hello/manifests/${digest}`), expected, OCI_INDEX);
    assert.equal(registry.builds.jobs.length, 0);
  });

  test("containerd's Accept: the OCI index; HEAD like GET", async () => {
    assertManifest(await registry.request('GET', path, { accept: CONTAINERD_ACCEPT }), ociIndex(), OCI_INDEX);
    await assertHeadLikeGet(registry, path, { accept: CONTAINERD_ACCEPT });
  });

  test('a client that lists only Docker types, the list among them: a Docker manifest list of the Docker manifests', async () => {
    const expected = buildDockerManifestList([
      { system: 'x86_64-linux', manifest: amd.record.manifests.docker },
      { system: 'aarch64-linux', manifest: arm.record.manifests.docker },
    ]).bytes;
    assertManifest(await registry.request('GET', path, { accept: [DOCKER, DOCKER_LIST] }), expected, DOCKER_LIST);
    assertManifest(await registry.request('GET', `/v2/hello/manifests/${sha256Digest(expected)}`), expected, DOCKER_LIST);
  });

  test('a strict OCI client gets the first system’s manifest, not an index', async () => {
    assertManifest(await registry.request('GET', path, { accept: OCI }), amd.oci.bytes, OCI);
    assertManifest(await registry.request('GET', path), amd.oci.bytes, OCI);
    assertManifest(await registry.request('GET', path, { accept: DOCKER }), amd.docker.bytes, DOCKER);
  });

  test('arm64 in the name picks one system: its manifest even for a client that accepts an index', async () => {
    assertManifest(await registry.request('GET', '/v2/arm64/hello/manifests/latest', { accept: SKOPEO_ACCEPT }), arm.oci.bytes, OCI);
  });

  test('a system without a record is built, one job for it alone, then the index names both', async () => {
    const other = await startRegistry({ systems: ['x86_64-linux', 'aarch64-linux'], indexSystems: ['x86_64-linux', 'aarch64-linux'] });
    try {
      const amdJq = await seedImage(other.storage, 'jq');
      const res = await other.request('GET', '/v2/jq/manifests/latest', { accept: SKOPEO_ACCEPT });
      assert.deepEqual(other.builds.jobs.map((j) => [j.system, j.imageKey]), [['aarch64-linux', jobFor('arm64/jq').imageKey]]);
      const armJq = other.builds.published[0]!;
      const expected = buildOciIndex([
        { system: 'x86_64-linux', manifest: amdJq.record.manifests.oci },
        { system: 'aarch64-linux', manifest: armJq.record.manifests.oci },
      ]).bytes;
      assertManifest(res, expected, OCI_INDEX);
    } finally {
      await other.close();
    }
  });

  test('a single index system is no index: the plain manifest', async () => {
    const single = await startRegistry({ indexSystems: ['x86_64-linux'] });
    try {
      const image = await seedImage(single.storage, 'hello');
      assertManifest(await single.request('GET', path, { accept: SKOPEO_ACCEPT }), image.oci.bytes, OCI);
    } finally {
      await single.close();
    }
  });
});

// The index digest is not a record: it must be found again from the blob alone.
test('an index blob fetched by digest keeps its own media type', async () => {
  const registry = await startRegistry({ systems: ['x86_64-linux', 'aarch64-linux'], indexSystems: ['x86_64-linux', 'aarch64-linux'] });
  try {
    await seedImage(registry.storage, 'hello');
    await seedImage(registry.storage, 'arm64/hello');
    const first = await registry.request('GET', '/v2/hello/manifests/latest', { accept: OCI_INDEX });
    const digest = first.headers['docker-content-digest'] as Digest;
    const again = await registry.request('GET', `/v2/hello/manifests/${digest}`, { accept: DOCKER });
    assertManifest(again, first.body, OCI_INDEX);
  } finally {
    await registry.close();
  }
});
