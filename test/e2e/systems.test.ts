// A heterogeneous farm: per-system queues, the arm64 route, the fast failure when no worker
// builds a system, and multi-architecture tags served as an index.
//
// The aarch64 worker runs on this x86_64 machine with `extra-platforms = aarch64-linux`, a
// test-only Nix setting that lets it build the bundled set's aarch64 derivations (see
// docs/package-set.md).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';
import { DOCKER_MANIFEST_V2, OCI_IMAGE_INDEX, OCI_IMAGE_MANIFEST } from '@nixyard/core';
import { withOfflineNixConfig } from '../../scripts/offline-nix.js';
import { jobCount, metricValue, startStack, type TestStack } from '../helpers/stack.js';

const BOTH = 'x86_64-linux,aarch64-linux';
const STARTED = 'nixyard_builds_total{result="started"}';
const SUCCEEDED = 'nixyard_builds_total{result="succeeded"}';

let stack: TestStack;
let armWorker: { metricsUrl: string } | undefined;
before(async () => {
  stack = await startStack({
    apiEnv: { NIXYARD_SYSTEMS: BOTH, NIXYARD_INDEX_SYSTEMS: BOTH },
    workers: [{ NIXYARD_SYSTEMS: 'x86_64-linux' }],
  });
});
after(async () => {
  await stack?.stop();
});

function skopeoInspect(...args: string[]): Record<string, unknown> {
  return JSON.parse(execFileSync('skopeo', ['inspect', '--tls-verify=false', ...args], { encoding: 'utf8' })) as Record<string, unknown>;
}

test('with no worker for a system, its pull fails at once with 503 and enqueues nothing', async () => {
  const jobs = await jobCount(stack.redis.url, 'aarch64-linux');
  const started = performance.now();
  const res = await fetch(`http://${stack.registry}/v2/arm64/hello/manifests/latest`);
  const elapsed = performance.now() - started;
  assert.equal(res.status, 503);
  const body = (await res.json()) as { errors: Array<{ code: string; message: string }> };
  assert.equal(body.errors[0]!.code, 'UNAVAILABLE');
  assert.match(body.errors[0]!.message, /aarch64-linux/);
  // Only tells "at once" from "after waiting on a build" (NIX_TIMEOUT is 600 s here): generous, so
  // a busy machine's slow answer is not mistaken for the latter.
  assert.ok(elapsed < 60_000, `answered in ${elapsed.toFixed(0)} ms, not after a build timeout`);
  assert.equal(await jobCount(stack.redis.url, 'aarch64-linux'), jobs);
});

test('arm64/hello goes to the aarch64 queue: the x86_64 worker never takes it, an aarch64 worker builds it', async () => {
  armWorker = await stack.addWorker({
    NIXYARD_SYSTEMS: 'aarch64-linux',
    NIX_CONFIG: withOfflineNixConfig({ NIX_CONFIG: 'extra-platforms = aarch64-linux' }).NIX_CONFIG!,
  });
  const x86Started = await metricValue(stack.workerMetricsUrl, STARTED);

  const res = await fetch(`http://${stack.registry}/v2/arm64/hello/manifests/latest`, { headers: { Accept: OCI_IMAGE_MANIFEST } });
  assert.equal(res.status, 200);
  const manifest = (await res.json()) as { config: { digest: string } };
  const config = (await (await fetch(`http://${stack.registry}/v2/arm64/hello/blobs/${manifest.config.digest}`)).json()) as { architecture: string; os: string };
  assert.deepEqual([config.architecture, config.os], ['arm64', 'linux']);

  assert.equal(await metricValue(stack.workerMetricsUrl, STARTED), x86Started, 'the x86_64 worker built nothing');
  assert.equal(await metricValue(armWorker.metricsUrl, SUCCEEDED), 1, 'the aarch64 worker built it');
});

test('a multi-architecture tag: an index for clients that accept one, the first system for the rest', async () => {
  const ref = `docker://${stack.registry}/hello:latest`;
  const raw = JSON.parse(execFileSync('skopeo', ['inspect', '--raw', '--tls-verify=false', ref], { encoding: 'utf8' })) as {
    mediaType: string;
    manifests: Array<{ digest: string; platform: { architecture: string; os: string } }>;
  };
  assert.equal(raw.mediaType, OCI_IMAGE_INDEX);
  assert.deepEqual(raw.manifests.map((m) => m.platform), [
    { architecture: 'amd64', os: 'linux' },
    { architecture: 'arm64', os: 'linux' },
  ]);

  // skopeo picks the arm64 entry: the very image that arm64/hello names.
  const arm = skopeoInspect('--override-arch', 'arm64', ref);
  assert.equal(arm.Architecture, 'arm64');
  const armDirect = await fetch(`http://${stack.registry}/v2/arm64/hello/manifests/latest`, { headers: { Accept: OCI_IMAGE_MANIFEST } });
  assert.equal(armDirect.headers.get('docker-content-digest'), raw.manifests[1]!.digest, 'the index names the arm64/hello image');
  const armManifest = (await armDirect.json()) as { layers: Array<{ digest: string }> };
  assert.deepEqual(arm.Layers, armManifest.layers.map((l) => l.digest));

  const amd = skopeoInspect('--override-arch', 'amd64', ref);
  assert.equal(amd.Architecture, 'amd64');

  // A client that accepts no index gets the first system's image.
  for (const accept of [OCI_IMAGE_MANIFEST, DOCKER_MANIFEST_V2]) {
    const res = await fetch(`http://${stack.registry}/v2/hello/manifests/latest`, { headers: { Accept: accept } });
    assert.equal(res.headers.get('content-type'), accept);
    const body = (await res.json()) as { config: { digest: string } };
    const config = (await (await fetch(`http://${stack.registry}/v2/hello/blobs/${body.config.digest}`)).json()) as { architecture: string };
    assert.equal(config.architecture, 'amd64');
  }
});
