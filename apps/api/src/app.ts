// The registry's HTTP surface, wired: the read-only half of the OCI distribution API under /v2/,
// and everything else (metrics, health, the status page, the admin API) handed to the operator
// app (operator-app.ts). This file holds only the wiring (request ids, metrics, logging, route
// dispatch, error answers); each registry resource has its own handler module (base.ts,
// manifests.ts, blobs.ts, tags.ts), and names, keys, errors and storage live in @nixyard/core.
//
// /v2/ is the hot path (CI fleets pulling the same images at high volume), so it is dispatched
// on plain node:http, where a warm manifest costs a few microseconds; Express's routing and
// response helpers cost several times the whole of that.

import { randomUUID } from 'node:crypto';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { httpRouteOf, parseRegistryPath, type HttpRouteLabel, type RegistryPath } from '@nixyard/core';
import type { Logger } from 'pino';
import { logRequest } from './access-log.js';
import { clientAddressOf, type ClientAddressOf } from './client-address.js';
import { serveBase } from './base.js';
import { serveBlob, type BlobServing } from './blobs.js';
import type { ContentCache } from './content-cache.js';
import type { EpochWatch } from './epoch-watch.js';
import { failRequest, sendNotFound } from './http-errors.js';
import { serveManifest, type ManifestDeps } from './manifests.js';
import type { ApiMetrics } from './metrics.js';
import type { AuthSetup } from './auth/setup.js';
import type { Principal } from './auth/pull-auth.js';
import { refusalFor } from './read-only.js';
import { serveTags, type TagSource } from './tags.js';

export interface ApiDeps extends ManifestDeps {
  resolver: ManifestDeps['resolver'] & TagSource;
  /** Manifests and hot blobs by digest. */
  content: ManifestDeps['content'] & Pick<ContentCache, 'blob'>;
  /** Drops the caches when storage announces deletions (gc). */
  epoch: Pick<EpochWatch, 'check'>;
  metrics: Pick<ApiMetrics, 'registry' | 'httpRequests' | 'httpDuration' | 'servedBytes' | 'manifestRequests'>;
  logger: Logger;
  /** Who sent a request (client-address.ts); by default the connection's own address. */
  clientAddress?: ClientAddressOf;
  /** Every request outside /v2/ (operator-app.ts), after its request id and metrics. */
  operator: RequestListener;
  /** How blob GETs are answered: S3 redirects, the proxy's internal redirect (blobs.ts). */
  blobServing?: BlobServing;
  /** Pull authentication (auth/), absent with NIXYARD_PULL_AUTH=none. */
  auth?: Pick<AuthSetup, 'pullAuth' | 'tokenEndpoint'>;
}

const REQUEST_ID = /^[A-Za-z0-9._-]{1,100}$/;
/** Express matched its `/v2` mount case-insensitively; so does this. */
const REGISTRY_PATH = /^\/v2(?:\/|$)/i;
/** Nixyard's own token service (auth/token-endpoint.ts), with NIXYARD_AUTH_TOKEN_KEY. */
const TOKEN_PATH = '/auth/token';

/** The request handler for an http.Server: `http.createServer(createApp(deps))`. */
export function createApp(deps: ApiDeps): RequestListener {
  const clientAddress = deps.clientAddress ?? clientAddressOf([]);
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const tokenEndpoint = deps.auth?.tokenEndpoint;
    if (path === TOKEN_PATH && tokenEndpoint) {
      const { client } = instrument(deps, req, res, 'token', clientAddress);
      tokenEndpoint(req, res, client).catch((err: unknown) => failRequest(deps.logger, req, res, err));
      return;
    }
    if (!REGISTRY_PATH.test(path)) {
      instrument(deps, req, res, httpRouteOf(path), clientAddress);
      deps.operator(req, res);
      return;
    }
    // Parsed once: the same parse names the route for metrics and picks the handler.
    const route = parseRegistryPath(path);
    const request = instrument(deps, req, res, route?.kind ?? 'other', clientAddress);
    serveRegistry(deps, req, res, route, request).catch((err: unknown) => failRequest(deps.logger, req, res, err));
  };
}

interface RequestIdentity {
  requestId: string;
  client: string;
}

/** The request id and client, the headers every answer carries, and the metrics and log line at the end. */
function instrument(deps: ApiDeps, req: IncomingMessage, res: ServerResponse, route: HttpRouteLabel, clientAddress: ClientAddressOf): RequestIdentity {
  // The request id follows a pull into its build job and the worker's log lines.
  const given = req.headers['x-request-id'];
  const requestId = typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
  res.setHeader('X-Request-Id', requestId);
  res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
  const client = clientAddress(req);

  const started = process.hrtime.bigint();
  res.once('finish', () => {
    const labels = { route, method: req.method ?? '', status: String(res.statusCode) };
    deps.metrics.httpRequests.inc(labels);
    deps.metrics.httpDuration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
    const length = Number(res.getHeader('content-length'));
    if (req.method === 'GET' && (route === 'manifest' || route === 'blob') && length > 0 && res.statusCode < 300) {
      deps.metrics.servedBytes.inc({ route }, length);
    }
  });
  // 'close' comes after 'finish', and also when a client goes away mid-response.
  res.once('close', () => logRequest(deps.logger, req, res, { id: requestId, route, client, durationMs: Number(process.hrtime.bigint() - started) / 1e6 }));
  return { requestId, client };
}

async function serveRegistry(
  deps: ApiDeps,
  req: IncomingMessage,
  res: ServerResponse,
  route: RegistryPath | undefined,
  { requestId, client }: RequestIdentity,
): Promise<void> {
  // Pushes, deletions and the spec's endpoints this registry does not offer (read-only.ts).
  const refusal = refusalFor(req, route);
  if (refusal) throw refusal;
  if (!route) return sendNotFound(req, res);
  const principal = deps.auth ? await authorized(deps.auth.pullAuth, req, client, route) : undefined;
  const head = req.method === 'HEAD';
  if (route.kind === 'manifest' || route.kind === 'blob') await deps.epoch.check();
  switch (route.kind) {
    case 'base':
      return serveBase(head, res);
    case 'manifest':
      return serveManifest(
        deps,
        {
          name: route.name,
          reference: route.reference,
          accept: req.headers.accept,
          head,
          requestId,
          client,
          ...(principal && deps.auth ? { authorizeBuild: () => deps.auth!.pullAuth.authorizeBuild(req, principal, route.name) } : {}),
        },
        res,
      );
    case 'blob':
      return serveBlob({ storage: deps.storage, content: deps.content, ...(deps.blobServing ? { serving: deps.blobServing } : {}) }, route.name, route.digest, req, res);
    case 'tags':
      return serveTags(deps.resolver, route.name, req.url ?? '', head, res);
    default:
      return route satisfies never;
  }
}

/** Who sent the request, once they may read what it names (auth/pull-auth.ts); throws 401/403 otherwise. */
async function authorized(auth: AuthSetup['pullAuth'], req: IncomingMessage, client: string, route: RegistryPath): Promise<Principal> {
  const principal = await auth.authenticate(req, client, route.kind === 'base' ? undefined : route.name);
  auth.authorize(req, principal, route);
  return principal;
}
