// Blobs behind the proxy: Debian's nginx runs the deployable configuration (ops/nginx/nginx.conf,
// addresses substituted by test/helpers/nginx.ts) in front of a real API process started with
// NIXYARD_BLOB_ACCEL_PREFIX, which hands plain and single-range blob GETs to nginx with
// X-Accel-Redirect. A second API without the prefix, on the same storage and Redis, is the
// reference: for every request below the client must get the same status, body and registry
// headers through the proxy as from the API directly. And the accelerated API must not have sent
// the bytes itself: its own answer to those GETs is the redirect with an empty body.

import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { request, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import {
  PATH_REVISION,
  buildJobFor,
  imageDocuments,
  loadConfig,
  openStorage,
  parseImageName,
  publishImageDocuments,
  sha256Digest,
  type Digest,
  type ImageDocuments,
} from '@nixyard/core';
import { parse as parseYaml } from 'yaml';
import { REPO_ROOT, freePort, startRole, waitForHttp, type Started } from '../../scripts/stack.js';
import { BUNDLED_SET } from '../helpers/bundled-set.js';
import { BLOB_ACCEL_PREFIX, COMPOSE_STORAGE_PATH, NGINX_CONF, startNginx, type RunningNginx } from '../helpers/nginx.js';
import { seededBytes } from '../helpers/random.js';
import { startTestRedis, type TestRedis } from '../helpers/redis.js';
import { tempDir } from '../helpers/temp-dir.js';

const OCI = 'application/vnd.oci.image.manifest.v1+json';
const DOCKER = 'application/vnd.docker.distribution.manifest.v2+json';

/** What a registry client reads; the rest (Date, Server, Connection, Keep-Alive) is the hop's own. */
const COMPARED_HEADERS = [
  'docker-content-digest',
  'content-type',
  'content-length',
  'content-range',
  'accept-ranges',
  'etag',
  'cache-control',
  'docker-distribution-api-version',
  'x-request-id',
  'last-modified',
  'transfer-encoding',
  'location',
] as const;

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** One request with node:http on a fresh connection; the path goes out as given. */
function send(host: string, method: string, path: string, headers: OutgoingHttpHeaders): Promise<Answer> {
  const [hostname, port] = host.split(':');
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port: Number(port), method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`${method} ${path}: no answer within 10 s`)));
    req.end();
  });
}

function compared(answer: Answer): Record<string, string | string[] | undefined> {
  return Object.fromEntries(COMPARED_HEADERS.map((name) => [name, answer.headers[name]]));
}

describe('blobs behind nginx with X-Accel-Redirect answer exactly as the API does directly', () => {
  const dir = tempDir('blob-proxy');
  const storagePath = join(dir.path, 'storage');
  let redis: TestRedis;
  const roles: Started[] = [];
  let nginx: RunningNginx | undefined;
  /** The API nginx proxies to, with NIXYARD_BLOB_ACCEL_PREFIX. */
  let accelApi = '';
  /** The reference: the same storage served by an API without the prefix. */
  let directApi = '';
  let layer: { bytes: Buffer; digest: Digest };
  let empty: Digest;
  let image: ImageDocuments;

  before(async () => {
    // nginx's workers run as `nobody`: the storage must be readable by others, as the compose
    // volume must be for the nginx image's user (the filesystem backend writes 0644 files).
    chmodSync(dir.path, 0o755);
    mkdirSync(storagePath, { mode: 0o755 });
    redis = await startTestRedis();
    const env = {
      ...process.env,
      REDIS_URL: redis.url,
      STORAGE_PATH: storagePath,
      NIXERY_PKGS_PATH: BUNDLED_SET,
      LOG_LEVEL: 'warn',
    };

    // What a worker publishes: the layer (odd-sized, incompressible), an empty blob, the config
    // and both manifests, and the manifest record of `hello:latest` last.
    const storage = openStorage(loadConfig(env).storage);
    const bytes = seededBytes(3 * 1024 * 1024 + 17, 12);
    layer = { bytes, digest: sha256Digest(bytes) };
    await storage.writeBlob(Readable.from([bytes]), layer.digest);
    empty = sha256Digest(Buffer.alloc(0));
    await storage.writeBlob(Readable.from([Buffer.alloc(0)]), empty);
    const job = buildJobFor({ spec: parseImageName('hello'), source: { kind: 'path', path: BUNDLED_SET }, revision: PATH_REVISION });
    image = imageDocuments(job, [{ digest: layer.digest, size: bytes.length, diffId: sha256Digest('a tar') }], { env: ['PATH=/bin'] });
    await publishImageDocuments(storage, image);

    const [accelPort, directPort] = [await freePort(), await freePort()];
    const accel = startRole('api', { env: { ...env, PORT: String(accelPort), NIXYARD_BLOB_ACCEL_PREFIX: BLOB_ACCEL_PREFIX } });
    roles.push(accel);
    const direct = startRole('api', { env: { ...env, PORT: String(directPort) } });
    roles.push(direct);
    accelApi = `127.0.0.1:${accelPort}`;
    directApi = `127.0.0.1:${directPort}`;
    await waitForHttp(`http://${accelApi}/v2/`, 60_000, accel.child);
    await waitForHttp(`http://${directApi}/v2/`, 60_000, direct.child);
    // Both of the config's replicas are this one API.
    nginx = await startNginx({ upstreams: [accelApi, accelApi], storagePath });
  });

  after(async () => {
    await nginx?.stop();
    await Promise.all(roles.map((r) => r.stop()));
    await redis?.stop();
    dir.cleanup();
  });

  const blob = (digest: string) => `/v2/hello/blobs/${digest}`;

  interface Case {
    what: string;
    method: 'GET' | 'HEAD';
    path: () => string;
    headers?: Record<string, string> | (() => Record<string, string>);
    /** The API hands this one to nginx (X-Accel-Redirect); otherwise it answers itself. */
    accel: boolean;
    status: number;
  }

  const cases: Case[] = [
    { what: 'GET blob', method: 'GET', path: () => blob(layer.digest), accel: true, status: 200 },
    { what: 'HEAD blob', method: 'HEAD', path: () => blob(layer.digest), accel: false, status: 200 },
    { what: 'Range bytes=0-99', method: 'GET', path: () => blob(layer.digest), headers: { Range: 'bytes=0-99' }, accel: true, status: 206 },
    { what: 'Range bytes=100-', method: 'GET', path: () => blob(layer.digest), headers: { Range: 'bytes=100-' }, accel: true, status: 206 },
    { what: 'Range bytes=-10', method: 'GET', path: () => blob(layer.digest), headers: { Range: 'bytes=-10' }, accel: true, status: 206 },
    { what: 'Range bytes=0-0', method: 'GET', path: () => blob(layer.digest), headers: { Range: 'bytes=0-0' }, accel: true, status: 206 },
    { what: 'Range past the end', method: 'GET', path: () => blob(layer.digest), headers: { Range: 'bytes=3145700-99999999' }, accel: true, status: 206 },
    // range-parser finds no satisfiable range here (RFC 9110 would send the whole blob); nginx
    // would, so the API must answer it itself.
    { what: 'suffix longer than the blob', method: 'GET', path: () => blob(layer.digest), headers: { Range: 'bytes=-99999999' }, accel: false, status: 416 },
    { what: 'HEAD with Range', method: 'HEAD', path: () => blob(layer.digest), headers: { Range: 'bytes=0-99' }, accel: false, status: 206 },
    { what: 'multi-range', method: 'GET', path: () => blob(layer.digest), headers: { Range: 'bytes=0-9,20-29' }, accel: false, status: 200 },
    { what: 'overlapping ranges', method: 'GET', path: () => blob(layer.digest), headers: { Range: 'bytes=0-9,5-20' }, accel: false, status: 206 },
    { what: 'unsatisfiable range', method: 'GET', path: () => blob(layer.digest), headers: { Range: 'bytes=99999999-' }, accel: false, status: 416 },
    { what: 'malformed range', method: 'GET', path: () => blob(layer.digest), headers: { Range: 'bytes=abc' }, accel: false, status: 200 },
    { what: 'range in other units', method: 'GET', path: () => blob(layer.digest), headers: { Range: 'items=0-5' }, accel: false, status: 200 },
    // Conditional requests: the API ignores them (200, or 206 for a Range), while nginx would
    // judge them by the file (304 for `If-None-Match: *` or the file's mtime, 412, or a whole blob
    // for a stale If-Range). So the API answers them itself.
    { what: 'If-None-Match: *', method: 'GET', path: () => blob(layer.digest), headers: { 'If-None-Match': '*' }, accel: false, status: 200 },
    { what: 'If-None-Match with the ETag', method: 'GET', path: () => blob(layer.digest), headers: () => ({ 'If-None-Match': `"${layer.digest}"` }), accel: false, status: 200 },
    {
      what: "If-Modified-Since the file's mtime",
      method: 'GET',
      path: () => blob(layer.digest),
      headers: () => ({ 'If-Modified-Since': statSync(join(storagePath, 'blobs/sha256', layer.digest.slice('sha256:'.length))).mtime.toUTCString() }),
      accel: false,
      status: 200,
    },
    { what: 'If-Match another ETag', method: 'GET', path: () => blob(layer.digest), headers: { 'If-Match': '"other"' }, accel: false, status: 200 },
    { what: 'If-Unmodified-Since long ago', method: 'GET', path: () => blob(layer.digest), headers: { 'If-Unmodified-Since': 'Thu, 01 Jan 1970 00:00:01 GMT' }, accel: false, status: 200 },
    { what: 'If-Range another ETag', method: 'GET', path: () => blob(layer.digest), headers: { Range: 'bytes=0-99', 'If-Range': '"other"' }, accel: false, status: 206 },
    { what: 'GET config blob', method: 'GET', path: () => blob(image.config.descriptor.digest), accel: true, status: 200 },
    { what: 'GET empty blob', method: 'GET', path: () => blob(empty), accel: false, status: 200 },
    { what: 'unknown digest', method: 'GET', path: () => blob(`sha256:${'0'.repeat(64)}`), accel: false, status: 404 },
    { what: 'HEAD unknown digest', method: 'HEAD', path: () => blob(`sha256:${'0'.repeat(64)}`), accel: false, status: 404 },
    { what: 'malformed digest', method: 'GET', path: () => blob('sha256:xyz'), accel: false, status: 404 },
    { what: 'invalid name', method: 'GET', path: () => `/v2/Hello!/blobs/${layer.digest}`, accel: false, status: 404 },
    { what: 'manifest by tag', method: 'GET', path: () => '/v2/hello/manifests/latest', headers: { Accept: `${OCI}, ${DOCKER}` }, accel: false, status: 200 },
    { what: 'manifest by digest', method: 'GET', path: () => `/v2/hello/manifests/${image.oci.descriptor.digest}`, headers: { Accept: OCI }, accel: false, status: 200 },
    { what: 'HEAD manifest', method: 'HEAD', path: () => '/v2/hello/manifests/latest', headers: { Accept: DOCKER }, accel: false, status: 200 },
  ];

  for (const [i, c] of cases.entries()) {
    test(`${c.what}: the same through the proxy as directly`, async () => {
      // A fixed request id, so that the API's X-Request-Id is comparable too.
      const headers = { 'X-Request-Id': `blob-proxy-${i}`, ...(typeof c.headers === 'function' ? c.headers() : c.headers) };
      const direct = await send(directApi, c.method, c.path(), headers);
      const proxied = await send(nginx!.host, c.method, c.path(), headers);
      assert.equal(direct.status, c.status, `the direct answer's status (${c.what})`);
      assert.equal(proxied.status, direct.status, 'status');
      assert.deepEqual(compared(proxied), compared(direct), 'headers');
      assert.ok(proxied.body.equals(direct.body), `body (${proxied.body.length} bytes through the proxy, ${direct.body.length} directly)`);
      if (c.status === 206 && c.method === 'GET') {
        const [, start, end] = /^bytes (\d+)-(\d+)\/\d+$/.exec(String(direct.headers['content-range']))!;
        assert.ok(direct.body.equals(layer.bytes.subarray(Number(start), Number(end) + 1)), 'the range holds the blob bytes');
      }
      if (c.what === 'GET blob') assert.ok(proxied.body.equals(layer.bytes), 'the blob bytes');

      // What the API behind nginx answered: the redirect and no body, or the answer itself.
      const upstream = await send(accelApi, c.method, c.path(), headers);
      assert.equal(upstream.status, c.status, 'the accelerated API status');
      if (c.accel) {
        const digest = c.path().split('/').pop()!;
        assert.equal(upstream.headers['x-accel-redirect'], `${BLOB_ACCEL_PREFIX}blobs/sha256/${digest.slice('sha256:'.length)}`, 'X-Accel-Redirect');
        assert.equal(upstream.body.length, 0, 'the API sends no blob bytes');
      } else {
        assert.equal(upstream.headers['x-accel-redirect'], undefined, 'answered by the API itself');
        assert.ok(upstream.body.equals(direct.body), 'the same body as the reference API');
      }
      assert.equal(proxied.headers['x-accel-redirect'], undefined, 'nginx does not pass X-Accel-Redirect on');
    });
  }

  test('docker-compose.yml and ops/nginx/nginx.conf agree on the prefix and the storage path', () => {
    type Service = { environment?: Record<string, string>; volumes?: string[] };
    const compose = parseYaml(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service> };
    const conf = readFileSync(NGINX_CONF, 'utf8');
    for (const name of ['api-1', 'api-2']) {
      const env = compose.services[name]?.environment ?? {};
      assert.equal(env.NIXYARD_BLOB_ACCEL_PREFIX, BLOB_ACCEL_PREFIX, `${name}'s NIXYARD_BLOB_ACCEL_PREFIX`);
      assert.equal(env.STORAGE_PATH, COMPOSE_STORAGE_PATH, `${name}'s STORAGE_PATH`);
    }
    assert.ok(compose.services.proxy?.volumes?.includes(`storage:${COMPOSE_STORAGE_PATH}:ro`), 'the proxy mounts the storage volume read-only at STORAGE_PATH');
    const location = new RegExp(`location \\^~ ${BLOB_ACCEL_PREFIX.replaceAll('/', '\\/')} \\{[^}]*\\binternal;[^}]*\\balias ${COMPOSE_STORAGE_PATH.replaceAll('/', '\\/')}\\/;`);
    assert.match(conf, location, 'an internal location for the prefix, aliasing STORAGE_PATH');
  });

  test('the storage location is internal: a client cannot fetch it', async () => {
    const hex = layer.digest.slice('sha256:'.length);
    const res = await send(nginx!.host, 'GET', `${BLOB_ACCEL_PREFIX}blobs/sha256/${hex}`, {});
    assert.equal(res.status, 404);
    assert.ok(!res.body.includes(layer.bytes.subarray(0, 64)), 'no blob bytes');
  });
});
