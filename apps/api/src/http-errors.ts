// Every error leaves the API in the registry's JSON form, whatever threw it: clients such as
// skopeo and containerd show `errors[0].message` to their users, and HTML error pages confuse them.

import type { ErrorRequestHandler, RequestHandler, Response } from 'express';
import { RegistryError } from '@nixyard/core';
import type { Logger } from 'pino';

export function sendRegistryError(res: Response, error: RegistryError, head = false): void {
  const body = JSON.stringify(error.toBody());
  res.status(error.status);
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  if (error.code === 'UNSUPPORTED' && error.status === 405) res.setHeader('Allow', 'GET, HEAD');
  res.end(head ? undefined : body);
}

export const notFound: RequestHandler = (req, res) => {
  sendRegistryError(res, new RegistryError('NAME_UNKNOWN', `no such endpoint: ${req.method} ${req.path.slice(0, 100)}`), req.method === 'HEAD');
};

export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => {
    const registryError =
      err instanceof RegistryError ? err : new RegistryError('UNKNOWN', 'internal error; the registry logged the details');
    if (!(err instanceof RegistryError) || registryError.status >= 500) {
      logger.error({ err, method: req.method, path: req.path }, 'request failed');
    }
    if (res.headersSent) {
      res.destroy(); // a streamed body broke midway: the client must not take it as complete
      return;
    }
    sendRegistryError(res, registryError, req.method === 'HEAD');
  };
}
