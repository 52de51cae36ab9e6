// Every error leaves the API in the registry's JSON form, whatever threw it: clients such as
// skopeo and containerd show `errors[0].message` to their users, and HTML error pages confuse them.
// The registry routes (plain node:http) and the Express routes (admin, status) share these.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ErrorRequestHandler, RequestHandler } from 'express';
import { RegistryError } from '@nixyard/core';
import type { Logger } from 'pino';

export function sendRegistryError(res: ServerResponse, error: RegistryError, head = false): void {
  const body = JSON.stringify(error.toBody());
  res.statusCode = error.status;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  if (error.code === 'UNSUPPORTED' && error.status === 405) res.setHeader('Allow', 'GET, HEAD');
  if (error.retryAfterSeconds !== undefined) res.setHeader('Retry-After', String(error.retryAfterSeconds));
  if (error.challenge !== undefined) res.setHeader('WWW-Authenticate', error.challenge);
  res.end(head ? undefined : body);
}

/** 404 NAME_UNKNOWN for a path no route serves. */
export function sendNotFound(req: IncomingMessage, res: ServerResponse): void {
  const path = (req.url ?? '/').split('?')[0]!;
  sendRegistryError(res, new RegistryError('NAME_UNKNOWN', `no such endpoint: ${req.method} ${path.slice(0, 100)}`), req.method === 'HEAD');
}

/**
 * Answers a request whose handler threw: its registry error, or 500 UNKNOWN without details for
 * anything else (logged, with server-side registry errors).
 */
export function failRequest(logger: Logger, req: IncomingMessage, res: ServerResponse, err: unknown): void {
  const registryError = err instanceof RegistryError ? err : new RegistryError('UNKNOWN', 'internal error; the registry logged the details');
  if (!(err instanceof RegistryError) || registryError.status >= 500) {
    logger.error({ err, method: req.method, path: (req.url ?? '/').split('?')[0] }, 'request failed');
  }
  if (res.headersSent) {
    res.destroy(); // a streamed body broke midway: the client must not take it as complete
    return;
  }
  sendRegistryError(res, registryError, req.method === 'HEAD');
}

export const notFound: RequestHandler = (req, res) => sendNotFound(req, res);

export function errorHandler(logger: Logger): ErrorRequestHandler {
  return (err, req, res, _next) => failRequest(logger, req, res, err);
}
