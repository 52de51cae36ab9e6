// The pull path end to end: real API and worker processes, a private Redis, real Nix on the
// bundled set, real storage, and real OCI clients (skopeo, umoci) pulling over HTTP. One suite,
// run unchanged against every storage set-up (pull.test.ts, pull-s3.test.ts): it reaches storage
// only through the Storage interface.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ManifestRecordSchema, OCI_IMAGE_MANIFEST, DOCKER_MANIFEST_V2, parseImageName, buildJobFor, manifestRecordKey, PATH_REVISION } from '@nixyard/core';
import { BUNDLED_SET } from '../helpers/bundled-set.js';
import { tempDir } from '../helpers/temp-dir.js';
import { jobCount, metricValue, rawRequest, startStack, type TestStack } from '../helpers/stack.js';

const CHROOT = existsSync('/usr/sbin/chroot') ? '/usr/sbin/chroot' : 'chroot';
const NIX_BUILDS_STARTED = 'nixyard_builds_total{result="started"}';
const MANIFEST_HITS = 'nixyard_manifest_requests_total{cache="hit"}';
const MANIFEST_MISSES = 'nixyard_manifest_requests_total{cache="miss"}';

export interface PullSuiteSetup {
  /** Variables for every process of the stack (e.g. the S3 backend's). */
  env: Record<string, string>;
  cleanup(): Promise<void>;
}

export interface PullSuiteOptions {
  /** Blob GETs are answered 307 to the object store (S3 with presigned URLs). */
  blobRedirects?: boolean;
}

export function pullSuite(label: string, setUp: () => Promise<PullSuiteSetup>, options: PullSuiteOptions = {}): void {
describe(`the pull path on ${label}`, () => {
let stack: TestStack;
let setup: PullSuiteSetup | undefined;
const work = tempDir('e2e-pull');

before(async () => {
  setup = await setUp();
  stack = await startStack({ env: setup.env });
});
after(async () => {
  await stack?.stop();
  await setup?.cleanup();
  work.cleanup();
});

function skopeo(...args: string[]): string {
  return execFileSync('skopeo', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 });
}

/** skopeo copy → umoci unpack; returns the rootfs and the image's Env. */
let pulls = 0;
function pullAndUnpack(name: string): { rootfs: string; env: string[] } {
  const layout = join(work.path, `${name.replaceAll('/', '_')}-${++pulls}`);
  skopeo('copy', '--src-tls-verify=false', `docker://${stack.registry}/${name}:latest`, `oci:${layout}:latest`);
  const bundle = `${layout}-bundle`;
  execFileSync('umoci', ['unpack', '--image', `${layout}:latest`, bundle], { stdio: 'pipe' });
  const runtime = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as { process: { env: string[] } };
  return { rootfs: join(bundle, 'rootfs'), env: runtime.process.env };
}

function runInImage(image: { rootfs: string; env: string[] }, args: string[]): string {
  const path = image.env.find((e) => e.startsWith('PATH='));
  assert.ok(path, 'the image config sets PATH');
  return execFileSync('env', ['-i', path, CHROOT, image.rootfs, ...args], { encoding: 'utf8' });
}

async function storedRecord(name: string) {
  const spec = parseImageName(name);
  const job = buildJobFor({ spec, source: { kind: 'path', path: BUNDLED_SET }, revision: PATH_REVISION });
  return ManifestRecordSchema.parse(await stack.storage.getRecord(manifestRecordKey(job.imageKey)));
}

describe('pulling with real clients', () => {
  test('shell/jq: skopeo copy, umoci unpack, then jq and bash run inside the rootfs', () => {
    const image = pullAndUnpack('shell/jq');
    assert.match(runInImage(image, ['jq', '--version']), /^jq-1\.\d/);
    assert.equal(runInImage(image, ['bash', '-c', 'echo ok']), 'ok\n');
  });

  test('hello: the same', () => {
    const image = pullAndUnpack('hello');
    assert.equal(runInImage(image, ['hello']), 'Hello, world!\n');
  });

  test('skopeo inspect lists the recorded layers; a second pull starts no job and no build', async () => {
    const record = await storedRecord('shell/jq');
    const inspected = JSON.parse(skopeo('inspect', '--tls-verify=false', `docker://${stack.registry}/shell/jq:latest`)) as { Layers: string[] };
    assert.deepEqual(inspected.Layers, record.layers.map((l) => l.digest));

    const [builds, hits, misses, jobs] = [
      await metricValue(stack.workerMetricsUrl, NIX_BUILDS_STARTED),
      await metricValue(stack.apiMetricsUrl, MANIFEST_HITS),
      await metricValue(stack.apiMetricsUrl, MANIFEST_MISSES),
      await jobCount(stack.redis.url),
    ];
    assert.ok(builds >= 2, 'the two pulls above built');
    pullAndUnpack('shell/jq');
    assert.equal(await metricValue(stack.workerMetricsUrl, NIX_BUILDS_STARTED), builds, 'no new Nix build');
    assert.equal(await metricValue(stack.apiMetricsUrl, MANIFEST_MISSES), misses, 'no miss, so no job was enqueued');
    assert.equal(await jobCount(stack.redis.url), jobs, 'no new job');
    assert.ok((await metricValue(stack.apiMetricsUrl, MANIFEST_HITS)) > hits, 'answered from the stored manifest');
  });
});

describe('de-duplication', () => {
  test('50 concurrent pulls of a never-built image: one Nix build, 50 identical manifests', async () => {
    const before = await metricValue(stack.workerMetricsUrl, NIX_BUILDS_STARTED);
    const responses = await Promise.all(
      Array.from({ length: 50 }, () =>
        fetch(`http://${stack.registry}/v2/busybox/iana-etc/manifests/latest`, { headers: { Accept: OCI_IMAGE_MANIFEST } }).then(async (r) => ({
          status: r.status,
          digest: r.headers.get('docker-content-digest'),
          body: await r.text(),
        })),
      ),
    );
    assert.deepEqual(new Set(responses.map((r) => r.status)), new Set([200]));
    assert.equal(new Set(responses.map((r) => r.body)).size, 1, 'identical manifests');
    assert.equal(new Set(responses.map((r) => r.digest)).size, 1, 'identical digests');
    assert.equal((await metricValue(stack.workerMetricsUrl, NIX_BUILDS_STARTED)) - before, 1, 'exactly one Nix build');
  });
});

describe('manifests and blobs over HTTP', () => {
  test('Accept picks OCI or Docker schema 2; HEAD carries digest, type and length', async () => {
    const base = `http://${stack.registry}/v2/hello/manifests/latest`;
    const oci = await fetch(base, { headers: { Accept: OCI_IMAGE_MANIFEST } });
    const ociBody = Buffer.from(await oci.arrayBuffer());
    assert.equal(oci.headers.get('content-type'), OCI_IMAGE_MANIFEST);
    assert.equal(oci.headers.get('docker-content-digest'), `sha256:${createHash('sha256').update(ociBody).digest('hex')}`);

    const docker = await fetch(base, { headers: { Accept: DOCKER_MANIFEST_V2 } });
    const dockerBody = JSON.parse(await docker.text()) as { mediaType: string; layers: Array<{ digest: string }> };
    assert.equal(docker.headers.get('content-type'), DOCKER_MANIFEST_V2);
    assert.equal(dockerBody.mediaType, DOCKER_MANIFEST_V2);
    const ociLayers = (JSON.parse(ociBody.toString()) as { layers: Array<{ digest: string }> }).layers.map((l) => l.digest);
    assert.deepEqual(dockerBody.layers.map((l) => l.digest), ociLayers, 'both formats share the layers');

    // containerd: HEAD with one comma-separated Accept, then GET by digest.
    const head = await fetch(base, { method: 'HEAD', headers: { Accept: `${DOCKER_MANIFEST_V2}, ${OCI_IMAGE_MANIFEST}` } });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(ociBody.length));
    const digest = head.headers.get('docker-content-digest')!;
    const byDigest = await fetch(`http://${stack.registry}/v2/hello/manifests/${digest}`);
    assert.deepEqual(Buffer.from(await byDigest.arrayBuffer()), ociBody);
    assert.equal(byDigest.headers.get('content-type'), OCI_IMAGE_MANIFEST);
  });

  test('blobs: HEAD, full GET and a single Range answered 206', async () => {
    const record = await storedRecord('hello');
    const layer = record.layers[0]!;
    const url = `http://${stack.registry}/v2/hello/blobs/${layer.digest}`;
    const head = await fetch(url, { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), String(layer.size));
    assert.equal(head.headers.get('docker-content-digest'), layer.digest);
    assert.equal(head.headers.get('accept-ranges'), 'bytes');
    const full = Buffer.from(await (await fetch(url)).arrayBuffer());
    assert.equal(`sha256:${createHash('sha256').update(full).digest('hex')}`, layer.digest);
    const ranged = await fetch(url, { headers: { Range: 'bytes=10-19' } });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get('content-range'), `bytes 10-19/${layer.size}`);
    assert.deepEqual(Buffer.from(await ranged.arrayBuffer()), full.subarray(10, 20));
  });

  test(options.blobRedirects ? 'blob GETs redirect to the object store' : 'blob GETs are streamed by the API', async () => {
    const layer = (await storedRecord('hello')).layers[0]!;
    const res = await fetch(`http://${stack.registry}/v2/hello/blobs/${layer.digest}`, { redirect: 'manual' });
    await res.arrayBuffer();
    assert.equal(res.status, options.blobRedirects ? 307 : 200);
    assert.equal(res.headers.get('docker-content-digest'), layer.digest);
    if (options.blobRedirects) assert.ok(new URL(res.headers.get('location')!).pathname.endsWith(layer.digest.slice('sha256:'.length)));
  });

  test('tags/list names the tag', async () => {
    const res = await fetch(`http://${stack.registry}/v2/shell/jq/tags/list`);
    assert.deepEqual(await res.json(), { name: 'shell/jq', tags: ['latest'] });
  });
});

describe('errors', () => {
  async function manifestError(name: string) {
    const res = await fetch(`http://${stack.registry}/v2/${name}/manifests/latest`);
    const body = (await res.json()) as { errors: Array<{ code: string; message: string; detail: unknown }> };
    return { status: res.status, error: body.errors[0]! };
  }

  test('unknown packages: 404 MANIFEST_UNKNOWN naming them, from the package index without a job', async () => {
    const jobs = await jobCount(stack.redis.url);
    const { status, error } = await manifestError('hello/nosuchpkg');
    assert.equal(status, 404);
    assert.equal(error.code, 'MANIFEST_UNKNOWN');
    assert.match(error.message, /nosuchpkg/);
    assert.deepEqual(error.detail, { packages: ['nosuchpkg'] });
    assert.equal(await jobCount(stack.redis.url), jobs, 'the index answered: no job');
  });

  test('unknown nested packages are found by Nix, every one named, nothing built', async () => {
    const built = await metricValue(stack.workerMetricsUrl, 'nixyard_builds_total{result="succeeded"}');
    const { status, error } = await manifestError('hello/nosuchpkg/xorg.nosuch');
    assert.equal(status, 404);
    assert.equal(error.code, 'MANIFEST_UNKNOWN');
    assert.deepEqual(error.detail, { packages: ['nosuchpkg', 'xorg.nosuch'] });
    assert.equal(await metricValue(stack.workerMetricsUrl, 'nixyard_builds_total{result="succeeded"}'), built);
  });

  // As the distribution spec's endpoint table lists (apps/api/test/spec-endpoints.test.ts pins them all).
  test('malformed names, digests and push verbs are refused before the queue', async () => {
    const jobs = await jobCount(stack.redis.url);
    const cases: Array<[string, string, number, string]> = [
      ['GET', '/v2/hel"lo/manifests/latest', 404, 'NAME_UNKNOWN'],
      ['GET', '/v2/${builtins.abort}/manifests/latest', 404, 'NAME_UNKNOWN'],
      ['GET', '/v2/hello/../etc/manifests/latest', 404, 'NAME_UNKNOWN'],
      ['GET', `/v2/${Array.from({ length: 65 }, (_, i) => `p${i}`).join('/')}/manifests/latest`, 404, 'NAME_UNKNOWN'],
      ['HEAD', '/v2/hel"lo/manifests/latest', 404, ''],
      ['GET', '/v2/x/blobs/sha256:zz', 404, 'BLOB_UNKNOWN'],
      ['GET', `/v2/x/blobs/sha256:${'0'.repeat(64)}`, 404, 'BLOB_UNKNOWN'],
      ['GET', `/v2/hello/manifests/sha256:${'0'.repeat(64)}`, 404, 'MANIFEST_UNKNOWN'],
      ['GET', '/v2/hello/manifests/-bad-tag', 404, 'MANIFEST_UNKNOWN'],
      ['PUT', '/v2/hello/manifests/latest', 404, 'NAME_UNKNOWN'],
      ['POST', '/v2/hello/blobs/uploads/', 404, 'NAME_UNKNOWN'],
      ['PATCH', '/v2/hello/blobs/uploads/0f6a1c1e-5ef8-4a40-a5f6-0d9f0a5f1a8b', 404, 'BLOB_UPLOAD_UNKNOWN'],
      ['DELETE', `/v2/hello/blobs/sha256:${'0'.repeat(64)}`, 405, 'UNSUPPORTED'],
      ['GET', '/v2/hello/nothing-here', 404, 'NAME_UNKNOWN'],
      ['GET', '/no/such/route', 404, 'NAME_UNKNOWN'],
    ];
    for (const [method, path, status, code] of cases) {
      const res = await rawRequest(stack.registry, method, path);
      assert.equal(res.status, status, `${method} ${path}`);
      if (method !== 'HEAD') {
        assert.equal(res.headers['content-type'], 'application/json', `${method} ${path} answers JSON`);
        const body = JSON.parse(res.body.toString()) as { errors: Array<{ code: string }> };
        assert.equal(body.errors[0]!.code, code, `${method} ${path}`);
      }
    }
    assert.equal(await jobCount(stack.redis.url), jobs, 'none of these reached the queue');
  });
});

describe('storage integrity', () => {
  test('every blob written by the suite hashes to its name', async () => {
    let count = 0;
    for await (const blob of stack.storage.listBlobs()) {
      const hash = createHash('sha256');
      for await (const chunk of (await stack.storage.readBlob(blob.digest))!) hash.update(chunk as Buffer);
      assert.equal(`sha256:${hash.digest('hex')}`, blob.digest);
      count += 1;
    }
    assert.ok(count > 10, 'the suite wrote blobs');
  });
});
});
}
