// Starts a build worker from environment variables alone (docs/design.md §6): one BullMQ worker per
// system in NIXYARD_SYSTEMS, each taking jobs from `build-<system>`, plus metrics, health and
// readiness on NIXYARD_WORKER_METRICS_PORT.

import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { Worker } from 'bullmq';
import {
  PREBUILD_QUEUE,
  buildQueueName,
  loadConfigOrExit,
  openStorage,
  redisConnectionOptions,
  roleReadiness,
} from '@nixyard/core';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { startHeartbeat } from './heartbeat.js';
import { createJobRunner } from './job-runner.js';
import { LayerCache } from './layer-cache.js';
import { WorkerMetrics } from './metrics.js';
import { LearnedPopularity, PublishedPopularity } from './popularity.js';
import { Nix } from './nix/nix.js';
import { GzipPool } from './pack/gzip-pool.js';

const config = loadConfigOrExit('worker');
const logger = pino({ level: config.logLevel, base: { role: 'worker' } });
const storage = openStorage(config.storage);
const nix = new Nix({ timeoutSeconds: config.nix.timeoutSeconds });
const metrics = new WorkerMetrics();
const connection = redisConnectionOptions(config.redis.url);
const redis = new Redis(connection);
// Readiness gets its own connection that fails fast instead of queueing commands while Redis is away.
const healthRedis = new Redis({ ...connection, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
for (const client of [redis, healthRedis]) client.on('error', (err) => logger.debug({ err }, 'redis connection error'));
const layerCache = new LayerCache(storage, redis);
const popularity = config.nix.popularityUrl ? new PublishedPopularity(config.nix.popularityUrl) : new LearnedPopularity(redis);
// Started now and kept for the worker's life, so that no pull waits for threads to start.
const gzipPool = new GzipPool({ threads: config.worker.packThreads }).start();

const runJob = createJobRunner({
  build: { nix, storage, layerCache, popularity, maxLayers: config.image.maxLayers, gzipLevel: config.image.gzipLevel, gzipPool },
  metrics,
  logger,
});

const workers = config.systems.map(
  (system) =>
    new Worker(buildQueueName(system), (job) => runJob(job.data, job.id), {
      connection,
      concurrency: config.worker.concurrency,
    }),
);
// Batch parents (prebuild flows) only need completing once their builds are done.
workers.push(new Worker(PREBUILD_QUEUE, async () => ({ settled: true }), { connection }));
// While Redis is away BullMQ keeps retrying; an 'error' event nobody listens to would end the process.
for (const worker of workers) worker.on('error', (err) => logger.warn({ err }, 'queue connection error'));

// Announced before the metrics port opens, so whoever waits for that port finds this worker live.
const heartbeat = await startHeartbeat(redis, config.systems, `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`, (err) =>
  logger.warn({ err }, 'heartbeat failed'),
);
const metricsServer = await metrics.serve(config.worker.metricsPort, roleReadiness({ pingRedis: () => healthRedis.ping(), storage }));
logger.info({ systems: config.systems, concurrency: config.worker.concurrency, metricsPort: config.worker.metricsPort, packThreads: gzipPool.threads }, 'nixyard worker ready');

let stopping = false;
async function stop(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  // Stop announcing first, so no new pull counts on this worker; then let the jobs in hand finish
  // (BullMQ's close waits for them). A worker killed outright instead has its job taken over by
  // another worker through BullMQ's stalled-job recovery.
  logger.info({ signal }, 'stopping: finishing the current jobs');
  await heartbeat.stop().catch(() => {});
  await Promise.all(workers.map((w) => w.close()));
  metricsServer.close();
  redis.disconnect();
  healthRedis.disconnect();
  process.exit(0);
}
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('SIGINT', () => void stop('SIGINT'));
