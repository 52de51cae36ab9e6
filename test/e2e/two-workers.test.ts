// Two worker processes build images that share most of their layers, at the same time, into
// one storage: every layer ends up as exactly one blob, and no job fails.

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { LayerRecordSchema, ManifestRecordSchema, OCI_IMAGE_MANIFEST } from '@nixyard/core';
import { jobCounts, metricValue, startStack, type TestStack } from '../helpers/stack.js';

let stack: TestStack;
before(async () => {
  stack = await startStack({ workers: 2 });
});
after(async () => {
  await stack?.stop();
});

function records(prefix: string): unknown[] {
  const dir = join(stack.storagePath, prefix);
  return readdirSync(dir).map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')) as unknown);
}

test('concurrent builds of overlapping images on two workers leave one blob per layer', async () => {
  const images = ['shell/jq', 'shell/curl', 'shell/hello', 'shell/busybox'];
  const responses = await Promise.all(
    images.map((name) => fetch(`http://${stack.registry}/v2/${name}/manifests/latest`, { headers: { Accept: OCI_IMAGE_MANIFEST } })),
  );
  assert.deepEqual(responses.map((r) => r.status), images.map(() => 200));

  const counts = await jobCounts(stack.redis.url);
  assert.equal(counts.failed, 0, 'no failed job');
  const perWorker = await Promise.all(stack.workerMetricsUrls.map((url) => metricValue(url, 'nixyard_builds_total{result="succeeded"}')));
  assert.ok(perWorker.every((n) => n > 0), `both workers built (${perWorker.join(', ')})`);

  // Every layer key has one record, so one digest; and no blob exists that no record names,
  // which is what a lost race writing a second copy of a layer would leave behind.
  const manifests = records('manifests').map((r) => ManifestRecordSchema.parse(r));
  const layers = records('layers').map((r) => LayerRecordSchema.parse(r));
  const referenced = new Set<string>();
  for (const m of manifests) {
    [m.config.digest, m.manifests.oci.digest, m.manifests.docker.digest, ...m.layers.map((l) => l.digest)].forEach((d) => referenced.add(d));
  }
  for (const layer of layers) assert.ok(referenced.has(layer.digest), `layer ${layer.layerKey} is used by a manifest`);
  const blobs = readdirSync(join(stack.storagePath, 'blobs', 'sha256')).map((hex) => `sha256:${hex}`);
  assert.deepEqual(blobs.sort(), [...referenced].sort());
  assert.equal(new Set(layers.map((l) => l.digest)).size, layers.length, 'no two layer records share a blob');

  const shell = manifests.map((m) => new Set(m.layers.map((l) => l.digest)));
  const sharedByAll = [...shell[0]!].filter((d) => shell.every((s) => s.has(d)));
  assert.ok(sharedByAll.length >= 5, `the images share their shell layers (${sharedByAll.length})`);
});
