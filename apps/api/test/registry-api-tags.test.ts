// GET/HEAD /v2/<name>/tags/list in-process (tags.ts): every valid name lists the tags the source
// knows (a path source knows `latest`), the name echoed as the client spelled it. Pagination
// (`n`, `last`, Link) over longer lists is in spec-endpoints.test.ts.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { assertHeadLikeGet, assertRegistryError, json, startRegistry, type TestRegistry } from './registry-fixture.js';

let registry: TestRegistry;
before(async () => {
  registry = await startRegistry();
});
after(() => registry.close());

test('GET: the path source’s one tag, as compact JSON with its exact length', async () => {
  const res = await registry.request('GET', '/v2/hello/tags/list');
  assert.equal(res.status, 200);
  assert.equal(res.headers['content-type'], 'application/json');
  assert.equal(res.body.toString(), '{"name":"hello","tags":["latest"]}');
  assert.equal(res.headers['content-length'], String(res.body.length));
});

test('HEAD: the headers of GET, no body', async () => {
  const { head } = await assertHeadLikeGet(registry, '/v2/shell/jq/tags/list');
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], String('{"name":"shell/jq","tags":["latest"]}'.length));
});

test('the name is echoed as given, not canonicalised; nothing is stored or built for it', async () => {
  for (const name of ['shell/jq', 'jq/shell', 'arm64/xorg.xev', 'nosuchpackage', 'python3Packages.numpy/bashInteractive']) {
    assert.deepEqual(json(await registry.request('GET', `/v2/${name}/tags/list`)), { name, tags: ['latest'] }, name);
  }
  assert.equal(registry.builds.jobs.length, 0);
});

test('pagination parameters on the one tag: n=0 lists none, last=latest none after it, n=1 all', async () => {
  assert.deepEqual(json(await registry.request('GET', '/v2/hello/tags/list?n=0&last=latest')), { name: 'hello', tags: [] });
  assert.deepEqual(json(await registry.request('GET', '/v2/hello/tags/list?last=latest')), { name: 'hello', tags: [] });
  const one = await registry.request('GET', '/v2/hello/tags/list?n=1');
  assert.deepEqual(json(one), { name: 'hello', tags: ['latest'] });
  assert.equal(one.headers['link'], undefined, 'nothing remains');
});

test('an invalid name is 404 NAME_UNKNOWN (the one failure end-8a lists), GET and HEAD alike', async () => {
  const expected = {
    status: 404,
    code: 'NAME_UNKNOWN',
    message: 'invalid image name component "-bad": has a segment starting with "-"',
    detail: { component: '"-bad"', position: 1, reason: 'has a segment starting with "-"' },
  };
  assertRegistryError(await registry.request('GET', '/v2/hello/-bad/tags/list'), expected);
  const { head } = await assertHeadLikeGet(registry, '/v2/hello/-bad/tags/list');
  assert.equal(head.status, 404);
});

test('tags/list/ and tags/other are no resource: 404 NAME_UNKNOWN', async () => {
  for (const path of ['/v2/hello/tags/list/', '/v2/hello/tags/other', '/v2/hello/tags/']) {
    const res = await registry.request('GET', path);
    assert.equal(res.status, 404, path);
    assert.equal((json(res) as { errors: Array<{ code: string }> }).errors[0]!.code, 'NAME_UNKNOWN', path);
  }
});
