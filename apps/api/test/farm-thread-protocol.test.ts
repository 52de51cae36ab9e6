// Errors crossing from the farm's thread to the serving thread (farm-thread-protocol.ts) keep the
// class and fields the API answers by, through a real structured clone as postMessage makes it;
// and only the farm's listed methods can be called across.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AdminError, RegistryError } from '@nixyard/core';
import { DeadlineError } from '../src/deadline.js';
import { decodeError, encodeError, isFarmCall } from '../src/farm-thread-protocol.js';

/** As the error arrives on the other thread. */
const across = (err: unknown) => decodeError(structuredClone(encodeError(err)));

test('a RegistryError arrives as one, with its code, status, detail and Retry-After', () => {
  const sent = new RegistryError('TOOMANYREQUESTS', 'too many builds are waiting', { system: 'x86_64-linux' }, { retryAfterSeconds: 30 });
  const got = across(sent);
  assert.ok(got instanceof RegistryError);
  assert.equal(got.code, 'TOOMANYREQUESTS');
  assert.equal(got.status, 429);
  assert.equal(got.message, sent.message);
  assert.deepEqual(got.detail, { system: 'x86_64-linux' });
  assert.equal(got.retryAfterSeconds, 30);
  assert.deepEqual(got.toBody(), sent.toBody());

  const plain = across(new RegistryError('MANIFEST_UNKNOWN', 'unknown packages: nope', { packages: ['nope'] }));
  assert.ok(plain instanceof RegistryError);
  assert.equal(plain.retryAfterSeconds, undefined);
  assert.equal(plain.status, 404);
});

test('an AdminError and a DeadlineError arrive as themselves', () => {
  const admin = across(new AdminError('UNAVAILABLE', 'another submission is being enqueued', null, { retryAfterSeconds: 5 }));
  assert.ok(admin instanceof AdminError);
  assert.equal(admin.code, 'UNAVAILABLE');
  assert.equal(admin.status, 503);
  assert.equal(admin.retryAfterSeconds, 5);

  const unknownBatch = across(new AdminError('BATCH_UNKNOWN', 'no prebuild batch x', { id: 'x' }));
  assert.ok(unknownBatch instanceof AdminError);
  assert.equal(unknownBatch.status, 404);
  assert.deepEqual(unknownBatch.detail, { id: 'x' });

  const deadline = across(new DeadlineError('taking the submit lock', 1500));
  assert.ok(deadline instanceof DeadlineError);
  assert.equal(deadline.what, 'taking the submit lock');
  assert.equal(deadline.message, 'taking the submit lock did not answer within 1500 ms');
});

test('any other error arrives as a plain Error with its name, message and the thread\'s stack', () => {
  const sent = new TypeError('cannot read properties of undefined');
  const got = across(sent);
  assert.ok(!(got instanceof RegistryError) && !(got instanceof AdminError));
  assert.equal(got.name, 'TypeError');
  assert.equal(got.message, sent.message);
  assert.equal(got.stack, sent.stack);

  const thrown = across('a string, thrown');
  assert.equal(thrown.message, 'a string, thrown');
});

test('only the farm\'s listed methods can be called across', () => {
  assert.ok(isFarmCall('coldBuilds', 'build'));
  assert.ok(isFarmCall('status', 'queueDepth'));
  assert.ok(isFarmCall('health', 'ping'));
  assert.ok(!isFarmCall('coldBuilds', 'constructor'));
  assert.ok(!isFarmCall('prebuilds', 'close'));
  assert.ok(!isFarmCall('toString', 'call'));
  assert.ok(!isFarmCall('__proto__', 'build'));
});
