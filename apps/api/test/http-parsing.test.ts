// The pure parts of the HTTP layer: splitting a /v2/ path into its resource and the metrics route
// label (core's registry-path.ts), and content negotiation (accept.ts). The same
// behaviour over HTTP is in registry-api-*.test.ts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  HTTP_ROUTE_LABELS,
  REGISTRY_ROUTE_KINDS,
  httpRouteOf,
  parseRegistryPath,
  parseUnservedPath,
  type RegistryPath,
  type RegistryRouteKind,
} from '@nixyard/core';
import { acceptedMediaTypes, chooseIndexFormat, chooseManifestFormat } from '../src/accept.js';

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

const SCHEMA1_SIGNED = 'application/vnd.docker.distribution.manifest.v1+prettyjws';
const SCHEMA1 = 'application/vnd.docker.distribution.manifest.v1+json';
const SKOPEO = [OCI, DOCKER, SCHEMA1_SIGNED, SCHEMA1, DOCKER_LIST, OCI_INDEX];
const CONTAINERD = `${DOCKER}, ${DOCKER_LIST}, ${OCI}, ${OCI_INDEX}, */*`;

/** One parse per route kind; the Record type makes a new kind fail to compile until it has one. */
const PARSED: Record<RegistryRouteKind, [string, RegistryPath]> = {
  base: ['/v2', { kind: 'base' }],
  manifest: ['/v2/arm64/shell/manifests/sha256:ab', { kind: 'manifest', name: 'arm64/shell', reference: 'sha256:ab' }],
  blob: ['/v2/a/blobs/blobs/sha256:ab', { kind: 'blob', name: 'a/blobs', digest: 'sha256:ab' }],
  tags: ['/v2/tags/list/tags/list', { kind: 'tags', name: 'tags/list' }],
};

test('every route kind parses, and each is the routeOf label of its paths', () => {
  assert.deepEqual(Object.keys(PARSED).sort(), [...REGISTRY_ROUTE_KINDS].sort());
  for (const kind of REGISTRY_ROUTE_KINDS) {
    const [path, expected] = PARSED[kind];
    assert.deepEqual(parseRegistryPath(path), expected, path);
    assert.equal(httpRouteOf(path), kind, path);
  }
});

test('paths that are no resource', () => {
  for (const path of ['/v2/hello/blobs/uploads/', '/v2/hello/tags/list/', '/v2/hello/manifests/latest/', '/v2//manifests/latest', '/v2/tags/list', '/v2x', '']) {
    assert.equal(parseRegistryPath(path), undefined, path);
  }
});

test('the spec endpoints that are no route: uploads, upload sessions, referrers', () => {
  assert.deepEqual(parseUnservedPath('/v2/shell/jq/blobs/uploads/'), { kind: 'uploads', name: 'shell/jq' });
  assert.deepEqual(parseUnservedPath('/v2/hello/blobs/uploads/0f6a1c1e'), { kind: 'upload', name: 'hello', session: '0f6a1c1e' });
  assert.deepEqual(parseUnservedPath('/v2/a/b/referrers/sha256:ab'), { kind: 'referrers', name: 'a/b', digest: 'sha256:ab' });
  // A route is never one of them: "uploads" after blobs/ is a (malformed) digest.
  for (const path of ['/v2/hello/blobs/uploads', '/v2/hello/manifests/latest', '/v2/', '/v2/hello/blobs/uploads/a/b', '/v2/hello/referrers/', '/v2/blobs/uploads/']) {
    assert.equal(parseUnservedPath(path), undefined, path);
  }
  assert.equal(httpRouteOf('/v2/hello/blobs/uploads/'), 'other');
  assert.equal(httpRouteOf('/v2/hello/referrers/sha256:ab'), 'other');
});

test('routeOf: low-cardinality labels for everything else', () => {
  assert.equal(httpRouteOf('/'), 'page');
  assert.equal(httpRouteOf('/healthz'), 'healthz');
  assert.equal(httpRouteOf('/readyz'), 'readyz');
  assert.equal(httpRouteOf('/metrics'), 'metrics');
  assert.equal(httpRouteOf('/api/v1/prebuilds/abc'), 'admin');
  assert.equal(httpRouteOf('/v2/hello'), 'other');
  assert.equal(httpRouteOf('/favicon.ico'), 'other');
  assert.deepEqual(HTTP_ROUTE_LABELS, ['page', 'healthz', 'readyz', 'metrics', 'admin', 'token', 'base', 'manifest', 'blob', 'tags', 'other']);
});

test('Accept lists: several headers, parameters, case and blanks', () => {
  assert.deepEqual(acceptedMediaTypes(undefined), []);
  assert.deepEqual(acceptedMediaTypes(''), []);
  assert.deepEqual(acceptedMediaTypes(['A/B; q=0.5', ' c/d ,, e/f']), ['a/b', 'c/d', 'e/f']);
});

test('real clients: skopeo and containerd get OCI, and an index when they may', () => {
  assert.equal(chooseManifestFormat(SKOPEO), 'oci');
  assert.equal(chooseManifestFormat(SKOPEO.join(', ')), 'oci');
  assert.equal(chooseManifestFormat(CONTAINERD), 'oci');
  assert.equal(chooseIndexFormat(SKOPEO), 'oci');
  assert.equal(chooseIndexFormat(CONTAINERD), 'oci');
  assert.equal(chooseManifestFormat(OCI), 'oci');
  assert.equal(chooseIndexFormat(OCI), undefined);
  assert.equal(chooseManifestFormat([DOCKER, DOCKER_LIST]), 'docker');
  assert.equal(chooseIndexFormat([DOCKER, DOCKER_LIST]), 'docker');
  assert.equal(chooseManifestFormat('text/html'), 'oci');
  assert.equal(chooseManifestFormat(DOCKER.toUpperCase()), 'docker');
});
