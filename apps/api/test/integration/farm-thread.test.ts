// The farm on a thread of its own (farm-thread.ts, farm-thread-main.ts) against a real
// redis-server: the thread runs at a lower CPU priority than the rest of the process, the serving
// thread's calls reach the farm and come back, errors with their class,
// admission refusals reach the serving thread's metrics, a thread that dies fails its unanswered
// calls with 503 and is started anew by the next call, and close closes the farm's connections.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { readFileSync, readdirSync } from 'node:fs';
import { getPriority } from 'node:os';
import { Writable } from 'node:stream';
import {
  AdminError,
  PATH_REVISION,
  RegistryError,
  buildJobFor,
  loadConfig,
  parseImageName,
  workersKey,
  type BuildJobData,
  type Config,
} from '@nixyard/core';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import type { RefusalReason } from '../../src/admission.js';
import { FarmThread } from '../../src/farm-thread.js';
import { startTestRedis, type TestRedis } from '../../../../test/helpers/redis.js';
import { tempDir } from '../../../../test/helpers/temp-dir.js';

const SYSTEM = 'x86_64-linux';

function job(name: string): BuildJobData {
  return buildJobFor({ spec: parseImageName(name), source: { kind: 'path', path: '/srv/pkgs' }, revision: PATH_REVISION });
}

/** A logger whose lines the test reads. */
function capturedLogger(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

function isUnavailable(pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof RegistryError, String(err));
    assert.equal(err.code, 'UNAVAILABLE');
    assert.equal(err.status, 503);
    assert.ok(err.retryAfterSeconds !== undefined && err.retryAfterSeconds > 0, 'Retry-After');
    assert.match(err.message, pattern);
    return true;
  };
}

/** The nice value of each of this process's threads (field 19 of /proc/self/task/<tid>/stat). */
function threadNices(): number[] {
  return readdirSync('/proc/self/task').map((tid) => Number(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1]!.split(' ')[16]));
}

async function connectedClients(client: Redis): Promise<number> {
  const info = await client.info('clients');
  return Number(/connected_clients:(\d+)/.exec(info)![1]);
}

describe('the farm on its own thread, on a real Redis', () => {
  let redis: TestRedis;
  let dir: ReturnType<typeof tempDir>;
  let config: Config;
  /** The test's own connection. */
  let admin: Redis;

  before(async () => {
    redis = await startTestRedis();
    admin = redis.client();
    dir = tempDir('farm-thread');
    config = loadConfig({
      REDIS_URL: redis.url,
      STORAGE_PATH: `${dir.path}/storage`,
      NIXERY_PKGS_PATH: dir.path,
      NIXYARD_MAX_QUEUED_BUILDS: '1',
      NIXYARD_MAX_BUILDS_PER_CLIENT: '0',
      LOG_LEVEL: 'warn',
    });
  });
  after(async () => {
    await redis?.stop();
    dir?.cleanup();
  });

  test('the thread runs niced; calls reach the farm and its answers come back; errors keep their class; refusals reach the serving thread', async () => {
    const { logger } = capturedLogger();
    const refusals: RefusalReason[] = [];
    const farm = new FarmThread({ config, systems: [SYSTEM], logger, onRefused: (reason) => refusals.push(reason) });
    const baseline = await connectedClients(admin);
    try {
      assert.equal(await farm.part('health').ping(), 'PONG');
      // Only the farm's thread runs at the lower CPU priority; the serving thread keeps its own.
      const base = getPriority();
      assert.deepEqual(
        threadNices().filter((nice) => nice !== base),
        [Math.min(19, base + 10)],
      );
      assert.equal(await farm.part('liveWorkers').count(SYSTEM), 0);
      await admin.zadd(workersKey(SYSTEM), Date.now(), 'worker-a');
      assert.equal(await farm.part('liveWorkers').count(SYSTEM), 1);
      assert.deepEqual(await farm.part('status').liveWorkers(), [{ system: SYSTEM, count: 1 }]);
      assert.deepEqual(await farm.part('prebuilds').list(), []);

      // An unknown batch: the admin API's 404, as the thread threw it.
      await assert.rejects(farm.part('prebuilds').get('no-such-batch'), (err: unknown) => {
        assert.ok(err instanceof AdminError, String(err));
        assert.equal(err.code, 'BATCH_UNKNOWN');
        assert.equal(err.status, 404);
        return true;
      });

      // NIXYARD_MAX_QUEUED_BUILDS=1 and no worker takes builds: the first waits, the second is refused.
      const waiting = farm.part('coldBuilds').build(job('hello'), { client: '192.0.2.1' });
      waiting.catch(() => {});
      for (let i = 0; i < 100 && (await farm.part('status').queueDepth()).every((row) => row.count === 0); i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await assert.rejects(farm.part('coldBuilds').build(job('jq'), { client: '192.0.2.2' }), (err: unknown) => {
        assert.ok(err instanceof RegistryError, String(err));
        assert.equal(err.code, 'TOOMANYREQUESTS');
        assert.equal(err.retryAfterSeconds, 30);
        return true;
      });
      assert.deepEqual(refusals, ['queue_full']);
      assert.ok((await connectedClients(admin)) > baseline, 'the thread holds connections of its own');

      // Closing ends the wait that was still going (the build itself stays queued) and the thread's connections.
      await farm.close();
      await assert.rejects(waiting, isUnavailable(/lost/));
      // Redis sees a closed connection a moment after the thread has gone.
      for (let i = 0; i < 50 && (await connectedClients(admin)) > baseline; i++) await new Promise((resolve) => setTimeout(resolve, 20));
      assert.equal(await connectedClients(admin), baseline);
      await assert.rejects(farm.part('health').ping(), isUnavailable(/stopping/));
    } finally {
      await farm.close();
    }
  });

  test('a thread that dies fails the calls it had not answered with 503, and the next call starts a new one', async () => {
    const { logger, lines } = capturedLogger();
    const farm = new FarmThread({
      config,
      systems: [SYSTEM],
      logger,
      onRefused: () => {},
      entry: new URL('./dying-farm-thread.ts', import.meta.url),
    });
    try {
      const first = await farm.part('liveWorkers').count(SYSTEM);
      await assert.rejects(farm.part('liveWorkers').count(SYSTEM), isUnavailable(/lost/));
      assert.ok(lines.some((line) => line.level === 50 && line.code === 3 && line.unanswered === 1), JSON.stringify(lines));
      const second = await farm.part('liveWorkers').count(SYSTEM);
      assert.notEqual(second, first, 'answered by another thread');
    } finally {
      await farm.close();
    }
  });
});
