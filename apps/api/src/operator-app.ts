// Operators' and administrators' endpoints, everything outside /v2/: /metrics, /healthz, /readyz,
// the status page at / and the admin API under /api/v1. An Express app, because here convenience
// matters more than microseconds; the registry's own routes (app.ts) do without it, and main.ts
// loads this module only when the first such request comes.

import express, { type RequestHandler, type Router } from 'express';
import type { Readiness } from '@nixyard/core';
import type { Logger } from 'pino';
import { errorHandler, notFound } from './http-errors.js';
import type { ApiMetrics } from './metrics.js';

export interface OperatorDeps {
  metrics: Pick<ApiMetrics, 'registry'>;
  logger: Logger;
  /** The admin API (/api/v1); its own bearer token guards it. */
  admin: Router;
  /** Whether Redis and storage answer (GET /readyz). */
  readiness(): Promise<Readiness>;
  /** The status page (GET /). */
  statusPage: RequestHandler;
}

export function createOperatorApp(deps: OperatorDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.disable('etag');

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
  app.use(notFound);
  app.use(errorHandler(deps.logger));
  return app;
}
