// GET/HEAD /v2/ (base.ts) and what app.ts wires around every route, in-process: the route table
// (every parseRegistryPath kind answered GET and HEAD, write verbs refused on each as read-only.ts
// says), the request id and API version headers, the operator endpoints, request metrics and log
// levels. Every endpoint of the distribution spec's table, with its statuses, is pinned in
// spec-endpoints.test.ts.

import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { MemoryStorage, REGISTRY_ROUTE_KINDS, parseRegistryPath, sha256Digest, type RegistryRouteKind } from '@nixyard/core';
import {
  assertHeadLikeGet,
  assertRegistryError,
  json,
  seedImage,
  startRegistry,
  type PublishedImage,
  type TestRegistry,
} from './registry-fixture.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('GET/HEAD /v2/', () => {
  let registry: TestRegistry;
  before(async () => {
    registry = await startRegistry();
  });
  after(() => registry.close());

  test('GET: 200 with {} as JSON, for /v2/, /v2 and with a query', async () => {
    for (const path of ['/v2/', '/v2', '/v2/?service=registry']) {
      const res = await registry.request('GET', path);
      assert.equal(res.status, 200, path);
      assert.equal(res.headers['content-type'], 'application/json', path);
      assert.equal(res.headers['content-length'], '2', path);
      assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0', path);
      assert.equal(res.body.toString(), '{}', path);
    }
    assert.equal(registry.builds.jobs.length, 0);
  });

  test('HEAD: the headers of GET, Content-Length included, no body', async () => {
    const { head } = await assertHeadLikeGet(registry, '/v2/');
    assert.equal(head.status, 200);
    assert.equal(head.headers['content-length'], '2');
  });
});

describe('the route table', () => {
  let registry: TestRegistry;
  let hello: PublishedImage;
  beforeEach(async () => {
    registry = await startRegistry();
    hello = await seedImage(registry.storage, 'hello');
  });
  afterEach(() => registry.close());

  /** One request per route kind that answers 200. A new kind does not compile until it has one. */
  const SAMPLES: Record<RegistryRouteKind, () => string> = {
    base: () => '/v2/',
    manifest: () => '/v2/hello/manifests/latest',
    blob: () => `/v2/hello/blobs/${hello.layers[0]!.digest}`,
    tags: () => '/v2/hello/tags/list',
  };

  test('every kind parseRegistryPath knows has a sample here, and only those', () => {
    assert.deepEqual(Object.keys(SAMPLES).sort(), [...REGISTRY_ROUTE_KINDS].sort());
  });

  for (const kind of REGISTRY_ROUTE_KINDS) {
    test(`${kind}: GET answers 200, HEAD the same without a body`, async () => {
      const path = SAMPLES[kind]();
      assert.equal(parseRegistryPath(path)?.kind, kind);
      const { get } = await assertHeadLikeGet(registry, path);
      assert.equal(get.status, 200);
      assert.ok(get.body.length > 0);
      assert.equal(get.headers['content-length'], String(get.body.length));
    });

    test(`${kind}: every write verb is refused (a push 404, the rest 405 with Allow: GET, HEAD), and changes nothing`, async () => {
      const path = SAMPLES[kind]();
      const blobsBefore = await countBlobs(registry);
      for (const method of ['PUT', 'POST', 'PATCH', 'DELETE', 'OPTIONS']) {
        const res = await registry.request(method, path, { 'content-type': 'application/octet-stream' });
        // A manifest PUT is a push (end-7), whose one listed failure is 404.
        const push = kind === 'manifest' && method === 'PUT';
        assertRegistryError(res, {
          status: push ? 404 : 405,
          code: push ? 'NAME_UNKNOWN' : 'UNSUPPORTED',
          message: `${method} is not supported: this registry builds its images itself and accepts no pushes`,
          detail: null,
        }, `${method} ${path}`);
        assert.equal(res.headers['allow'], push ? undefined : 'GET, HEAD', `${method} ${path}`);
      }
      assert.equal(registry.builds.jobs.length, 0);
      assert.equal(await countBlobs(registry), blobsBefore);
      assert.ok(await registry.storage.statBlob(hello.layers[0]!.digest), 'a DELETE removed nothing');
    });
  }

  test('write verbs on paths that are no resource: 405 as well (the upload endpoints: spec-endpoints.test.ts)', async () => {
    const paths = ['/v2/hello', '/v2/no/such/thing', '/v2/hello/blobs/uploads'];
    for (const path of paths) {
      for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
        const res = await registry.request(method, path);
        assert.equal(res.status, 405, `${method} ${path}`);
        assert.equal(res.headers['allow'], 'GET, HEAD', `${method} ${path}`);
        assert.equal((json(res) as { errors: Array<{ code: string }> }).errors[0]!.code, 'UNSUPPORTED');
      }
    }
  });

  test('write verbs outside /v2/ are no endpoint: 404 NAME_UNKNOWN', async () => {
    assertRegistryError(await registry.request('POST', '/healthz'), {
      status: 404,
      code: 'NAME_UNKNOWN',
      message: 'no such endpoint: POST /healthz',
      detail: null,
    });
  });
});

async function countBlobs(registry: TestRegistry): Promise<number> {
  let n = 0;
  for await (const _ of registry.storage.listBlobs()) n++;
  return n;
}

describe('headers on every response', () => {
  let registry: TestRegistry;
  let hello: PublishedImage;
  before(async () => {
    registry = await startRegistry();
    hello = await seedImage(registry.storage, 'hello');
  });
  after(() => registry.close());

  const paths = () => [
    ['GET', '/v2/'],
    ['HEAD', '/v2/hello/manifests/latest'],
    ['GET', `/v2/hello/blobs/${hello.layers[1]!.digest}`],
    ['GET', '/v2/hello/tags/list'],
    ['GET', '/v2/hello/manifests/v1'],
    ['GET', '/v2/-x/manifests/latest'],
    ['PUT', '/v2/hello/manifests/latest'],
    ['GET', '/nope'],
    ['GET', '/healthz'],
    ['GET', '/readyz'],
    ['GET', '/metrics'],
    ['GET', '/'],
    ['GET', '/api/v1/ping'],
  ];

  test('Docker-Distribution-API-Version: registry/2.0', async () => {
    for (const [method, path] of paths()) {
      const res = await registry.request(method!, path!);
      assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0', `${method} ${path}`);
    }
  });

  test('X-Request-Id: a valid one is echoed', async () => {
    for (const id of ['abc', 'pull-42.retry_1', 'A'.repeat(100), '0f6a1c1e-5ef8-4a40-a5f6-0d9f0a5f1a8b']) {
      for (const [method, path] of paths()) {
        const res = await registry.request(method!, path!, { 'x-request-id': id });
        assert.equal(res.headers['x-request-id'], id, `${method} ${path}`);
      }
    }
  });

  test('X-Request-Id: absent or invalid, a new UUID each time', async () => {
    const seen = new Set<string>();
    for (const id of [undefined, '', 'A'.repeat(101), 'a b', 'a/b', 'ünïcode', '<script>']) {
      const res = await registry.request('GET', '/v2/', id === undefined ? {} : { 'x-request-id': id });
      const given = res.headers['x-request-id'] as string;
      assert.match(given, UUID, JSON.stringify(id));
      seen.add(given);
    }
    assert.equal(seen.size, 7);
  });
});

describe('operator endpoints and the admin mount', () => {
  test('/healthz, /readyz (ready and not), /metrics, the status page, /api/v1', async () => {
    const ready = await startRegistry();
    const unready = await startRegistry({ readiness: { ready: false, checks: { redis: 'connect ECONNREFUSED', storage: 'ok' } } });
    try {
      const health = await ready.request('GET', '/healthz');
      assert.equal(health.status, 200);
      assert.deepEqual(json(health), { status: 'ok' });

      assert.deepEqual([(await ready.request('GET', '/readyz')).status, json(await ready.request('GET', '/readyz'))], [
        200,
        { status: 'ready', checks: { redis: 'ok', storage: 'ok' } },
      ]);
      const down = await unready.request('GET', '/readyz');
      assert.equal(down.status, 503);
      assert.deepEqual(json(down), { status: 'unavailable', checks: { redis: 'connect ECONNREFUSED', storage: 'ok' } });

      const metrics = await ready.request('GET', '/metrics');
      assert.equal(metrics.status, 200);
      assert.equal(metrics.headers['content-type'], ready.metrics.registry.contentType);
      assert.match(metrics.body.toString(), /^# TYPE nixyard_http_requests_total counter$/m);

      const page = await ready.request('GET', '/');
      assert.deepEqual([page.status, page.body.toString()], [200, 'status page']);
      const admin = await ready.request('GET', '/api/v1/ping');
      assert.deepEqual([admin.status, json(admin)], [200, { admin: true }]);
    } finally {
      await ready.close();
      await unready.close();
    }
  });
});

describe('request metrics and log lines', () => {
  test('requests are counted by route kind, method and status; manifest and blob bytes by route', async () => {
    const registry = await startRegistry();
    try {
      const hello = await seedImage(registry.storage, 'hello');
      await registry.request('GET', '/v2/');
      await registry.request('GET', '/v2/hello/manifests/latest');
      await registry.request('HEAD', '/v2/hello/manifests/latest');
      await registry.request('GET', `/v2/hello/blobs/${hello.layers[0]!.digest}`);
      await registry.request('GET', '/v2/hello/tags/list');
      await registry.request('GET', '/v2/hello/manifests/v1');
      await registry.request('GET', '/nope');
      await registry.request('GET', '/api/v1/ping');
      const text = await registry.metrics.registry.metrics();
      const lines = text.split('\n').filter((l) => l.startsWith('nixyard_http_requests_total{') || l.startsWith('nixyard_served_bytes_total{'));
      assert.deepEqual(lines.sort(), [
        'nixyard_http_requests_total{route="admin",method="GET",status="200"} 1',
        'nixyard_http_requests_total{route="base",method="GET",status="200"} 1',
        'nixyard_http_requests_total{route="blob",method="GET",status="200"} 1',
        'nixyard_http_requests_total{route="manifest",method="GET",status="200"} 1',
        'nixyard_http_requests_total{route="manifest",method="GET",status="404"} 1',
        'nixyard_http_requests_total{route="manifest",method="HEAD",status="200"} 1',
        'nixyard_http_requests_total{route="other",method="GET",status="404"} 1',
        'nixyard_http_requests_total{route="tags",method="GET",status="200"} 1',
        `nixyard_served_bytes_total{route="blob"} ${hello.layers[0]!.size}`,
        `nixyard_served_bytes_total{route="manifest"} ${hello.oci.bytes.length}`,
      ].sort());
    } finally {
      await registry.close();
    }
  });

  test('one info line per manifest request, with the request id; none for /healthz', async () => {
    const registry = await startRegistry({ logLevel: 'info' });
    try {
      await seedImage(registry.storage, 'hello');
      await registry.request('GET', '/v2/hello/manifests/latest', { 'x-request-id': 'log-1' });
      await registry.request('GET', '/healthz', { 'x-request-id': 'log-2' });
      const lines = registry.logs.map((l) => [l.level, l.msg, l.requestId]);
      assert.deepEqual(lines, [[30, 'request', 'log-1']]);
    } finally {
      await registry.close();
    }
  });

  test('the info line is compact: method, route, path, status, bytes, duration, request id, client; no headers', async () => {
    const registry = await startRegistry({ logLevel: 'info' });
    try {
      const hello = await seedImage(registry.storage, 'hello');
      await registry.request('GET', '/v2/hello/manifests/latest', { 'x-request-id': 'log-3', authorization: 'Basic c2VjcmV0OnB3' });
      assert.equal(registry.logs.length, 1);
      const { time, pid, hostname, durationMs, ...line } = registry.logs[0]!;
      assert.equal(typeof durationMs, 'number');
      assert.deepEqual(line, {
        level: 30,
        requestId: 'log-3',
        method: 'GET',
        route: 'manifest',
        path: '/v2/hello/manifests/latest',
        status: 200,
        bytes: hello.oci.bytes.length,
        client: '127.0.0.1',
        msg: 'request',
      });
      void [time, pid, hostname];
    } finally {
      await registry.close();
    }
  });

  test('at debug the line carries both sides’ headers, with credentials redacted', async () => {
    const registry = await startRegistry({ logLevel: 'debug' });
    try {
      await registry.request('GET', '/v2/', { 'x-request-id': 'log-4', authorization: 'Bearer s3cret-token', cookie: 'session=s3cret' });
      const line = registry.logs.find((l) => l.requestId === 'log-4' && l.msg === 'request');
      assert.ok(line, 'a request line');
      const headers = line.requestHeaders as Record<string, string>;
      assert.equal(headers['x-request-id'], 'log-4');
      assert.equal(headers.authorization, '[redacted]');
      assert.equal(headers.cookie, '[redacted]');
      assert.equal((line.responseHeaders as Record<string, string>)['docker-distribution-api-version'], 'registry/2.0');
      assert.ok(!JSON.stringify(registry.logs).includes('s3cret'), 'no secret in any log line');
    } finally {
      await registry.close();
    }
  });

  test('a server error is logged at error with its status', async () => {
    const registry = await startRegistry({
      logLevel: 'info',
      storage: new (class extends MemoryStorage {
        override async getRecord(): Promise<unknown> {
          throw new Error('EIO');
        }
      })(),
    });
    try {
      await registry.request('GET', '/v2/hello/manifests/latest', { 'x-request-id': 'log-5' });
      const line = registry.logs.find((l) => l.msg === 'request');
      assert.deepEqual([line?.level, line?.status, line?.requestId], [50, 500, 'log-5']);
    } finally {
      await registry.close();
    }
  });

  // Express cuts "/v2" off req.url before the response ends: app.ts must label the request by
  // its originalUrl, or blob downloads would log at info.
  test('a blob download logs at debug, not info', async () => {
    const registry = await startRegistry({ logLevel: 'info' });
    try {
      const blob = Buffer.from('layer bytes');
      await registry.storage.writeBlob(Readable.from([blob]));
      await registry.request('GET', `/v2/hello/blobs/${sha256Digest(blob)}`);
      assert.deepEqual(registry.logs, []);
    } finally {
      await registry.close();
    }
  });
});
