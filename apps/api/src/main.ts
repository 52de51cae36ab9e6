// Starts the registry API from environment variables alone (docs/design.md §6), for `npm run api` and
// the container image. Any configuration problem stops it with one line naming the variable.
//
// Start-up loads only what serving a warm pull needs, and listens. The farm's Redis side (farm.ts)
// and the operator app (operator-app.ts) are loaded by the first request that needs them; until
// then the stand-ins below wait for them, so callers never know the difference.

import { createServer } from 'node:http';
import { SHUTDOWN_GRACE_DEFAULTS, loadConfigOrExit, openStorage, roleReadiness } from '@nixyard/core';
import { pino } from 'pino';
import { createApp } from './app.js';
import { ContentCache } from './content-cache.js';
import { EpochWatch } from './epoch-watch.js';
import type { Farm } from './farm.js';
import { failRequest } from './http-errors.js';
import { ApiMetrics } from './metrics.js';
import { clientAddressOf, fromTrustedProxyOf } from './client-address.js';
import { deferred, listenerOnFirstUse, onFirstUse } from './on-first-use.js';
import { PackageIndexCache } from './package-index-cache.js';
import { RecordCache } from './record-cache.js';
import { SourceResolver } from './source-resolver.js';

const config = loadConfigOrExit('api');
// Asynchronous, buffered writes: lines gather until 4 KiB or for at most LOG_FLUSH_MS and go out
// in one write(2) on libuv's threads. A write per line woke one of those threads per request,
// which on a core shared with builds took turns with the event loop; pino flushes what is left
// when the process exits. A process killed outright loses at most the last LOG_FLUSH_MS of lines.
const LOG_FLUSH_MS = 250;
const logger = pino({ level: config.logLevel, base: { role: 'api' } }, pino.destination({ sync: false, minLength: 4096, periodicFlush: LOG_FLUSH_MS }));
const storage = openStorage(config.storage);
// A system in NIXYARD_INDEX_SYSTEMS is served too, or its index could never be complete.
const systems = [...new Set([...config.systems, ...(config.indexSystems ?? [])])];
const resolver = new SourceResolver(config.source, config.image.manifestTtlSeconds);

let connectedFarm: Farm | undefined;
const farm = onFirstUse(async () => {
  const { connectFarm } = await import('./farm.js');
  connectedFarm = connectFarm({ config, systems, storage, resolver, logger, onRefused: (reason) => metrics.admissionRefusals.inc({ reason }) });
  logger.info({ systems }, 'build farm connection opened');
  return connectedFarm;
});
const coldBuilds = deferred(async () => (await farm()).coldBuilds, ['build']);
const liveWorkers = deferred(async () => (await farm()).liveWorkers, ['count']);
const farmStatus = deferred(async () => (await farm()).status, ['queueDepth', 'liveWorkers', 'prebuildBatches', 'recentFailures']);
const prebuilds = deferred(async () => (await farm()).prebuilds, ['submit', 'list', 'get', 'cancel']);
const metrics = new ApiMetrics(farmStatus);
const operator = listenerOnFirstUse(
  async () => {
    const [{ createOperatorApp }, { adminRouter }, { statusPage }] = await Promise.all([
      import('./operator-app.js'),
      import('./admin/routes.js'),
      import('./status-page.js'),
    ]);
    return createOperatorApp({
      metrics,
      logger,
      admin: adminRouter({ token: config.admin.token, prebuilds, logger }),
      readiness: roleReadiness({ pingRedis: async () => (await farm()).ping(), storage }),
      statusPage: statusPage({ farm: farmStatus, resolver, systems, indexSystems: config.indexSystems }),
    });
  },
  (req, res, err) => failRequest(logger, req, res, err),
);

// Pull authentication, loaded only when it is on; an unusable file or key stops start-up here.
let auth: Awaited<ReturnType<typeof import('./auth/setup.js').setUpAuth>> | undefined;
if (config.auth.pull !== 'none') {
  const { setUpAuth } = await import('./auth/setup.js');
  try {
    auth = await setUpAuth(config.auth, {
      fromTrustedProxy: fromTrustedProxyOf(config.proxy.trustedProxies),
      onFailure: (reason) => metrics.authFailures.inc({ reason }),
    });
  } catch (err) {
    process.stderr.write(`nixyard api: pull authentication: ${(err as Error).message}\n`);
    process.exit(2);
  }
  logger.info(auth.summary, 'pull authentication on');
} else if (config.auth.htpasswdPath ?? config.auth.tokenKeyPath ?? config.auth.jwks) {
  logger.warn('authentication settings are present but NIXYARD_PULL_AUTH is none: every client may pull and build');
}

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
  builds: coldBuilds,
  resolver,
  liveWorkers,
  systems,
  indexSystems: config.indexSystems,
  manifestTtlSeconds: config.image.manifestTtlSeconds,
  metrics,
  logger,
  clientAddress: clientAddressOf(config.proxy.trustedProxies),
  operator,
  blobServing: {
    redirects: config.storage.backend === 's3' && config.storage.usePresignedUrls,
    ...(config.proxy.blobAccelPrefix ? { accelPrefix: config.proxy.blobAccelPrefix } : {}),
  },
  ...(auth ? { auth } : {}),
});

// HOST unset: every interface, as Node does by default.
const server = createServer(app).listen(config.port, config.host, () => {
  logger.info({ host: config.host ?? '*', port: config.port, source: config.source, systems }, 'nixyard api listening');
});
// A pull may wait for a whole build; Node's default 5-minute request timeout would cut it.
server.requestTimeout = 0;

const graceSeconds = config.shutdownGraceSeconds ?? SHUTDOWN_GRACE_DEFAULTS.api;
let stopping = false;
function stop(signal: string): void {
  if (stopping) return;
  stopping = true;
  logger.info({ signal, graceSeconds }, 'stopping: finishing in-flight requests');
  // Pulls waiting for builds, or a Redis that does not answer, must not hold the process past its
  // grace period: the orchestrator would kill it anyway, without the log line saying why.
  setTimeout(() => {
    logger.warn({ graceSeconds }, 'grace period over: exiting with work unfinished');
    logger.flush();
    process.exit(0);
  }, graceSeconds * 1000).unref();
  // No new connections; idle keep-alive ones close now, busy ones once their response is sent.
  server.close(() => {
    void (connectedFarm?.close() ?? Promise.resolve()).finally(() => {
      logger.flush();
      process.exit(0);
    });
  });
  server.closeIdleConnections();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
