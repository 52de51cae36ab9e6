// The options every BullMQ worker of the process gets: core's stall timings, this process's name,
// quick retries; and BullMQ's own wording for a job that stalled too often, which core decodes.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { LOCK_DURATION_MS, MAX_STALLED_COUNT, STALLED_INTERVAL_MS, STALLED_JOB_REASON, redisConnectionOptions } from '@nixyard/core';
import { FETCH_RETRY_DELAY_MS, queueWorkerOptions } from '../src/queue-options.js';

test('every worker takes the stall timings from core and names itself', () => {
  const connection = redisConnectionOptions('redis://127.0.0.1:6379');
  const options = queueWorkerOptions(connection, 'host:42:abcdef01', 3);
  assert.equal(options.lockDuration, LOCK_DURATION_MS);
  assert.equal(options.lockRenewTime, LOCK_DURATION_MS / 2);
  assert.equal(options.stalledInterval, STALLED_INTERVAL_MS);
  assert.equal(options.maxStalledCount, MAX_STALLED_COUNT);
  assert.equal(options.name, 'host:42:abcdef01');
  assert.equal(options.concurrency, 3);
  assert.equal(options.runRetryDelay, FETCH_RETRY_DELAY_MS);
  assert.equal(options.connection, connection);
  assert.equal(connection.maxRetriesPerRequest, null, 'BullMQ needs it for blocking connections');
});

test("BullMQ fails a job that stalled too often with the reason core decodes", () => {
  const require = createRequire(import.meta.url);
  const root = dirname(require.resolve('bullmq/package.json'));
  const script = readFileSync(join(root, 'dist/esm/commands/moveStalledJobsToWait-9.lua'), 'utf8');
  assert.ok(script.includes(`"${STALLED_JOB_REASON}"`), 'the reason in moveStalledJobsToWait.lua');
});
