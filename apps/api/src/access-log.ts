// The access log: one compact line per request (method, route, path, status, bytes, duration,
// request id, client as client-address.ts tells it), cheap enough to write for every pull. Full request and response headers
// only at debug, with credentials left out, because dumping headers on every manifest request
// cost a tenth of the API's CPU. Blob downloads are the bulk of traffic and are logged at debug;
// server errors at error; operators' endpoints (/metrics, /healthz, /readyz) not at all.

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { HttpRouteLabel } from '@nixyard/core';

const UNLOGGED_ROUTES: ReadonlySet<HttpRouteLabel> = new Set(['metrics', 'healthz', 'readyz']);
/** Headers that carry credentials: never logged, at any level. */
const SECRET_HEADERS = new Set(['authorization', 'proxy-authorization', 'cookie', 'set-cookie']);
const MAX_PATH_CHARS = 300;

export type AccessLogLevel = 'error' | 'info' | 'debug';

export function accessLogLevel(route: HttpRouteLabel, status: number): AccessLogLevel | undefined {
  if (UNLOGGED_ROUTES.has(route)) return undefined;
  if (status >= 500) return 'error';
  return route === 'blob' && status < 400 ? 'debug' : 'info';
}

function withoutSecrets(headers: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(headers).map(([name, value]) => [name, SECRET_HEADERS.has(name.toLowerCase()) ? '[redacted]' : value]));
}

/** Writes the line for a request that has ended (finished or aborted by the client). */
export function logRequest(
  logger: Logger,
  req: IncomingMessage,
  res: ServerResponse,
  request: { id: string; route: HttpRouteLabel; client: string; durationMs: number },
): void {
  const { route, durationMs } = request;
  const level = accessLogLevel(route, res.statusCode);
  if (level === undefined || !logger.isLevelEnabled(level)) return;
  const url = req.url ?? '/';
  const path = url.length > MAX_PATH_CHARS ? `${url.slice(0, MAX_PATH_CHARS)}...` : url;
  const line: Record<string, unknown> = {
    requestId: request.id,
    method: req.method,
    route,
    path,
    status: res.statusCode,
    bytes: Number(res.getHeader('content-length')) || 0,
    durationMs: Math.round(durationMs * 10) / 10,
    client: request.client,
  };
  if (!res.writableFinished) line.aborted = true;
  if (logger.isLevelEnabled('debug')) {
    line.requestHeaders = withoutSecrets(req.headers);
    line.responseHeaders = withoutSecrets(res.getHeaders());
  }
  logger[level](line, 'request');
}
