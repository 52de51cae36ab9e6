// Starts the registry API from environment variables alone (docs/design.md §6), for `npm run api` and
// the container image. Any configuration problem stops it with one line naming the variable.
//
// Start-up loads only what serving a warm pull needs, and listens. The farm's Redis side (farm.ts,
// on a thread of its own: farm-thread.ts) and the operator app (operator-app.ts) are started by
// the first request that needs them; the stand-ins below call through, so callers never know the
// difference.

import { createServer } from 'node:http';
import { SHUTDOWN_GRACE_DEFAULTS, loadConfigOrExit, openStorage, roleReadiness } from '@nixyard/core';
import { createApiLogger } from './api-logger.js';
import { createApp } from './app.js';
import { ContentCache } from './content-cache.js';
import { EpochWatch } from './epoch-watch.js';
import { FarmThread } from './farm-thread.js';
import { failRequest } from './http-errors.js';
import { ApiMetrics } from './metrics.js';
import { clientAddressOf, fromTrustedProxyOf } from './client-address.js';
import { listenerOnFirstUse } from './on-first-use.js';
import { PackageIndexCache } from './package-index-cache.js';
import { RecordCache } from './record-cache.js';
import { SourceResolver } from './source-resolver.js';

const config = loadConfigOrExit('api');
const logger = createApiLogger(config.logLevel);
const storage = openStorage(config.storage);
// A system in NIXYARD_INDEX_SYSTEMS is served too, or its index could never be complete.
const systems = [...new Set([...config.systems, ...(config.indexSystems ?? [])])];
const resolver = new SourceResolver(config.source, config.image.manifestTtlSeconds);

// The farm's Redis side, on a thread of its own started by the first call that needs it.
const farm = new FarmThread({ config, systems, logger, onRefused: (reason) => metrics.admissionRefusals.inc({ reason }) });
const coldBuilds = farm.part('coldBuilds');
const liveWorkers = farm.part('liveWorkers');
const farmStatus = farm.part('status');
const prebuilds = farm.part('prebuilds');
const farmHealth = farm.part('health');
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
      readiness: roleReadiness({ pingRedis: () => farmHealth.ping(), storage }),
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
    void farm.close().finally(() => {
      logger.flush();
      process.exit(0);
    });
  });
  server.closeIdleConnections();
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
