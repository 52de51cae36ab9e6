import assert from 'node:assert/strict';
import { test } from 'node:test';
import { countStates, type PrebuildImage } from '@nixyard/core';
import { batchOf } from './fixtures.js';
import { ApiError, ConnectionError } from '../src/admin-client.js';
import { allReady, doneCount, formatCounts, formatError, formatOutcome, formatStatus } from '../src/summary.js';

const KEY = 'a'.repeat(64);
const DIGEST = `sha256:${'b'.repeat(64)}` as const;


const built: PrebuildImage = { image: 'hello', system: 'x86_64-linux', imageKey: KEY, state: 'built', manifestDigest: DIGEST };
const cached: PrebuildImage = { image: 'jq', system: 'x86_64-linux', imageKey: KEY, state: 'cached', manifestDigest: DIGEST };
const unknown: PrebuildImage = {
  image: 'nosuchpkg:latest',
  system: 'x86_64-linux',
  imageKey: KEY,
  state: 'failed',
  failure: { code: 'UNKNOWN_PACKAGES', message: 'unknown packages: nosuchpkg', packages: ['nosuchpkg'] },
};

test('counts: done is built + cached + failed; running work and cancellations shown only when present', () => {
  const counts = countStates([built, cached, unknown, { ...built, state: 'queued' }]);
  assert.equal(doneCount(counts), 3);
  assert.equal(formatCounts(counts, 4), '3/4 done: 1 built, 1 cached, 1 failed; 0 building, 1 queued');
  assert.equal(formatCounts(countStates([built, { ...built, state: 'cancelled' }]), 2), '1/2 done: 1 built, 0 cached, 0 failed, 1 cancelled');
});

test('a settled batch with a failure lists it with its code, message and unknown packages', () => {
  const batch = batchOf([built, cached, unknown], { label: 'nightly' });
  assert.equal(allReady(batch), false);
  const lines = formatStatus(batch);
  assert.deepEqual(lines, [
    'batch 00000000-0000-4000-8000-000000000000 (nightly): settled, created 2025-01-01T00:00:00.000Z',
    '  3/3 done: 1 built, 1 cached, 1 failed',
    'failed images (1):',
    '  nosuchpkg:latest [x86_64-linux]: UNKNOWN_PACKAGES: unknown packages: nosuchpkg',
  ]);
  // When the message does not name them, the list is printed on its own.
  const quiet = { ...unknown, failure: { code: 'UNKNOWN_PACKAGES' as const, message: 'some packages are unknown', packages: ['a', 'b.c'] } };
  assert.ok(formatStatus(batchOf([quiet])).includes('    unknown packages: a, b.c'));
});

test('a build failure shows the end of its log; cancelled images are listed too', () => {
  const broken: PrebuildImage = {
    ...built,
    image: 'curl',
    state: 'failed',
    failure: { code: 'BUILD_FAILED', message: 'nix-build failed', logTail: ['l1', 'l2', '', 'l3', 'l4', 'l5', 'l6', ''].join('\n') },
  };
  const lines = formatOutcome(batchOf([broken, { ...built, image: 'arm64/hello', system: 'aarch64-linux', state: 'cancelled' }]));
  assert.match(lines[0]!, /settled: 1\/2 done: 0 built, 0 cached, 1 failed, 1 cancelled; not every image is available$/);
  assert.deepEqual(lines.slice(1), [
    'failed images (1):',
    '  curl [x86_64-linux]: BUILD_FAILED: nix-build failed',
    '    | l2',
    '    | l3',
    '    | l4',
    '    | l5',
    '    | l6',
    'cancelled images (1):',
    '  arm64/hello [aarch64-linux]',
  ]);
  assert.match(formatOutcome(batchOf([built, cached]))[0]!, /all images are available$/);
});

test('API errors are one line, invalid entries mapped back to the lines of the file', () => {
  const err = new ApiError(400, 'BATCH_INVALID', '1 of 3 images are invalid; nothing was enqueued', { invalid: [{ index: 2, image: 'nosuch!', reason: 'bad' }] }, 'http://x/api/v1/prebuilds');
  assert.deepEqual(formatError(err, { source: 'list.txt', lines: [{ line: 1, image: 'a' }, { line: 4, image: 'b' }, { line: 9, image: 'nosuch!' }] }), [
    'nixyard: 400 BATCH_INVALID: 1 of 3 images are invalid; nothing was enqueued',
    '  list.txt:9: nosuch!: bad',
  ]);
  assert.deepEqual(formatError(err), ['nixyard: 400 BATCH_INVALID: 1 of 3 images are invalid; nothing was enqueued', '  image 3: nosuch!: bad']);
  assert.deepEqual(formatError(new ApiError(401, 'UNAUTHORIZED', 'a bearer token is required', null, 'u')), [
    'nixyard: 401 UNAUTHORIZED: a bearer token is required',
    '  (set NIXYARD_ADMIN_TOKEN or pass --token)',
  ]);
  assert.deepEqual(formatError(new ConnectionError('cannot reach http://h:1/api/v1/prebuilds: connect ECONNREFUSED', 'u')), [
    'nixyard: cannot reach http://h:1/api/v1/prebuilds: connect ECONNREFUSED',
  ]);
});
