import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { buildDockerManifestList, buildOciIndex } from '../src/image-index.js';

const amd = { system: 'x86_64-linux' as const, manifest: { digest: `sha256:${'a'.repeat(64)}` as const, size: 100 } };
const arm = { system: 'aarch64-linux' as const, manifest: { digest: `sha256:${'b'.repeat(64)}` as const, size: 200 } };

test('the OCI index lists one manifest per system with its platform, in order', () => {
  const built = buildOciIndex([amd, arm]);
  assert.equal(
    built.bytes.toString(),
    '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[' +
      `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:${'a'.repeat(64)}","size":100,"platform":{"architecture":"amd64","os":"linux"}},` +
      `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:${'b'.repeat(64)}","size":200,"platform":{"architecture":"arm64","os":"linux"}}]}`,
  );
  assert.equal(built.descriptor.digest, `sha256:${createHash('sha256').update(built.bytes).digest('hex')}`);
  assert.equal(built.descriptor.mediaType, 'application/vnd.oci.image.index.v1+json');
});

test('the Docker manifest list names Docker manifests', () => {
  const doc = JSON.parse(buildDockerManifestList([arm]).bytes.toString()) as { mediaType: string; manifests: Array<{ mediaType: string; platform: unknown }> };
  assert.equal(doc.mediaType, 'application/vnd.docker.distribution.manifest.list.v2+json');
  assert.equal(doc.manifests[0]!.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
  assert.deepEqual(doc.manifests[0]!.platform, { architecture: 'arm64', os: 'linux' });
});

test('an index needs a manifest', () => {
  assert.throws(() => buildOciIndex([]), RangeError);
});
