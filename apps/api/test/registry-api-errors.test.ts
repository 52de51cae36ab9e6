// Every registry error the API can answer, in-process (http-errors.ts and the handlers that throw):
// the status, `{"errors":[{code,message,detail}]}` with exact values, HEAD without a body, what
// reaches the build queue (nothing, for anything refused before it) and what is logged. Each
// typed build failure is mapped as docs/design.md §3's table says.
//
// Codes the API never produces today: UNAUTHORIZED, DENIED and TOOMANYREQUESTS (the pull API has
// no authentication and no rate limit; the admin API has its own error table), and core's
// validation codes NAME_INVALID, TAG_INVALID and DIGEST_INVALID, which the pull endpoints answer
// as the 404 of what they fail to name (path-params.ts; spec-endpoints.test.ts pins each
// endpoint's statuses). They are checked at the bottom through sendRegistryError and
// errorHandler directly, like every other code.

import assert from 'node:assert/strict';
import type { OutgoingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { describe, test } from 'node:test';
import express from 'express';
import { pino } from 'pino';
import {
  MemoryStorage,
  REGISTRY_ERROR_STATUS,
  RegistryError,
  manifestRecordKey,
  type BuildFailure,
  type RegistryErrorCode,
  type System,
} from '@nixyard/core';
import { registryErrorFor } from '../src/build-queue.js';
import { errorHandler, sendRegistryError } from '../src/http-errors.js';
import {
  OCI_INDEX,
  UNKNOWN_DIGEST,
  assertRegistryError,
  comparableHeaders,
  jobFor,
  seedImage,
  startRegistry,
  type ExpectedError,
  type RegistryOptions,
  type TestRegistry,
} from './registry-fixture.js';

/** What the API answers for anything it did not expect, whatever the exception said. */
const GENERIC = 'internal error; the registry logged the details';
const HELLO_KEY = jobFor('hello').imageKey;

interface ErrorCase extends ExpectedError {
  name: string;
  method?: string;
  path: string;
  headers?: OutgoingHttpHeaders;
  options?: RegistryOptions;
  setUp?(registry: TestRegistry): Promise<void> | void;
  /** Build jobs the request makes (0: refused before the queue). */
  jobs?: number;
  /** Whether the error handler logs it (every 5xx, and anything that is not a RegistryError). */
  logged?: boolean;
  /** The message names the request's method, so a HEAD's length differs. */
  namesMethod?: boolean;
  /** The Retry-After header, for errors a retry may get past. */
  retryAfter?: string;
}

const failure = (f: BuildFailure) => (registry: TestRegistry) => {
  registry.builds.outcome = { kind: 'reject', error: registryErrorFor(f, HELLO_KEY) };
};

const CASES: ErrorCase[] = [
  // NAME_UNKNOWN 404: a name outside the grammar of docs/design.md §2, before anything else.
  {
    name: 'a quote in a name',
    path: '/v2/hel"lo/manifests/latest',
    status: 404,
    code: 'NAME_UNKNOWN',
    message: 'invalid image name component "hel\\"lo": contains a quote',
    detail: { component: '"hel\\"lo"', position: 0, reason: 'contains a quote' },
  },
  {
    name: 'Nix interpolation in a name',
    path: '/v2/${builtins.abort}/manifests/latest',
    status: 404,
    code: 'NAME_UNKNOWN',
    message: 'invalid image name component "${builtins.abort}": contains "${" (Nix interpolation)',
    detail: { component: '"${builtins.abort}"', position: 0, reason: 'contains "${" (Nix interpolation)' },
  },
  {
    name: 'a .. component',
    path: '/v2/hello/../etc/manifests/latest',
    status: 404,
    code: 'NAME_UNKNOWN',
    message: 'invalid image name component "..": has an empty attribute segment (a leading, trailing or doubled ".")',
    detail: { component: '".."', position: 1, reason: 'has an empty attribute segment (a leading, trailing or doubled ".")' },
  },
  {
    name: 'an empty component',
    path: '/v2/hello//jq/manifests/latest',
    status: 404,
    code: 'NAME_UNKNOWN',
    message: 'invalid image name component 2: empty (a leading, trailing or doubled "/")',
    detail: { component: '', position: 1, reason: 'empty component' },
  },
  {
    name: '65 components',
    path: `/v2/${Array.from({ length: 65 }, (_, i) => `p${i}`).join('/')}/manifests/latest`,
    status: 404,
    code: 'NAME_UNKNOWN',
    message: 'invalid image name: 65 components, at most 64 allowed (first extra component "p64")',
    detail: { component: '"p64"', position: 64, reason: 'too many components' },
  },
  {
    name: 'a name of meta-packages only',
    path: '/v2/arm64/manifests/latest',
    status: 404,
    code: 'NAME_UNKNOWN',
    message: 'invalid image name "arm64": it names no package',
    detail: { name: '"arm64"', reason: 'no packages' },
  },
  {
    name: 'a percent-encoded name (names are matched undecoded)',
    path: '/v2/he%6Clo/manifests/latest',
    status: 404,
    code: 'NAME_UNKNOWN',
    message: 'invalid image name component "he%6Clo": contains "%" (allowed: letters, digits, "_", "-" and "." between segments)',
    detail: { component: '"he%6Clo"', position: 0, reason: 'contains "%" (allowed: letters, digits, "_", "-" and "." between segments)' },
  },
  {
    name: 'an invalid name on a blob',
    path: `/v2/-x/blobs/${UNKNOWN_DIGEST}`,
    status: 404,
    code: 'NAME_UNKNOWN',
    message: 'invalid image name component "-x": has a segment starting with "-"',
    detail: { component: '"-x"', position: 0, reason: 'has a segment starting with "-"' },
  },
  {
    name: 'an invalid name on tags/list',
    path: '/v2/-x/tags/list',
    status: 404,
    code: 'NAME_UNKNOWN',
    message: 'invalid image name component "-x": has a segment starting with "-"',
    detail: { component: '"-x"', position: 0, reason: 'has a segment starting with "-"' },
  },
  {
    name: 'an invalid name with a digest reference: the name is checked first',
    path: '/v2/-x/manifests/sha256:zz',
    status: 404,
    code: 'NAME_UNKNOWN',
    message: 'invalid image name component "-x": has a segment starting with "-"',
    detail: { component: '"-x"', position: 0, reason: 'has a segment starting with "-"' },
  },

  // MANIFEST_UNKNOWN 404: a reference that is neither a tag nor a digest names no manifest.
  {
    name: 'a tag starting with "-"',
    path: '/v2/hello/manifests/-bad-tag',
    status: 404,
    code: 'MANIFEST_UNKNOWN',
    message: 'invalid tag "-bad-tag": expected [A-Za-z0-9_][A-Za-z0-9._-]{0,127}',
    detail: { tag: '"-bad-tag"' },
  },
  {
    name: 'a tag of 129 characters',
    path: `/v2/hello/manifests/${'t'.repeat(129)}`,
    status: 404,
    code: 'MANIFEST_UNKNOWN',
    // Untrusted values are shown cut to 40 characters (core's displayValue).
    message: `invalid tag "${'t'.repeat(40)}"... (129 characters): expected [A-Za-z0-9_][A-Za-z0-9._-]{0,127}`,
    detail: { tag: `"${'t'.repeat(40)}"... (129 characters)` },
  },

  // Anything with ":" is a digest, and only sha256 in lowercase hex: else no manifest, no blob.
  {
    name: 'a short digest on a manifest',
    path: '/v2/hello/manifests/sha256:abc',
    status: 404,
    code: 'MANIFEST_UNKNOWN',
    message: 'invalid digest "sha256:abc": expected "sha256:" followed by 64 lowercase hex digits',
    detail: { digest: '"sha256:abc"' },
  },
  {
    name: 'an uppercase digest on a manifest',
    path: `/v2/hello/manifests/sha256:${'A'.repeat(64)}`,
    status: 404,
    code: 'MANIFEST_UNKNOWN',
    message: `invalid digest "sha256:${'A'.repeat(33)}"... (71 characters): expected "sha256:" followed by 64 lowercase hex digits`,
    detail: { digest: `"sha256:${'A'.repeat(33)}"... (71 characters)` },
  },
  {
    name: 'another algorithm on a manifest',
    path: `/v2/hello/manifests/sha512:${'0'.repeat(128)}`,
    status: 404,
    code: 'MANIFEST_UNKNOWN',
    message: `invalid digest "sha512:${'0'.repeat(33)}"... (135 characters): expected "sha256:" followed by 64 lowercase hex digits`,
    detail: { digest: `"sha512:${'0'.repeat(33)}"... (135 characters)` },
  },
  {
    name: 'a malformed digest on a blob',
    path: '/v2/hello/blobs/sha256:zz',
    status: 404,
    code: 'BLOB_UNKNOWN',
    message: 'invalid digest "sha256:zz": expected "sha256:" followed by 64 lowercase hex digits',
    detail: { digest: '"sha256:zz"' },
  },
  {
    name: 'GET of the upload endpoint without a slash: "uploads" is no digest',
    path: '/v2/hello/blobs/uploads',
    status: 404,
    code: 'BLOB_UNKNOWN',
    message: 'invalid digest "uploads": expected "sha256:" followed by 64 lowercase hex digits',
    detail: { digest: '"uploads"' },
  },

  // MANIFEST_UNKNOWN 404
  {
    name: 'an unknown manifest digest',
    path: `/v2/hello/manifests/${UNKNOWN_DIGEST}`,
    status: 404,
    code: 'MANIFEST_UNKNOWN',
    message: `no manifest with digest ${UNKNOWN_DIGEST}`,
    detail: { digest: UNKNOWN_DIGEST },
  },
  {
    name: 'a stored blob that is not a manifest (a layer), asked for as one',
    path: '/v2/hello/manifests/sha256:a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447', // sha256("hello\n")
    setUp: async (registry) => {
      await registry.storage.writeBlob(Readable.from([Buffer.from('hello\n')]));
    },
    status: 404,
    code: 'MANIFEST_UNKNOWN',
    message: 'no manifest with digest sha256:a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447',
    detail: { digest: 'sha256:a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447' },
  },
  {
    name: 'an unknown package, from the package index, without a job',
    path: '/v2/hello/nosuch/manifests/latest',
    setUp: (registry) => {
      registry.packageIndex.names = new Set(['hello', 'jq']);
    },
    status: 404,
    code: 'MANIFEST_UNKNOWN',
    message: 'unknown packages: nosuch',
    detail: { packages: ['nosuch'] },
  },
  {
    name: 'an unknown nested package whose top level is unknown too, from the index',
    path: '/v2/hello/xorg.nosuch/nosuch/manifests/latest',
    setUp: (registry) => {
      registry.packageIndex.names = new Set(['hello']);
    },
    status: 404,
    code: 'MANIFEST_UNKNOWN',
    message: 'unknown packages: nosuch, xorg.nosuch',
    detail: { packages: ['nosuch', 'xorg.nosuch'] },
  },
  {
    name: 'an unknown package with no worker alive: the index answers first (404, not 503)',
    path: '/v2/hello/nosuch/manifests/latest',
    setUp: (registry) => {
      registry.packageIndex.names = new Set(['hello']);
      registry.workers.counts.set('x86_64-linux', 0);
    },
    status: 404,
    code: 'MANIFEST_UNKNOWN',
    message: 'unknown packages: nosuch',
    detail: { packages: ['nosuch'] },
  },
  {
    name: 'a tag other than latest on a path source',
    path: '/v2/hello/manifests/v1',
    status: 404,
    code: 'MANIFEST_UNKNOWN',
    message: 'unknown tag "v1": a package path has only the tag "latest"',
    detail: { tag: 'v1' },
  },
  {
    name: 'a commit as the tag on a path source',
    path: `/v2/hello/manifests/${'a'.repeat(40)}`,
    status: 404,
    code: 'MANIFEST_UNKNOWN',
    message: `unknown tag "${'a'.repeat(40)}": a package path has only the tag "latest"`,
    detail: { tag: 'a'.repeat(40) },
  },
  {
    name: 'a system the registry does not serve',
    path: '/v2/arm64/hello/manifests/latest',
    status: 404,
    code: 'MANIFEST_UNKNOWN',
    message: 'this registry does not serve aarch64-linux images',
    detail: { system: 'aarch64-linux' },
  },
  {
    name: 'an UNKNOWN_PACKAGES build failure (nested names only Nix can judge)',
    path: '/v2/hello/manifests/latest',
    setUp: failure({ code: 'UNKNOWN_PACKAGES', message: 'not in the package set', packages: ['hello'] }),
    jobs: 1,
    status: 404,
    code: 'MANIFEST_UNKNOWN',
    message: 'unknown packages: hello',
    detail: { packages: ['hello'] },
  },
  {
    name: 'a record whose manifest blob is gone from storage',
    path: '/v2/hello/manifests/latest',
    setUp: async (registry) => {
      const image = await seedImage(registry.storage, 'hello');
      await registry.storage.deleteBlob(image.oci.descriptor.digest);
    },
    status: 404,
    code: 'MANIFEST_UNKNOWN',
    message: 'the manifest sha256:MISSING is missing from storage',
    detail: { digest: 'sha256:MISSING' },
  },

  // BLOB_UNKNOWN 404
  {
    name: 'an unknown blob',
    path: `/v2/hello/blobs/${UNKNOWN_DIGEST}`,
    status: 404,
    code: 'BLOB_UNKNOWN',
    message: `no blob with digest ${UNKNOWN_DIGEST}`,
    detail: { digest: UNKNOWN_DIGEST },
  },

  // NAME_UNKNOWN 404: no such endpoint
  ...['/v2/hello', '/v2/hello/manifests/', '/v2/hello/manifests/latest/', '/v2//manifests/latest', '/v2/hello/blobs/uploads/', '/v3/', '/nope'].map(
    (path): ErrorCase => ({
      name: `no endpoint at ${path}`,
      path,
      status: 404,
      code: 'NAME_UNKNOWN',
      message: `no such endpoint: GET ${path}`,
      detail: null,
      namesMethod: true,
    }),
  ),

  // Pushes and deletions (read-only.ts; every endpoint's in spec-endpoints.test.ts): a push is
  // 404 NAME_UNKNOWN (end-7 lists 404), an upload session 404 BLOB_UPLOAD_UNKNOWN, a deletion
  // 405 UNSUPPORTED (deletion disabled, end-9).
  {
    name: 'a push',
    method: 'PUT',
    path: '/v2/hello/manifests/latest',
    status: 404,
    code: 'NAME_UNKNOWN',
    message: 'PUT is not supported: this registry builds its images itself and accepts no pushes',
    detail: null,
  },
  {
    name: 'an upload session',
    path: '/v2/hello/blobs/uploads/0f6a1c1e-5ef8-4a40-a5f6-0d9f0a5f1a8b',
    status: 404,
    code: 'BLOB_UPLOAD_UNKNOWN',
    message: 'no such upload: this registry builds its images itself and accepts no pushes, so it starts no uploads',
    detail: null,
  },
  {
    name: 'a deletion',
    method: 'DELETE',
    path: '/v2/hello/manifests/latest',
    status: 405,
    code: 'UNSUPPORTED',
    message: 'DELETE is not supported: this registry builds its images itself and accepts no pushes',
    detail: null,
  },

  // UNAVAILABLE 503
  {
    name: 'no live worker for the system',
    path: '/v2/hello/manifests/latest',
    setUp: (registry) => {
      registry.workers.counts.set('x86_64-linux', 0);
    },
    status: 503,
    code: 'UNAVAILABLE',
    message: 'no worker builds x86_64-linux images right now; try again later',
    detail: { system: 'x86_64-linux' },
    logged: true,
    retryAfter: '5',
  },
  {
    name: 'no live worker for one of the index systems, for a client that accepts an index',
    path: '/v2/hello/manifests/latest',
    headers: { accept: OCI_INDEX },
    options: { systems: ['x86_64-linux', 'aarch64-linux'], indexSystems: ['x86_64-linux', 'aarch64-linux'] },
    setUp: async (registry) => {
      await seedImage(registry.storage, 'hello');
      registry.workers.counts.set('aarch64-linux' satisfies System, 0);
    },
    status: 503,
    code: 'UNAVAILABLE',
    message: 'no worker builds aarch64-linux images right now; try again later',
    detail: { system: 'aarch64-linux' },
    logged: true,
    retryAfter: '5',
  },
  {
    name: 'a WORKER_CRASHED build failure (BullMQ gave up on a job whose workers kept dying)',
    path: '/v2/hello/manifests/latest',
    setUp: failure({ code: 'WORKER_CRASHED', message: 'the worker running the build stopped without finishing it' }),
    jobs: 1,
    status: 503,
    code: 'UNAVAILABLE',
    message: `the workers running build job ${HELLO_KEY} crashed or were killed before finishing it, more often than it is retried; try again later`,
    detail: { job: HELLO_KEY },
    logged: true,
    retryAfter: '30',
  },

  // UNKNOWN 500: typed build failures, a build that stored nothing, anything unexpected.
  {
    name: 'a BUILD_FAILED build failure',
    path: '/v2/hello/manifests/latest',
    setUp: failure({ code: 'BUILD_FAILED', message: 'nix-build exited with 1', logTail: 'error: builder failed\n' }),
    jobs: 1,
    status: 500,
    code: 'UNKNOWN',
    message: `the build failed: nix-build exited with 1; see the log of build job ${HELLO_KEY}`,
    detail: { job: HELLO_KEY },
    logged: true,
  },
  {
    name: 'a TIMEOUT build failure',
    path: '/v2/hello/manifests/latest',
    setUp: failure({ code: 'TIMEOUT', message: 'nix-build timed out', seconds: 120, logTail: '' }),
    jobs: 1,
    status: 500,
    code: 'UNKNOWN',
    message: `the build timed out after 120s (NIX_TIMEOUT); see the log of build job ${HELLO_KEY}`,
    detail: { job: HELLO_KEY, seconds: 120 },
    logged: true,
  },
  {
    name: 'a STORAGE build failure',
    path: '/v2/hello/manifests/latest',
    setUp: failure({ code: 'STORAGE', message: 'bucket unreachable' }),
    jobs: 1,
    status: 500,
    code: 'UNKNOWN',
    message: 'the image could not be stored: bucket unreachable',
    detail: { job: HELLO_KEY },
    logged: true,
  },
  {
    name: 'a build that finished without storing its record',
    path: '/v2/hello/manifests/latest',
    setUp: (registry) => {
      registry.builds.outcome = { kind: 'publish-nothing' };
    },
    jobs: 1,
    status: 500,
    code: 'UNKNOWN',
    message: 'the build finished but its manifest record is missing from storage',
    detail: null,
    logged: true,
  },
  {
    name: 'an unexpected exception from the build queue (not a RegistryError)',
    path: '/v2/hello/manifests/latest',
    setUp: (registry) => {
      registry.builds.outcome = { kind: 'reject', error: new TypeError('Redis said something odd') };
    },
    jobs: 1,
    status: 500,
    code: 'UNKNOWN',
    message: GENERIC,
    detail: null,
    logged: true,
  },
  {
    name: 'an unexpected exception from storage',
    path: '/v2/hello/manifests/latest',
    options: {
      storage: new (class extends MemoryStorage {
        override async getRecord(): Promise<unknown> {
          throw new Error('EIO: disk on fire');
        }
      })(),
    },
    status: 500,
    code: 'UNKNOWN',
    message: GENERIC,
    detail: null,
    logged: true,
  },
];

/** Codes no request to the API can produce today (see the file's opening comment). */
const UNREACHABLE: readonly RegistryErrorCode[] = ['UNAUTHORIZED', 'DENIED', 'TOOMANYREQUESTS', 'NAME_INVALID', 'TAG_INVALID', 'DIGEST_INVALID'];

test('every registry error code is produced by a case below, or listed as unreachable', () => {
  const produced = new Set(CASES.map((c) => c.code));
  const all = Object.keys(REGISTRY_ERROR_STATUS).sort();
  assert.deepEqual([...produced, ...UNREACHABLE].sort(), all);
  for (const code of UNREACHABLE) assert.ok(!produced.has(code), `${code} is listed as unreachable but produced`);
  for (const c of CASES) assert.equal(c.status, REGISTRY_ERROR_STATUS[c.code as RegistryErrorCode], c.name);
});

test('each typed build failure is one case here, as docs/design.md §3 maps it', () => {
  const mapped = CASES.filter((c) => c.name.endsWith('build failure') || c.name.includes('build failure ('));
  assert.deepEqual(mapped.map((c) => [c.name.split(' ')[1], c.status, c.code]), [
    ['UNKNOWN_PACKAGES', 404, 'MANIFEST_UNKNOWN'],
    ['WORKER_CRASHED', 503, 'UNAVAILABLE'],
    ['BUILD_FAILED', 500, 'UNKNOWN'],
    ['TIMEOUT', 500, 'UNKNOWN'],
    ['STORAGE', 500, 'UNKNOWN'],
  ]);
});

describe('each error over HTTP', () => {
  for (const c of CASES) {
    test(`${c.code} ${c.status}: ${c.name}`, async () => {
      const registry = await startRegistry({ logLevel: 'error', ...c.options });
      try {
        await c.setUp?.(registry);
        let expected: ExpectedError = c;
        if (c.message.includes('sha256:MISSING')) {
          const digest = (await registry.storage.getRecord(manifestRecordKey(HELLO_KEY)) as { manifests: { oci: { digest: string } } }).manifests.oci.digest;
          expected = { ...c, message: c.message.replace('sha256:MISSING', digest), detail: { digest } };
        }
        const method = c.method ?? 'GET';
        const get = await registry.request(method, c.path, { 'x-request-id': 'error-case', ...c.headers });
        assertRegistryError(get, expected, c.name);
        assert.equal(get.headers['allow'], c.code === 'UNSUPPORTED' ? 'GET, HEAD' : undefined);
        assert.equal(get.headers['retry-after'], c.retryAfter, 'Retry-After');
        assert.equal(registry.builds.jobs.length, c.jobs ?? 0, 'build jobs');

        const failures = registry.logs.filter((l) => l.msg === 'request failed');
        assert.equal(failures.length, c.logged ? 1 : 0, 'logged by the error handler');
        if (c.logged) assert.deepEqual([failures[0]!.method, failures[0]!.path], [method, c.path.split('?')[0]]);

        if (method === 'GET') {
          // HEAD: the same status and headers, no body (a HEAD that builds builds again).
          const head = await registry.request('HEAD', c.path, { 'x-request-id': 'error-case', ...c.headers });
          assert.equal(head.status, c.status);
          assert.equal(head.body.length, 0);
          const { ['content-length']: headLength, ...headRest } = comparableHeaders(head);
          const { ['content-length']: getLength, ...getRest } = comparableHeaders(get);
          assert.deepEqual(headRest, getRest);
          assert.equal(headLength, c.namesMethod ? String(Number(getLength) + 1) : getLength);
        }
      } finally {
        await registry.close();
      }
    });
  }
});

test('an unexpected exception is logged with its message and stack, never sent to the client', async () => {
  const registry = await startRegistry({ logLevel: 'error' });
  try {
    registry.builds.outcome = { kind: 'reject', error: new Error('secret internal detail') };
    const res = await registry.request('GET', '/v2/hello/manifests/latest', { 'x-request-id': 'req-500' });
    assertRegistryError(res, { status: 500, code: 'UNKNOWN', message: GENERIC, detail: null });
    assert.ok(!res.body.toString().includes('secret'));
    const line = registry.logs.find((l) => l.msg === 'request failed')!;
    const err = line.err as { message: string; stack: string };
    assert.equal(err.message, 'secret internal detail');
    assert.match(err.stack, /secret internal detail/);
    // The access line for the request carries the request id, as the worker's lines do.
    assert.ok(registry.logs.some((l) => l.requestId === 'req-500' && l.msg !== 'request failed'));
  } finally {
    await registry.close();
  }
});

test('a failed build is not remembered: the next pull makes a new job', async () => {
  const registry = await startRegistry();
  try {
    registry.builds.outcome = { kind: 'reject', error: registryErrorFor({ code: 'BUILD_FAILED', message: 'flaky', logTail: '' }, HELLO_KEY) };
    assert.equal((await registry.request('GET', '/v2/hello/manifests/latest')).status, 500);
    registry.builds.outcome = { kind: 'publish' };
    assert.equal((await registry.request('GET', '/v2/hello/manifests/latest')).status, 200);
    assert.deepEqual(registry.builds.jobs.map((j) => j.imageKey), [HELLO_KEY, HELLO_KEY]);
  } finally {
    await registry.close();
  }
});

describe('sendRegistryError and errorHandler, for every code (reachable or not)', () => {
  async function withApp(run: (port: number, logs: Array<Record<string, unknown>>) => Promise<void>): Promise<void> {
    const logs: Array<Record<string, unknown>> = [];
    const app = express();
    app.get('/send/:code', (req, res) => {
      const code = req.params.code as RegistryErrorCode;
      sendRegistryError(res, new RegistryError(code, `a ${code}`, { code }), req.method === 'HEAD');
    });
    app.get('/throw/:code', (req) => {
      const code = req.params.code as RegistryErrorCode;
      throw new RegistryError(code, `thrown ${code}`, [1, 'two']);
    });
    app.use(errorHandler(pino({ level: 'error' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) })));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    try {
      await run((server.address() as AddressInfo).port, logs);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  }

  for (const [code, status] of Object.entries(REGISTRY_ERROR_STATUS) as Array<[RegistryErrorCode, number]>) {
    test(`${code} → ${status}`, async () => {
      await withApp(async (port, logs) => {
        const sent = await fetch(`http://127.0.0.1:${port}/send/${code}`);
        assert.equal(sent.status, status);
        assert.equal(sent.headers.get('content-type'), 'application/json');
        assert.equal(sent.headers.get('allow'), code === 'UNSUPPORTED' ? 'GET, HEAD' : null);
        const text = await sent.text();
        assert.equal(sent.headers.get('content-length'), String(Buffer.byteLength(text)));
        assert.deepEqual(JSON.parse(text), { errors: [{ code, message: `a ${code}`, detail: { code } }] });

        const head = await fetch(`http://127.0.0.1:${port}/send/${code}`, { method: 'HEAD' });
        assert.equal(head.status, status);
        assert.equal(head.headers.get('content-length'), String(Buffer.byteLength(text)));
        assert.equal((await head.arrayBuffer()).byteLength, 0);

        const thrown = await fetch(`http://127.0.0.1:${port}/throw/${code}`);
        assert.equal(thrown.status, status);
        assert.deepEqual(await thrown.json(), { errors: [{ code, message: `thrown ${code}`, detail: [1, 'two'] }] });
        // Only server-side failures are worth a log line.
        assert.equal(logs.filter((l) => l.msg === 'request failed').length, status >= 500 ? 1 : 0);
      });
    });
  }
});
