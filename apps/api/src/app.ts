// The registry's HTTP surface, wired: the read-only half of the OCI distribution API under /v2/,
// the admin API under /api/v1, the status page at /, and /metrics, /healthz, /readyz for
// operators. This file holds only the wiring (request ids, metrics, logging, route dispatch, the
// error handler); each registry resource has its own handler module (base.ts, manifests.ts,
// blobs.ts, tags.ts), and names, keys, errors and storage live in @nixyard/core.

import { randomUUID } from 'node:crypto';
import express, { type Express, type NextFunction, type Request, type RequestHandler, type Response, type Router } from 'express';
import { RegistryError, httpRouteOf, parseRegistryPath, type Readiness } from '@nixyard/core';
import type { Logger } from 'pino';
import { logRequest } from './access-log.js';
import { serveBase } from './base.js';
import { serveBlob, type BlobServing } from './blobs.js';
import { errorHandler, notFound } from './http-errors.js';
import { serveManifest, type ManifestDeps } from './manifests.js';
import type { ApiMetrics } from './metrics.js';
import { serveTags, type TagSource } from './tags.js';

export interface ApiDeps extends ManifestDeps {
  resolver: ManifestDeps['resolver'] & TagSource;
  metrics: Pick<ApiMetrics, 'registry' | 'httpRequests' | 'httpDuration' | 'servedBytes' | 'manifestRequests'>;
  logger: Logger;
  /** The admin API (/api/v1); its own bearer token guards it. */
  admin: Router;
  /** Whether Redis and storage answer (GET /readyz). */
  readiness(): Promise<Readiness>;
  /** The status page (GET /). */
  statusPage: RequestHandler;
  /** Whether blob GETs redirect to the storage's own URLs (S3_USE_PRESIGNED_URLS). */
  blobServing?: BlobServing;
}

const READ_METHODS = new Set(['GET', 'HEAD']);
const REQUEST_ID = /^[A-Za-z0-9._-]{1,100}$/;

export function createApp(deps: ApiDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag'); // registry responses carry their digest as ETag

  app.use((req, res, next) => {
    // The request id follows a pull into its build job and the worker's log lines.
    const given = req.header('x-request-id');
    const requestId = given && REQUEST_ID.test(given) ? given : randomUUID();
    res.locals.requestId = requestId;
    res.setHeader('X-Request-Id', requestId);
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');

    const started = process.hrtime.bigint();
    // originalUrl: by now Express has stripped the mount path (/v2, /api/v1) from req.path.
    const route = httpRouteOf(req.originalUrl.split('?')[0]!);
    res.once('finish', () => {
      const labels = { route, method: req.method, status: String(res.statusCode) };
      deps.metrics.httpRequests.inc(labels);
      deps.metrics.httpDuration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
      const length = Number(res.getHeader('content-length'));
      if (req.method === 'GET' && (route === 'manifest' || route === 'blob') && length > 0 && res.statusCode < 300) {
        deps.metrics.servedBytes.inc({ route }, length);
      }
    });
    // 'close' comes after 'finish', and also when a client goes away mid-response.
    res.once('close', () => logRequest(deps.logger, req, res, route, Number(process.hrtime.bigint() - started) / 1e6));
    next();
  });

  app.get('/metrics', async (_req, res) => {
    res.setHeader('Content-Type', deps.metrics.registry.contentType);
    res.end(await deps.metrics.registry.metrics());
  });
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    const readiness = await deps.readiness();
    res.status(readiness.ready ? 200 : 503).json({ status: readiness.ready ? 'ready' : 'unavailable', checks: readiness.checks });
  });
  app.get('/', deps.statusPage);

  app.use('/api/v1', deps.admin);

  app.use('/v2', async (req: Request, res: Response, next: NextFunction) => {
    // Every write verb, on any /v2/ path (uploads included), is refused the same way.
    if (!READ_METHODS.has(req.method)) {
      throw new RegistryError('UNSUPPORTED', `${req.method} is not supported: this registry builds its images itself and accepts no pushes`);
    }
    const path = parseRegistryPath(req.originalUrl.split('?')[0]!);
    if (!path) return next();
    const head = req.method === 'HEAD';
    switch (path.kind) {
      case 'base':
        return serveBase(head, res);
      case 'manifest':
        return serveManifest(
          deps,
          { name: path.name, reference: path.reference, accept: req.headers.accept, head, requestId: res.locals.requestId as string },
          res,
        );
      case 'blob':
        return serveBlob(deps.storage, path.name, path.digest, req, res, deps.blobServing);
      case 'tags':
        return serveTags(deps.resolver, path.name, head, res);
      default:
        return path satisfies never;
    }
  });

  app.use(notFound);
  app.use(errorHandler(deps.logger));
  return app;
}
