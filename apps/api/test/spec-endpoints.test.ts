// Every endpoint of the OCI distribution spec's table (spec.md, "API" › "Endpoints", end-1 to
// end-14), in-process: what the registry answers each way it can be asked there, and that every
// status is one the table lists for that endpoint, or one the spec allows on any endpoint
// (registry-errors.ts in core says where). Then tags/list's pagination (`n`, `last`, Link) over a
// source with many tags. The spec's numbers are spelled out here, not imported: a slip in the
// code must fail these tests, not agree with them.

import assert from 'node:assert/strict';
import type { OutgoingHttpHeaders } from 'node:http';
import { after, before, describe, test } from 'node:test';
import { RegistryError } from '@nixyard/core';
import { SourceResolver } from '../src/source-resolver.js';
import { UNKNOWN_DIGEST, json, seedImage, startRegistry, type PublishedImage, type Response, type TestRegistry } from './registry-fixture.js';

type EndpointId =
  | 'end-1' | 'end-2' | 'end-3' | 'end-4a' | 'end-4b' | 'end-5' | 'end-6' | 'end-7' | 'end-8a' | 'end-8b'
  | 'end-9' | 'end-10' | 'end-11' | 'end-12a' | 'end-12b' | 'end-13' | 'end-14';

/** The table's Success and Failure columns (distribution-spec v1.1). */
const TABLE: Record<EndpointId, { success: number[]; failure: number[] }> = {
  'end-1': { success: [200], failure: [404, 401] },
  'end-2': { success: [200], failure: [404] },
  'end-3': { success: [200], failure: [404] },
  'end-4a': { success: [202], failure: [404] },
  'end-4b': { success: [201, 202], failure: [404, 400] },
  'end-5': { success: [202], failure: [404, 416] },
  'end-6': { success: [201], failure: [404, 400] },
  'end-7': { success: [201], failure: [404, 413] },
  'end-8a': { success: [200], failure: [404] },
  'end-8b': { success: [200], failure: [404] },
  'end-9': { success: [202], failure: [404, 400, 405] },
  'end-10': { success: [202], failure: [404, 400, 405] },
  'end-11': { success: [201, 202], failure: [404] },
  'end-12a': { success: [200], failure: [404, 400] },
  'end-12b': { success: [200], failure: [404, 400] },
  'end-13': { success: [204], failure: [404] },
  'end-14': { success: [204], failure: [404, 400] },
};

/**
 * Beside the table: authentication, authorization and rate limits on every endpoint, server
 * errors (5xx), and for blobs the range answers of the spec's detail.md ("Fetch Blob Part").
 */
const ANY_ENDPOINT = [401, 403, 429];
const BLOB_RANGES = [206, 416];

function allowed(id: EndpointId, status: number): boolean {
  const { success, failure } = TABLE[id];
  return success.includes(status) || failure.includes(status) || ANY_ENDPOINT.includes(status) || status >= 500 || (id === 'end-2' && BLOB_RANGES.includes(status));
}

interface Case {
  id: EndpointId;
  what: string;
  method: string;
  path: string | ((image: PublishedImage) => string);
  headers?: OutgoingHttpHeaders;
  status: number;
  /** The error code, for an error. */
  code?: string;
  setUp?(registry: TestRegistry): void;
}

const UPLOAD = '/v2/hello/blobs/uploads/0f6a1c1e-5ef8-4a40-a5f6-0d9f0a5f1a8b';
const NO_PUSHES = 'this registry builds its images itself and accepts no pushes';

const CASES: Case[] = [
  // end-1: the version check.
  { id: 'end-1', what: 'the version check', method: 'GET', path: '/v2/', status: 200 },

  // end-2: blobs, GET and HEAD. A value outside the grammar names no blob: 404.
  { id: 'end-2', what: 'a stored blob', method: 'GET', path: (image) => `/v2/hello/blobs/${image.layers[0]!.digest}`, status: 200 },
  { id: 'end-2', what: 'a range of a stored blob', method: 'GET', path: (image) => `/v2/hello/blobs/${image.layers[0]!.digest}`, headers: { range: 'bytes=0-9' }, status: 206 },
  { id: 'end-2', what: 'an unsatisfiable range', method: 'GET', path: (image) => `/v2/hello/blobs/${image.layers[0]!.digest}`, headers: { range: 'bytes=99999999-' }, status: 416 },
  { id: 'end-2', what: 'an unknown digest', method: 'GET', path: `/v2/hello/blobs/${UNKNOWN_DIGEST}`, status: 404, code: 'BLOB_UNKNOWN' },
  { id: 'end-2', what: 'a malformed digest', method: 'GET', path: '/v2/hello/blobs/sha256:zz', status: 404, code: 'BLOB_UNKNOWN' },
  { id: 'end-2', what: 'another algorithm', method: 'GET', path: `/v2/hello/blobs/sha512:${'0'.repeat(128)}`, status: 404, code: 'BLOB_UNKNOWN' },
  { id: 'end-2', what: '"uploads" as the digest', method: 'GET', path: '/v2/hello/blobs/uploads', status: 404, code: 'BLOB_UNKNOWN' },
  { id: 'end-2', what: 'a name outside the grammar', method: 'GET', path: `/v2/-x/blobs/${UNKNOWN_DIGEST}`, status: 404, code: 'NAME_UNKNOWN' },

  // end-3: manifests, GET and HEAD. Whatever names nothing Nixyard can serve is 404.
  { id: 'end-3', what: 'a stored image by tag', method: 'GET', path: '/v2/hello/manifests/latest', status: 200 },
  { id: 'end-3', what: 'a manifest by digest', method: 'GET', path: (image) => `/v2/hello/manifests/${image.oci.descriptor.digest}`, status: 200 },
  { id: 'end-3', what: 'an image built for the pull', method: 'GET', path: '/v2/jq/manifests/latest', status: 200 },
  { id: 'end-3', what: 'an unknown digest', method: 'GET', path: `/v2/hello/manifests/${UNKNOWN_DIGEST}`, status: 404, code: 'MANIFEST_UNKNOWN' },
  { id: 'end-3', what: 'a tag the source does not have', method: 'GET', path: '/v2/hello/manifests/v1', status: 404, code: 'MANIFEST_UNKNOWN' },
  { id: 'end-3', what: 'a reference that is no tag', method: 'GET', path: '/v2/hello/manifests/-bad-tag', status: 404, code: 'MANIFEST_UNKNOWN' },
  { id: 'end-3', what: 'a tag of 129 characters', method: 'GET', path: `/v2/hello/manifests/${'t'.repeat(129)}`, status: 404, code: 'MANIFEST_UNKNOWN' },
  { id: 'end-3', what: 'a reference that is no digest', method: 'GET', path: '/v2/hello/manifests/sha256:abc', status: 404, code: 'MANIFEST_UNKNOWN' },
  { id: 'end-3', what: 'a digest of another algorithm', method: 'GET', path: `/v2/hello/manifests/sha512:${'0'.repeat(128)}`, status: 404, code: 'MANIFEST_UNKNOWN' },
  { id: 'end-3', what: 'a name outside the grammar', method: 'GET', path: '/v2/hel"lo/manifests/latest', status: 404, code: 'NAME_UNKNOWN' },
  { id: 'end-3', what: 'a name of meta-packages only', method: 'GET', path: '/v2/arm64/manifests/latest', status: 404, code: 'NAME_UNKNOWN' },
  { id: 'end-3', what: 'a system the registry does not serve', method: 'GET', path: '/v2/arm64/hello/manifests/latest', status: 404, code: 'MANIFEST_UNKNOWN' },
  {
    id: 'end-3',
    what: 'an unknown package',
    method: 'GET',
    path: '/v2/nosuch/manifests/latest',
    status: 404,
    code: 'MANIFEST_UNKNOWN',
    setUp: (registry) => {
      registry.packageIndex.names = new Set(['hello', 'jq']);
    },
  },
  {
    id: 'end-3',
    what: 'no live worker (503 with Retry-After, a server error)',
    method: 'GET',
    path: '/v2/jq/manifests/latest',
    status: 503,
    code: 'UNAVAILABLE',
    setUp: (registry) => {
      registry.workers.counts.set('x86_64-linux', 0);
    },
  },
  {
    id: 'end-3',
    what: 'admission control refusing a cold build (429 with Retry-After)',
    method: 'GET',
    path: '/v2/jq/manifests/latest',
    status: 429,
    code: 'TOOMANYREQUESTS',
    setUp: (registry) => {
      registry.builds.outcome = { kind: 'reject', error: new RegistryError('TOOMANYREQUESTS', 'too many builds', null, { retryAfterSeconds: 5 }) };
    },
  },

  // end-4a, end-4b, end-11: starting an upload, a monolithic one, a mount. No repository takes pushes.
  { id: 'end-4a', what: 'starting an upload', method: 'POST', path: '/v2/hello/blobs/uploads/', status: 404, code: 'NAME_UNKNOWN' },
  { id: 'end-4b', what: 'a monolithic upload', method: 'POST', path: `/v2/hello/blobs/uploads/?digest=${UNKNOWN_DIGEST}`, status: 404, code: 'NAME_UNKNOWN' },
  { id: 'end-11', what: 'a mount', method: 'POST', path: `/v2/hello/blobs/uploads/?mount=${UNKNOWN_DIGEST}&from=jq`, status: 404, code: 'NAME_UNKNOWN' },

  // end-5, end-6, end-13, end-14: an upload session. None was ever started.
  { id: 'end-5', what: 'a chunk', method: 'PATCH', path: UPLOAD, status: 404, code: 'BLOB_UPLOAD_UNKNOWN' },
  { id: 'end-6', what: 'closing an upload', method: 'PUT', path: `${UPLOAD}?digest=${UNKNOWN_DIGEST}`, status: 404, code: 'BLOB_UPLOAD_UNKNOWN' },
  { id: 'end-13', what: 'an upload’s status', method: 'GET', path: UPLOAD, status: 404, code: 'BLOB_UPLOAD_UNKNOWN' },
  { id: 'end-14', what: 'cancelling an upload', method: 'DELETE', path: UPLOAD, status: 404, code: 'BLOB_UPLOAD_UNKNOWN' },

  // end-7: pushing a manifest, by tag or by digest.
  { id: 'end-7', what: 'a push by tag', method: 'PUT', path: '/v2/hello/manifests/latest', status: 404, code: 'NAME_UNKNOWN' },
  { id: 'end-7', what: 'a push by digest', method: 'PUT', path: `/v2/hello/manifests/${UNKNOWN_DIGEST}`, status: 404, code: 'NAME_UNKNOWN' },

  // end-8a, end-8b: tags/list, whole and in pages.
  { id: 'end-8a', what: 'the tag list', method: 'GET', path: '/v2/hello/tags/list', status: 200 },
  { id: 'end-8a', what: 'a name outside the grammar', method: 'GET', path: '/v2/-x/tags/list', status: 404, code: 'NAME_UNKNOWN' },
  { id: 'end-8b', what: 'n=0', method: 'GET', path: '/v2/hello/tags/list?n=0', status: 200 },
  { id: 'end-8b', what: 'n and last', method: 'GET', path: '/v2/hello/tags/list?n=1&last=a', status: 200 },
  ...['abc', '-1', '1.5', '', ' 1', '1e3', '0x10'].map(
    (n): Case => ({ id: 'end-8b', what: `a malformed n (${JSON.stringify(n)})`, method: 'GET', path: `/v2/hello/tags/list?n=${encodeURIComponent(n)}`, status: 404, code: 'NAME_UNKNOWN' }),
  ),

  // end-9, end-10: deletion is disabled, which the spec answers with 400 or 405.
  { id: 'end-9', what: 'deleting a tag', method: 'DELETE', path: '/v2/hello/manifests/latest', status: 405, code: 'UNSUPPORTED' },
  { id: 'end-9', what: 'deleting a manifest', method: 'DELETE', path: (image) => `/v2/hello/manifests/${image.oci.descriptor.digest}`, status: 405, code: 'UNSUPPORTED' },
  { id: 'end-10', what: 'deleting a blob', method: 'DELETE', path: (image) => `/v2/hello/blobs/${image.layers[0]!.digest}`, status: 405, code: 'UNSUPPORTED' },

  // end-12a, end-12b: the referrers API is not offered; a 404 tells clients to fall back.
  { id: 'end-12a', what: 'the referrers of a manifest', method: 'GET', path: (image) => `/v2/hello/referrers/${image.oci.descriptor.digest}`, status: 404, code: 'NAME_UNKNOWN' },
  { id: 'end-12b', what: 'the referrers of one artifact type', method: 'GET', path: `/v2/hello/referrers/${UNKNOWN_DIGEST}?artifactType=application%2Fvnd.example.sbom`, status: 404, code: 'NAME_UNKNOWN' },
];

test('every endpoint of the table has a case, and every case’s status is one the spec allows there', () => {
  assert.deepEqual([...new Set(CASES.map((c) => c.id))].sort(), Object.keys(TABLE).sort());
  for (const c of CASES) assert.ok(allowed(c.id, c.status), `${c.id} ${c.method} ${c.what}: ${c.status}`);
});

describe('each endpoint over HTTP', () => {
  for (const c of CASES) {
    test(`${c.id} ${c.method} ${c.what}: ${c.status}${c.code ? ` ${c.code}` : ''}`, async () => {
      const registry = await startRegistry();
      try {
        const image = await seedImage(registry.storage, 'hello');
        c.setUp?.(registry);
        const path = typeof c.path === 'function' ? c.path(image) : c.path;
        const res = await registry.request(c.method, path, c.headers);
        assert.equal(res.status, c.status);
        if (c.code) assertError(res, c.code);
        else assert.ok(res.status < 400 || res.status === 416, 'only an unsatisfiable range fails without a body');
        if (c.method === 'GET') {
          // HEAD answers as GET does, without a body.
          const head = await registry.request('HEAD', path, c.headers);
          assert.equal(head.status, c.status, 'HEAD');
          assert.equal(head.body.length, 0, 'HEAD has no body');
        }
      } finally {
        await registry.close();
      }
    });
  }
});

function assertError(res: Response, code: string): void {
  assert.equal(res.headers['content-type'], 'application/json');
  const body = json(res) as { errors: Array<{ code: string; message: string; detail: unknown }> };
  assert.equal(body.errors.length, 1);
  assert.equal(body.errors[0]!.code, code);
  assert.ok(body.errors[0]!.message.length > 0, 'a message');
  assert.equal(res.headers['allow'], res.status === 405 ? 'GET, HEAD' : undefined, 'Allow with 405 only');
  assert.equal(res.headers['retry-after'] !== undefined, res.status === 429 || res.status === 503, 'Retry-After with 429 and 503');
}

describe('the messages say why', () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startRegistry();
  });
  after(() => registry.close());

  const CLEAR: Array<[method: string, path: string, message: string]> = [
    ['GET', '/v2/hello/manifests/-bad', 'invalid tag "-bad": expected [A-Za-z0-9_][A-Za-z0-9._-]{0,127}'],
    ['GET', '/v2/hello/manifests/sha256:abc', 'invalid digest "sha256:abc": expected "sha256:" followed by 64 lowercase hex digits'],
    ['GET', '/v2/hello/blobs/sha256:abc', 'invalid digest "sha256:abc": expected "sha256:" followed by 64 lowercase hex digits'],
    ['GET', '/v2/-x/tags/list', 'invalid image name component "-x": has a segment starting with "-"'],
    ['GET', '/v2/hello/tags/list?n=many', 'invalid n "many": expected how many tags to list, a whole number (0 or more)'],
    ['POST', '/v2/hello/blobs/uploads/', `POST is not supported: ${NO_PUSHES}`],
    ['PUT', '/v2/hello/manifests/latest', `PUT is not supported: ${NO_PUSHES}`],
    ['PATCH', UPLOAD, `no such upload: ${NO_PUSHES}, so it starts no uploads`],
    ['DELETE', '/v2/hello/manifests/latest', `DELETE is not supported: ${NO_PUSHES}`],
    ['GET', `/v2/hello/referrers/${UNKNOWN_DIGEST}`, 'the referrers API is not offered: no image this registry builds has referrers'],
  ];
  for (const [method, path, message] of CLEAR) {
    test(`${method} ${path}`, async () => {
      const res = await registry.request(method, path);
      assert.equal((json(res) as { errors: Array<{ message: string }> }).errors[0]!.message, message);
    });
  }
});

describe('tags/list pagination (end-8b) over a source with many tags', () => {
  // A git source: `latest` and the remote's branch and tag names, in no particular order.
  const NAMES = ['v2.0', 'main', 'Zeta', 'release-23.05', 'alpha', 'v10.0', 'nixos-unstable', '_under', 'beta'];
  /** Lexical (code-unit, "ASCIIbetical") order: upper case before lower, `_` between them. */
  const ALL = ['Zeta', '_under', 'alpha', 'beta', 'latest', 'main', 'nixos-unstable', 'release-23.05', 'v10.0', 'v2.0'];
  let registry: TestRegistry;
  before(async () => {
    const refs = {
      defaultBranchHead: async () => 'a'.repeat(40),
      commitOf: async () => 'a'.repeat(40),
      names: async () => NAMES,
    };
    registry = await startRegistry({ resolver: new SourceResolver({ kind: 'git', url: 'https://git.example/pkgs.git' }, 300, { refs }) });
  });
  after(() => registry.close());

  async function list(query: string): Promise<{ tags: string[]; link: string | undefined; res: Response }> {
    const res = await registry.request('GET', `/v2/shell/jq/tags/list${query}`);
    assert.equal(res.status, 200, query);
    const body = json(res) as { name: string; tags: string[] };
    assert.equal(body.name, 'shell/jq');
    return { tags: body.tags, link: res.headers['link'] as string | undefined, res };
  }

  test('without n: every tag, in lexical order, no Link', async () => {
    const { tags, link } = await list('');
    assert.deepEqual(tags, ALL);
    assert.equal(link, undefined);
  });

  test('n=0: an empty list and no Link, whatever remains', async () => {
    for (const query of ['?n=0', '?n=0&last=alpha', '?n=000']) {
      const { tags, link } = await list(query);
      assert.deepEqual(tags, [], query);
      assert.equal(link, undefined, query);
    }
  });

  test('n: the first n tags and a Link to the next page, which names n and the last tag sent', async () => {
    const { tags, link } = await list('?n=3');
    assert.deepEqual(tags, ALL.slice(0, 3));
    assert.equal(link, '</v2/shell/jq/tags/list?n=3&last=alpha>; rel="next"');
  });

  test('following the Links visits every tag once, in order; the last page has no Link', async () => {
    const seen: string[] = [];
    let query: string | undefined = '?n=4';
    let pages = 0;
    while (query !== undefined) {
      const { tags, link }: { tags: string[]; link: string | undefined } = await list(query);
      seen.push(...tags);
      pages++;
      if (link === undefined) break;
      const m = /^<\/v2\/shell\/jq\/tags\/list(\?[^>]*)>; rel="next"$/.exec(link);
      assert.ok(m, link);
      query = m[1];
    }
    assert.deepEqual(seen, ALL);
    assert.equal(pages, 3);
  });

  test('n as large as the list, or larger: all of it, no Link', async () => {
    for (const n of [ALL.length, ALL.length + 1, 1_000_000]) {
      const { tags, link } = await list(`?n=${n}`);
      assert.deepEqual(tags, ALL, String(n));
      assert.equal(link, undefined, String(n));
    }
  });

  test('last: only the tags after it (not itself), with or without n', async () => {
    assert.deepEqual((await list('?last=latest')).tags, ['main', 'nixos-unstable', 'release-23.05', 'v10.0', 'v2.0']);
    assert.equal((await list('?last=latest')).link, undefined, 'no page size: nothing held back');
    const { tags, link } = await list('?n=2&last=latest');
    assert.deepEqual(tags, ['main', 'nixos-unstable']);
    assert.equal(link, '</v2/shell/jq/tags/list?n=2&last=nixos-unstable>; rel="next"');
    // A `last` that is no tag of the list starts where it would sort.
    assert.deepEqual((await list('?n=2&last=m')).tags, ['main', 'nixos-unstable']);
    assert.deepEqual((await list('?last=zzz')).tags, []);
  });

  test('HEAD: the headers of GET, the Link included, and no body', async () => {
    const get = await registry.request('GET', '/v2/hello/tags/list?n=2', { 'x-request-id': 'tags-head' });
    const head = await registry.request('HEAD', '/v2/hello/tags/list?n=2', { 'x-request-id': 'tags-head' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.equal(head.headers['link'], '</v2/hello/tags/list?n=2&last=_under>; rel="next"');
    assert.equal(head.headers['link'], get.headers['link']);
    assert.equal(head.headers['content-length'], get.headers['content-length']);
  });

  test('a malformed n is 404 NAME_UNKNOWN, the failure end-8b lists', async () => {
    const res = await registry.request('GET', '/v2/hello/tags/list?n=ten&last=alpha');
    assert.equal(res.status, 404);
    assert.deepEqual(json(res), {
      errors: [{ code: 'NAME_UNKNOWN', message: 'invalid n "ten": expected how many tags to list, a whole number (0 or more)', detail: { n: '"ten"' } }],
    });
  });
});
