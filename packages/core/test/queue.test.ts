import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  BUILD_FAILURE_PREFIX,
  BuildFailureError,
  BuildFailureSchema,
  BuildJobDataSchema,
  BuildResultSchema,
  decodeBuildFailure,
  encodeBuildFailure,
  jobIdFor,
  MAX_LOG_TAIL_CHARS,
  MAX_STALLED_COUNT,
  OCI_IMAGE_MANIFEST,
  STALLED_JOB_REASON,
  WORKER_CRASHED_FAILURE,
  type BuildFailure,
  type BuildJobData,
  type BuildResult,
} from '../src/index.js';

const key = 'ab'.repeat(32);

const job: BuildJobData = {
  imageKey: key,
  packages: ['git', 'python3Packages.numpy'],
  system: 'x86_64-linux',
  source: { kind: 'git', url: 'https://example.org/nixpkgs.git', ref: 'main' },
  revision: '0123456789abcdef0123456789abcdef01234567',
  requestId: 'req-1',
};

const result: BuildResult = {
  imageKey: key,
  manifestDigest: `sha256:${'cd'.repeat(32)}`,
  mediaType: OCI_IMAGE_MANIFEST,
  timings: { resolve: 1.5, build: 0, graph: 2, layer: 3, pack: 4, publish: 5 },
};

/** A JSON round trip, as through Redis. */
const viaJson = <T>(value: T): unknown => JSON.parse(JSON.stringify(value));

describe('BuildJobDataSchema', () => {
  it('round-trips through JSON', () => {
    assert.deepEqual(BuildJobDataSchema.parse(viaJson(job)), job);
    const { requestId: _, ...withoutRequestId } = job;
    assert.deepEqual(BuildJobDataSchema.parse(viaJson(withoutRequestId)), withoutRequestId);
  });

  const bad: Array<[string, unknown]> = [
    ['a short key', { ...job, imageKey: 'abc' }],
    ['an uppercase key', { ...job, imageKey: key.toUpperCase() }],
    ['no packages', { ...job, packages: [] }],
    ['73 packages', { ...job, packages: Array.from({ length: 73 }, (_, i) => `p${i}`) }],
    ['a package with Nix syntax', { ...job, packages: ['git', '${abort}'] }],
    ['a package with ..', { ...job, packages: ['a..b'] }],
    ['an unknown system', { ...job, system: 'x86_64-darwin' }],
    ['a relative path source', { ...job, source: { kind: 'path', path: 'pkgs' } }],
    ['an empty revision', { ...job, revision: '' }],
    ['a missing source', { ...job, source: undefined }],
    ['a non-object', 'git'],
  ];
  for (const [what, data] of bad) {
    it(`rejects ${what}`, () => {
      assert.equal(BuildJobDataSchema.safeParse(data).success, false);
    });
  }

  it('accepts 72 packages', () => {
    const packages = Array.from({ length: 72 }, (_, i) => `p${i}`);
    assert.equal(BuildJobDataSchema.safeParse({ ...job, packages }).success, true);
  });
});

describe('BuildResultSchema', () => {
  it('round-trips through JSON', () => {
    assert.deepEqual(BuildResultSchema.parse(viaJson(result)), result);
  });

  const bad: Array<[string, unknown]> = [
    ['a digest without algorithm', { ...result, manifestDigest: 'cd'.repeat(32) }],
    ['an uppercase digest', { ...result, manifestDigest: `sha256:${'CD'.repeat(32)}` }],
    ['an index media type', { ...result, mediaType: 'application/vnd.oci.image.index.v1+json' }],
    ['a negative timing', { ...result, timings: { ...result.timings, pack: -1 } }],
    ['a missing timing', { ...result, timings: { resolve: 1, build: 1, graph: 1, layer: 1, pack: 1 } }],
    ['a string timing', { ...result, timings: { ...result.timings, build: '5' } }],
  ];
  for (const [what, data] of bad) {
    it(`rejects ${what}`, () => {
      assert.equal(BuildResultSchema.safeParse(data).success, false);
    });
  }
});

describe('build failures', () => {
  const failures: BuildFailure[] = [
    { code: 'UNKNOWN_PACKAGES', message: 'unknown packages: gti', packages: ['gti'] },
    { code: 'BUILD_FAILED', message: 'builder failed', logTail: 'line 1\nline 2\n\u00e9' },
    { code: 'TIMEOUT', message: 'timed out', seconds: 60, logTail: '' },
    { code: 'STORAGE', message: 'disk full' },
    { code: 'WORKER_CRASHED', message: 'the worker died' },
  ];

  for (const failure of failures) {
    it(`round-trips ${failure.code}`, () => {
      const encoded = encodeBuildFailure(failure);
      assert.ok(encoded.startsWith(BUILD_FAILURE_PREFIX));
      assert.deepEqual(decodeBuildFailure(encoded), failure);
    });
  }

  it('is carried by BuildFailureError as its message', () => {
    const failure = failures[0] as BuildFailure;
    const error = new BuildFailureError(failure);
    assert.ok(error instanceof Error);
    assert.equal(error.failure, failure);
    assert.equal(error.message, encodeBuildFailure(failure));
    // What BullMQ stores as failedReason is error.message.
    assert.deepEqual(decodeBuildFailure(error.message), failure);
  });

  it('keeps the end of an over-long log tail', () => {
    const log = `${'a'.repeat(MAX_LOG_TAIL_CHARS)}THE END`;
    const decoded = decodeBuildFailure(encodeBuildFailure({ code: 'BUILD_FAILED', message: 'x', logTail: log }));
    assert.equal(decoded?.code, 'BUILD_FAILED');
    const tail = (decoded as { logTail: string }).logTail;
    assert.equal(tail.length, MAX_LOG_TAIL_CHARS);
    assert.ok(tail.endsWith('THE END'));
  });

  it("decodes BullMQ's reason for a job that stalled too often as WORKER_CRASHED", () => {
    const decoded = decodeBuildFailure(STALLED_JOB_REASON);
    assert.equal(STALLED_JOB_REASON, 'job stalled more than allowable limit', "BullMQ's wording (moveStalledJobsToWait.lua)");
    assert.deepEqual(decoded, WORKER_CRASHED_FAILURE);
    assert.equal(decoded?.code, 'WORKER_CRASHED');
    // The message says what happened and how often, for the status page and the admin API.
    assert.match(decoded.message, new RegExp(`killed or crashed\\), ${MAX_STALLED_COUNT + 1} times`));
    assert.equal(BuildFailureSchema.safeParse(decoded).success, true);
    // A copy: a caller changing it cannot change what the next decode returns.
    assert.notEqual(decoded, WORKER_CRASHED_FAILURE);
  });

  it('refuses to encode something that is not a failure', () => {
    assert.throws(() => encodeBuildFailure({ code: 'NOPE', message: 'x' } as unknown as BuildFailure));
  });

  const garbage: unknown[] = [
    '',
    'Error: connection reset',
    'job stalled more than allowable limit ',
    'Error: job stalled more than allowable limit',
    BUILD_FAILURE_PREFIX,
    `${BUILD_FAILURE_PREFIX}{`,
    `${BUILD_FAILURE_PREFIX}null`,
    `${BUILD_FAILURE_PREFIX}[]`,
    `${BUILD_FAILURE_PREFIX}{"code":"NOPE","message":"x"}`,
    `${BUILD_FAILURE_PREFIX}{"code":"TIMEOUT","message":"x","logTail":""}`,
    `${BUILD_FAILURE_PREFIX}{"code":"UNKNOWN_PACKAGES","message":"x","packages":"git"}`,
    `${BUILD_FAILURE_PREFIX}{"__proto__":{"code":"STORAGE"},"message":"x"}`,
    JSON.stringify({ code: 'STORAGE', message: 'no prefix' }),
    undefined,
    null,
    42,
  ];
  for (const reason of garbage) {
    it(`decodes ${JSON.stringify(reason)?.slice(0, 60) ?? String(reason)} to undefined`, () => {
      assert.equal(decodeBuildFailure(reason), undefined);
    });
  }
});

describe('jobIdFor', () => {
  it('is the image key, which BullMQ accepts as a custom id', () => {
    assert.equal(jobIdFor(key), key);
    // BullMQ refuses ':' and ids equal to `${parseInt(id, 10)}`; even an all-digit key passes.
    const digits = '1'.repeat(64);
    assert.equal(jobIdFor(digits), digits);
    assert.notEqual(`${parseInt(digits, 10)}`, digits);
    assert.ok(!jobIdFor(key).includes(':'));
  });

  it('refuses anything but a key', () => {
    assert.throws(() => jobIdFor('123'), TypeError);
    assert.throws(() => jobIdFor(`sha256:${key}`), TypeError);
  });
});
