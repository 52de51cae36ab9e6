import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseIndexFormat, chooseManifestFormat } from '../src/accept.js';
import { parseRegistryPath } from '../src/registry-path.js';

const OCI = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER = 'application/vnd.docker.distribution.manifest.v2+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';

test('registry paths are split from the end, so names may hold slashes', () => {
  assert.deepEqual(parseRegistryPath('/v2/'), { kind: 'base' });
  assert.deepEqual(parseRegistryPath('/v2/shell/git/htop/manifests/latest'), { kind: 'manifest', name: 'shell/git/htop', reference: 'latest' });
  assert.deepEqual(parseRegistryPath('/v2/a/manifests/b/manifests/c'), { kind: 'manifest', name: 'a/manifests/b', reference: 'c' });
  assert.deepEqual(parseRegistryPath('/v2/x/blobs/sha256:zz'), { kind: 'blob', name: 'x', digest: 'sha256:zz' });
  assert.deepEqual(parseRegistryPath('/v2/shell/jq/tags/list'), { kind: 'tags', name: 'shell/jq' });
  assert.equal(parseRegistryPath('/v2/hello'), undefined);
  assert.equal(parseRegistryPath('/v2/hello/manifests/'), undefined);
  assert.equal(parseRegistryPath('/v3/hello/manifests/latest'), undefined);
});

test('OCI is served unless the client asks only for Docker schema 2', () => {
  assert.equal(chooseManifestFormat(undefined), 'oci');
  assert.equal(chooseManifestFormat(`${DOCKER}, ${OCI}`), 'oci');
  assert.equal(chooseManifestFormat([DOCKER, 'application/vnd.docker.distribution.manifest.v1+prettyjws']), 'docker');
  assert.equal(chooseManifestFormat(`${DOCKER};q=0.9`), 'docker');
  assert.equal(chooseManifestFormat('*/*'), 'oci');
});

test('an index only for clients that ask for one', () => {
  assert.equal(chooseIndexFormat(undefined), undefined);
  assert.equal(chooseIndexFormat(`${OCI}, ${DOCKER}`), undefined);
  assert.equal(chooseIndexFormat([OCI, DOCKER, DOCKER_LIST, OCI_INDEX]), 'oci');
  assert.equal(chooseIndexFormat(DOCKER_LIST), 'docker');
});
