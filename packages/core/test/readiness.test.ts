import assert from 'node:assert/strict';
import { test } from 'node:test';
import { checkReadiness, roleReadiness } from '../src/readiness.js';
import { MemoryStorage } from '../src/storage/memory.js';

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

test("a role is ready when Redis answers and storage answers a lookup, and says which one did not", async () => {
  const storage = new MemoryStorage();
  assert.deepEqual(await roleReadiness({ pingRedis: async () => 'PONG', storage })(), { ready: true, checks: { redis: 'ok', storage: 'ok' } });
  const down = roleReadiness({ pingRedis: async () => Promise.reject(new Error('Connection is closed.')), storage: { statBlob: async () => Promise.reject(new Error('EIO')) } });
  assert.deepEqual(await down(), { ready: false, checks: { redis: 'Connection is closed.', storage: 'EIO' } });
});
