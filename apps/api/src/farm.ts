// The API's Redis side, in one place: the build queues with what guards them (cold-builds.ts),
// live workers, prebuild batches, the farm's status, and a health connection for /readyz. What a
// request waits for answers within a deadline (deadline.ts). It runs on a thread of its own,
// started on first need (a cold pull, /readyz, /metrics, the status page, the admin API), not at
// start-up: farm-thread.ts says why.

import { once } from 'node:events';
import { READINESS_TIMEOUT_MS, redisConnectionOptions, type Config, type Storage, type System } from '@nixyard/core';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { Prebuilds } from './admin/prebuilds.js';
import { Admission, type RefusalReason } from './admission.js';
import { BuildQueue } from './build-queue.js';
import { ColdBuilds } from './cold-builds.js';
import { fromRedis } from './deadline.js';
import { FarmStatus } from './farm-status.js';
import { LiveWorkers } from './live-workers.js';
import type { SourceResolver } from './source-resolver.js';
import { UnknownPackages } from './unknown-packages.js';

export interface FarmOptions {
  config: Config;
  /** NIXYARD_SYSTEMS with NIXYARD_INDEX_SYSTEMS: every system this API serves. */
  systems: readonly System[];
  storage: Storage;
  resolver: SourceResolver;
  logger: Logger;
  /** Counts a cold pull refused by admission control. */
  onRefused(reason: RefusalReason): void;
}

export interface Farm {
  /** Cold pulls' builds: negative cache, admission, queue, wait. */
  coldBuilds: ColdBuilds;
  /** Live workers per system, within the request deadline. */
  liveWorkers: Pick<LiveWorkers, 'count'>;
  prebuilds: Prebuilds;
  status: FarmStatus;
  /** Redis PING on a connection that fails fast instead of queueing while Redis is away. */
  health: { ping(): Promise<unknown> };
  close(): Promise<void>;
}

export function connectFarm({ config, systems, storage, resolver, logger, onRefused }: FarmOptions): Farm {
  const connection = redisConnectionOptions(config.redis);
  const redis = new Redis(connection);
  const healthRedis = new Redis({ ...connection, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
  for (const client of [redis, healthRedis]) client.on('error', (err) => logger.debug({ err }, 'redis connection error'));

  // Resolve, build and graph are each bounded by NIX_TIMEOUT; packing gets a minute on top.
  const waitTimeoutMs = (3 * config.nix.timeoutSeconds + 60) * 1000;
  const builds = new BuildQueue({
    client: redis,
    connection,
    systems,
    waitTimeoutMs,
    onError: (err) => logger.warn({ err }, 'queue connection error'),
  });
  const admission = new Admission(redis, builds, { ...config.admission, waitTimeoutMs }, onRefused);
  const prebuilds = new Prebuilds({
    redis,
    storage,
    builds,
    resolver,
    systems,
    indexSystems: config.indexSystems,
    manifestTtlSeconds: config.image.manifestTtlSeconds,
    onError: (err) => logger.warn({ err }, 'flow producer connection error'),
  });
  const liveWorkers = new LiveWorkers(redis);
  return {
    coldBuilds: new ColdBuilds(builds, admission, new UnknownPackages(redis, config.image.manifestTtlSeconds)),
    liveWorkers: { count: (system) => fromRedis(liveWorkers.countSettled(system), 'counting live workers') },
    prebuilds,
    status: new FarmStatus(systems, builds, liveWorkers, prebuilds),
    health: {
      async ping() {
        // The first check after the farm is loaded finds its connection still opening: wait for it
        // (within the check's own deadline) rather than report Redis as down.
        if (healthRedis.status === 'wait' || healthRedis.status === 'connecting' || healthRedis.status === 'connect') {
          await once(healthRedis, 'ready', { signal: AbortSignal.timeout(READINESS_TIMEOUT_MS) });
        }
        return healthRedis.ping();
      },
    },
    async close() {
      await Promise.allSettled([builds.close(), prebuilds.close()]);
      redis.disconnect();
      healthRedis.disconnect();
    },
  };
}
