// Deadlines on what a request waits for (deadline.ts): a late answer becomes 503 UNAVAILABLE with
// Retry-After; a prompt one, or a prompt failure, passes through unchanged.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { RegistryError } from '@nixyard/core';
import { DeadlineError, REDIS_RETRY_AFTER_SECONDS, fromRedis, within } from '../src/deadline.js';

const never = () => new Promise<never>(() => {});

test('within: the answer of the work, or DeadlineError once the time is up', async () => {
  assert.equal(await within(1000, Promise.resolve(7), 'x'), 7);
  await assert.rejects(within(1000, Promise.reject(new Error('refused')), 'x'), /refused/);
  await assert.rejects(within(10, never(), 'counting workers'), (err) => err instanceof DeadlineError && /counting workers did not answer within 10 ms/.test(err.message));
});

test('within: work that fails after its deadline is not an unhandled rejection', async () => {
  let rejectLate!: (err: Error) => void;
  const late = new Promise<never>((_, reject) => (rejectLate = reject));
  await assert.rejects(within(5, late, 'x'), DeadlineError);
  rejectLate(new Error('too late'));
  await new Promise((resolve) => setImmediate(resolve)); // an unhandled rejection would fail this test
});

test('fromRedis: a frozen Redis becomes 503 UNAVAILABLE with Retry-After', async (t) => {
  t.mock.timers.enable({ apis: ['setTimeout'] });
  const answer = fromRedis(never(), 'queueing the build');
  t.mock.timers.tick(1500);
  await assert.rejects(answer, (err) => {
    assert.ok(err instanceof RegistryError);
    assert.equal(err.code, 'UNAVAILABLE');
    assert.equal(err.status, 503);
    assert.equal(err.retryAfterSeconds, REDIS_RETRY_AFTER_SECONDS);
    assert.match(err.message, /Redis did not answer in time \(queueing the build\)/);
    return true;
  });
});

test('fromRedis: other failures pass through as they are', async () => {
  const refused = new RegistryError('TOOMANYREQUESTS', 'busy');
  await assert.rejects(fromRedis(Promise.reject(refused), 'x'), (err) => err === refused);
});
