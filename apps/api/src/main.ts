// Starts the registry API from environment variables alone (docs/design.md §6), for `npm run api` and
// the container image. Any configuration problem stops it with one line naming the variable.

import { createServer } from 'node:http';
import { loadConfigOrExit, openStorage, redisConnectionOptions, roleReadiness } from '@nixyard/core';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { createApp } from './app.js';
import { BuildQueue } from './build-queue.js';
import { ContentCache } from './content-cache.js';
import { EpochWatch } from './epoch-watch.js';
import { adminRouter } from './admin/routes.js';
import { Prebuilds } from './admin/prebuilds.js';
import { FarmStatus } from './farm-status.js';
import { ApiMetrics } from './metrics.js';
import { PackageIndexCache } from './package-index-cache.js';
import { RecordCache } from './record-cache.js';
import { LiveWorkers } from './live-workers.js';
import { SourceResolver } from './source-resolver.js';
import { statusPage } from './status-page.js';

const config = loadConfigOrExit('api');
// Asynchronous writes: a line per request costs no write(2) each under load (lines written while
// one write is in flight go out together); pino flushes what is left when the process exits.
const logger = pino({ level: config.logLevel, base: { role: 'api' } }, pino.destination({ sync: false }));
const storage = openStorage(config.storage);
// A system in NIXYARD_INDEX_SYSTEMS is served too, or its index could never be complete.
const systems = [...new Set([...config.systems, ...(config.indexSystems ?? [])])];
const connection = redisConnectionOptions(config.redis.url);
const redis = new Redis(connection);
// Readiness gets its own connection that fails fast instead of queueing commands while Redis is away.
const healthRedis = new Redis({ ...connection, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
for (const client of [redis, healthRedis]) client.on('error', (err) => logger.debug({ err }, 'redis connection error'));

const builds = new BuildQueue({
  connection,
  systems,
  // Resolve, build and graph are each bounded by NIX_TIMEOUT; packing gets a minute on top.
  waitTimeoutMs: (3 * config.nix.timeoutSeconds + 60) * 1000,
  onError: (err) => logger.warn({ err }, 'queue connection error'),
});
const resolver = new SourceResolver(config.source, config.image.manifestTtlSeconds);
const prebuilds = new Prebuilds({
  redis,
  connection,
  storage,
  builds,
  resolver,
  systems,
  indexSystems: config.indexSystems,
  manifestTtlSeconds: config.image.manifestTtlSeconds,
  onError: (err) => logger.warn({ err }, 'flow producer connection error'),
});
const liveWorkers = new LiveWorkers(redis);
const farm = new FarmStatus(systems, builds, liveWorkers, prebuilds);

const records = new RecordCache(storage);
const content = new ContentCache(storage, { maxBytes: config.cache.contentBytes });
const app = createApp({
  storage,
  records,
  content,
  epoch: new EpochWatch(storage, () => {
    records.clear();
    content.clear();
  }),
  packageIndex: new PackageIndexCache(storage),
  builds,
  resolver,
  admin: adminRouter({ token: config.admin.token, prebuilds, logger }),
  liveWorkers,
  systems,
  indexSystems: config.indexSystems,
  manifestTtlSeconds: config.image.manifestTtlSeconds,
  metrics: new ApiMetrics(farm),
  logger,
  readiness: roleReadiness({ pingRedis: () => healthRedis.ping(), storage }),
  statusPage: statusPage({ farm, resolver, systems, indexSystems: config.indexSystems }),
  blobServing: {
    redirects: config.storage.backend === 's3' && config.storage.usePresignedUrls,
    ...(config.proxy.blobAccelPrefix ? { accelPrefix: config.proxy.blobAccelPrefix } : {}),
  },
});

const server = createServer(app).listen(config.port, () => {
  logger.info({ port: config.port, source: config.source, systems }, 'nixyard api listening');
});
// A pull may wait for a whole build; Node's default 5-minute request timeout would cut it.
server.requestTimeout = 0;

let stopping = false;
function stop(signal: string): void {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'stopping: finishing in-flight requests');
  // No new connections; idle keep-alive ones close now, busy ones once their response is sent.
  server.close(() => {
    void Promise.allSettled([builds.close(), prebuilds.close()]).finally(() => {
      redis.disconnect();
      healthRedis.disconnect();
      process.exit(0);
    });
  });
  server.closeIdleConnections();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
