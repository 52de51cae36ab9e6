import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkReadiness } from '../src/readiness.js';

test('ready when every check answers', async () => {
  assert.deepEqual(await checkReadiness({ redis: async () => 'PONG', storage: async () => undefined }), {
    ready: true,
    checks: { redis: 'ok', storage: 'ok' },
  });
});

test('a failing or hanging check makes it unready, naming the problem', async () => {
  const result = await checkReadiness(
    { redis: () => new Promise(() => {}), storage: async () => Promise.reject(new Error('EACCES')), other: async () => 1 },
    50,
  );
  assert.deepEqual(result, { ready: false, checks: { redis: 'no answer within 50 ms', storage: 'EACCES', other: 'ok' } });
});
