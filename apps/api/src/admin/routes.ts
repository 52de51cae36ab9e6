// The admin API under /api/v1, behind the bearer token. It is a separate surface from the
// registry's pull API: different clients (people, CI jobs, the CLI), different errors.

import express, { Router, type ErrorRequestHandler } from 'express';
import { AdminError, PrebuildRequestSchema } from '@nixyard/core';
import type { Logger } from 'pino';
import { DeadlineError, REDIS_RETRY_AFTER_SECONDS, redisUnavailableMessage } from '../deadline.js';
import { bearerAuth } from './bearer-auth.js';
import type { Prebuilds } from './prebuilds.js';

export interface AdminDeps {
  token: string | undefined;
  prebuilds: Pick<Prebuilds, 'submit' | 'list' | 'get' | 'cancel'>;
  logger: Logger;
}

// 10,000 names of up to a few hundred characters each.
const MAX_BODY = '8mb';

export function adminRouter(deps: AdminDeps): Router {
  const router = Router();
  router.use(bearerAuth(deps.token));
  router.use(express.json({ limit: MAX_BODY }));

  router.post('/prebuilds', async (req, res) => {
    const parsed = PrebuildRequestSchema.safeParse(req.body);
    if (!parsed.success) {
      throw new AdminError('BATCH_INVALID', 'expected {"images": ["name[:tag]", ...], "label"?: "..."}', {
        issues: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).slice(0, 20),
      });
    }
    res.status(202).json(await deps.prebuilds.submit(parsed.data));
  });
  router.get('/prebuilds', async (_req, res) => {
    res.json({ batches: await deps.prebuilds.list() });
  });
  router.get('/prebuilds/:id', async (req, res) => {
    res.json(await deps.prebuilds.get(req.params.id));
  });
  router.delete('/prebuilds/:id', async (req, res) => {
    res.json({ id: req.params.id, cancelled: await deps.prebuilds.cancel(req.params.id) });
  });
  router.use((req) => {
    throw new AdminError('NOT_FOUND', `no such admin endpoint: ${req.method} ${req.baseUrl}${req.path.slice(0, 100)}`);
  });
  router.use(adminErrors(deps.logger));
  return router;
}

function adminErrors(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    let error: AdminError;
    if (err instanceof AdminError) error = err;
    else if (err instanceof DeadlineError) {
      error = new AdminError('UNAVAILABLE', redisUnavailableMessage(err.what), null, {
        cause: err,
        retryAfterSeconds: REDIS_RETRY_AFTER_SECONDS,
      });
    }
    else if ((err as { type?: string }).type === 'entity.too.large') error = new AdminError('BATCH_TOO_LARGE', `the request body is larger than ${MAX_BODY}`);
    else if ((err as { type?: string }).type === 'entity.parse.failed') error = new AdminError('BATCH_INVALID', 'the request body is not valid JSON');
    else {
      logger.error({ err, method: req.method, path: req.originalUrl }, 'admin request failed');
      error = new AdminError('UNKNOWN', 'internal error; the registry logged the details');
    }
    if (error.retryAfterSeconds !== undefined) res.set('Retry-After', String(error.retryAfterSeconds));
    res.status(error.status).json(error.toBody());
  };
}
