// Starts a build worker from environment variables alone (docs/design.md §6): one BullMQ worker per
// system in NIXYARD_SYSTEMS, each taking jobs from `build-<system>`, plus metrics, health and
// readiness on NIXYARD_WORKER_METRICS_HOST:NIXYARD_WORKER_METRICS_PORT.

import { randomUUID } from 'node:crypto';
import { getPriority, hostname, setPriority } from 'node:os';
import { Worker } from 'bullmq';
import {
  PREBUILD_QUEUE,
  SHUTDOWN_GRACE_DEFAULTS,
  buildQueueName,
  loadConfigOrExit,
  openStorage,
  redisConnectionOptions,
  roleReadiness,
} from '@nixyard/core';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { confineBuildCpus } from './build-cpus.js';
import { watchCrashedJobs } from './crashed-jobs.js';
import { startHeartbeat } from './heartbeat.js';
import { createJobRunner } from './job-runner.js';
import { LayerCache } from './layer-cache.js';
import { WorkerMetrics } from './metrics.js';
import { LearnedPopularity, PublishedPopularity } from './popularity.js';
import { ChildLedger, reapLeftovers } from './nix/child-ledger.js';
import { Nix } from './nix/nix.js';
import { parentDeathSignalTool } from './nix/tied-spawn.js';
import { GzipPool } from './pack/gzip-pool.js';
import { queueWorkerOptions } from './queue-options.js';
import { createShutdown } from './shutdown.js';

const config = loadConfigOrExit('worker');
const logger = pino({ level: config.logLevel, base: { role: 'worker' } });
// Builds yield the CPU to serving (NIXYARD_WORKER_NICE): where workers share cores with an API, as
// in the compose file, a storm of builds must not slow warm pulls. Set first, so the gzip pool's
// threads and every Nix process, started later, inherit it. Only ever lowered: a worker started
// at a lower priority still (a higher nice value) keeps it.
if (config.worker.nice > getPriority()) setPriority(config.worker.nice);
// And, where the host serves pulls too, they keep off the CPUs it leaves to serving
// (NIXYARD_WORKER_SPARE_CPUS, build-cpus.ts); also first, for the same reason.
const buildCpus = confineBuildCpus(config.worker.spareCpus);
if (buildCpus.kind === 'confined') logger.info({ cpus: buildCpus.cpus, spared: buildCpus.spared }, 'builds run on some CPUs, leaving the others to serving');
else if (buildCpus.kind === 'too-few') logger.warn({ allowed: buildCpus.allowed, spare: config.worker.spareCpus }, 'NIXYARD_WORKER_SPARE_CPUS leaves no CPU to build on: builds use every CPU');
else if (buildCpus.kind === 'failed') logger.warn({ reason: buildCpus.reason }, 'could not keep builds off the CPUs NIXYARD_WORKER_SPARE_CPUS spares: builds use every CPU');
const workerId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;

// Nix commands die with this process (tied-spawn.ts); where they cannot, stop what a dead worker
// on this host left running, and keep a ledger for the next one.
if (parentDeathSignalTool() === null) {
  logger.warn('setpriv (util-linux) with --pdeathsig is not available: Nix commands would outlive a worker that is killed outright');
}
const leftovers = reapLeftovers();
if (leftovers.length > 0) logger.warn({ commands: leftovers.map((c) => ({ pid: c.pid, command: c.command })) }, 'stopped Nix commands a dead worker left running');
const ledger = new ChildLedger({ onError: (err) => logger.warn({ err }, 'could not write the child ledger') });
process.on('exit', () => {
  ledger.signalAll('SIGKILL');
  ledger.close();
});

const storage = openStorage(config.storage);
const nix = new Nix({ timeoutSeconds: config.nix.timeoutSeconds, ledger });
const metrics = new WorkerMetrics();
const connection = redisConnectionOptions(config.redis);
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
  (system) => new Worker(buildQueueName(system), (job) => runJob(job.data, job.id), queueWorkerOptions(connection, workerId, config.worker.concurrency)),
);
for (const worker of workers) watchCrashedJobs(worker, metrics, logger);
// Batch parents (prebuild flows) only need completing once their builds are done.
workers.push(new Worker(PREBUILD_QUEUE, async () => ({ settled: true }), queueWorkerOptions(connection, workerId, 1)));
// While Redis is away BullMQ keeps retrying; an 'error' event nobody listens to would end the process.
// Every connection fails on every attempt then (several a second): one warning per 30 s is enough.
let lastQueueWarning = 0;
for (const worker of workers) {
  worker.on('error', (err) => {
    const now = Date.now();
    if (now - lastQueueWarning < 30_000) return logger.debug({ err }, 'queue connection error');
    lastQueueWarning = now;
    logger.warn({ err }, 'queue connection error');
  });
}

// Announced before the metrics port opens, so whoever waits for that port finds this worker live.
const heartbeat = await startHeartbeat(redis, config.systems, workerId, (err) => logger.warn({ err }, 'heartbeat failed'));
const metricsServer = await metrics.serve(
  config.worker.metricsPort,
  config.worker.metricsHost,
  roleReadiness({ pingRedis: () => healthRedis.ping(), storage }),
);
logger.info(
  { workerId, systems: config.systems, concurrency: config.worker.concurrency, metricsPort: config.worker.metricsPort, packThreads: gzipPool.threads },
  'nixyard worker ready',
);

const stop = createShutdown({
  graceMs: (config.shutdownGraceSeconds ?? SHUTDOWN_GRACE_DEFAULTS.worker) * 1000,
  async drain() {
    // Stop announcing first, so no new pull counts on this worker; then let the jobs in hand
    // finish (BullMQ's close waits for them).
    const unannounced = heartbeat.stop().catch((err: unknown) => logger.warn({ err }, 'could not remove the heartbeat'));
    await Promise.all([unannounced, ...workers.map((w) => w.close())]);
    metricsServer.close();
    redis.disconnect();
    healthRedis.disconnect();
  },
  abandon() {
    ledger.signalAll('SIGKILL');
  },
  exit: (code) => process.exit(code),
  log: (level, fields, message) => logger[level](fields, message),
});
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
