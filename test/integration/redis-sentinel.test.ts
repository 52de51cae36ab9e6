// Redis through Sentinel (REDIS_SENTINELS, docs/configuration.md): the connection options every
// role builds from its configuration reach the primary that real Sentinels name, and the same
// BullMQ queue, worker and queue events, and a plain ioredis client, carry on after the primary is
// killed and a replica promoted, with no restart and no job lost.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { Queue, QueueEvents, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { buildQueueName, describeRedis, loadConfig, loadMaintenanceConfig, redisConnectionOptions } from '@nixyard/core';
import { REPO_ROOT, freePort } from '../../scripts/stack.js';
import { startSentinelSet, type SentinelSet } from '../helpers/sentinel.js';
import { tempDir } from '../helpers/temp-dir.js';

const QUEUE = buildQueueName('x86_64-linux');

describe('Redis through Sentinel', () => {
  let set: SentinelSet;
  before(async () => {
    set = await startSentinelSet();
  });
  after(() => set.stop());

  test('the roles\' and the CLI\'s configuration name the same Redis, without a password in sight', () => {
    const env = { ...set.env, REDIS_PASSWORD: 'not-in-logs', NIXERY_PKGS_PATH: '/srv/pkgs', STORAGE_PATH: '/srv/storage' };
    const config = loadConfig(env);
    assert.deepEqual(loadMaintenanceConfig(env).redis, config.redis);
    assert.equal(config.redis.kind, 'sentinel');
    assert.ok(!describeRedis(config.redis).includes('not-in-logs'));
    assert.match(describeRedis(config.redis), /^sentinel nixyard via 127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+$/);
  });

  test('nixyard gc reads the builds in flight through the Sentinels, with no REDIS_URL', { timeout: 60_000 }, async () => {
    const storage = tempDir('sentinel-gc');
    try {
      const env = { PATH: process.env.PATH, HOME: process.env.HOME, ...set.env, STORAGE_PATH: storage.path };
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'apps/cli/src/main.ts'), 'gc', '--dry-run', '--json'], { env, timeout: 50_000 });
      const report = JSON.parse(stdout) as { dryRun: boolean; manifests: number; swept: unknown[] };
      assert.deepEqual([report.dryRun, report.manifests, report.swept], [true, 0, []]);
    } finally {
      storage.cleanup();
    }
  });

  test('nixyard gc stops with a message, and exits, when no Sentinel answers', { timeout: 60_000 }, async () => {
    const storage = tempDir('sentinel-gc-down');
    try {
      const env = { PATH: process.env.PATH, HOME: process.env.HOME, REDIS_SENTINELS: `127.0.0.1:${await freePort()}`, REDIS_SENTINEL_NAME: 'nixyard', STORAGE_PATH: storage.path };
      const began = Date.now();
      const failed = await promisify(execFile)(process.execPath, ['--import', 'tsx', join(REPO_ROOT, 'apps/cli/src/main.ts'), 'gc'], { env, timeout: 50_000 }).then(
        () => assert.fail('gc succeeded without Redis'),
        (err: { code: number; stderr: string }) => err,
      );
      assert.equal(failed.code, 3);
      assert.match(failed.stderr, /^nixyard: Redis \(sentinel nixyard via 127\.0\.0\.1:\d+\) did not answer within 10 s: .*; gc needs it to see the builds in flight\n$/);
      assert.ok(Date.now() - began < 30_000, 'gave up after its deadline, and exited');
    } finally {
      storage.cleanup();
    }
  });

  test('a queue, its worker and a plain client follow a failover without a restart', { timeout: 90_000 }, async () => {
    const connection = redisConnectionOptions(loadConfig({ ...set.env, NIXERY_PKGS_PATH: '/srv/pkgs', STORAGE_PATH: '/srv/storage' }).redis);
    const queue = new Queue(QUEUE, { connection });
    const events = new QueueEvents(QUEUE, { connection });
    const processed: string[] = [];
    const worker = new Worker(QUEUE, async (job) => void processed.push(job.id!), { connection });
    const plain = new Redis(connection);
    // Connections to the killed primary fail until the Sentinels name the new one: expected here.
    const connectionErrors: string[] = [];
    const onError = (err: Error) => void connectionErrors.push(err.message);
    queue.on('error', onError);
    events.on('error', onError);
    worker.on('error', onError);
    plain.on('error', onError);
    try {
      await events.waitUntilReady();
      const first = await queue.add('build', { n: 1 }, { jobId: 'before-failover' });
      await first.waitUntilFinished(events, 10_000);
      await plain.set('nixyard:test', 'before');
      // Replication is asynchronous: wait until the replica has it, as a failover loses what it has not.
      assert.equal(await plain.call('WAIT', '1', '5000'), 1);

      const oldPrimary = await set.primaryPort();
      assert.equal(oldPrimary, set.primary.port);
      set.primary.child.kill('SIGKILL');
      const killed = Date.now();
      const failoverMs = await set.failedOverFrom(oldPrimary);
      assert.equal(await set.primaryPort(), set.replica.port);

      const second = await queue.add('build', { n: 2 }, { jobId: 'after-failover' });
      await second.waitUntilFinished(events, 30_000);
      const recoveredMs = Date.now() - killed;
      // Written before the failover and replicated: the promoted replica still has it.
      assert.equal(await plain.get('nixyard:test'), 'before');
      await plain.set('nixyard:test', 'after');
      assert.deepEqual(processed, ['before-failover', 'after-failover']);
      console.log(`failover: Sentinels promoted the replica ${failoverMs} ms after the primary was killed; a job added afterwards finished ${recoveredMs} ms after the kill`);
    } finally {
      await worker.close(true);
      await Promise.all([queue.close(), events.close()]);
      plain.disconnect();
    }
  });
});
