// What a read-only registry answers where the distribution spec expects writes. Nixyard builds
// its images itself, takes no pushes and deletes nothing on request; each refusal is a failure
// status that the spec's endpoint table (spec.md, "API" › "Endpoints") lists for the endpoint:
// - POST /v2/<name>/blobs/uploads/, with ?digest= or ?mount= (end-4a, end-4b, end-11) and
//   PUT /v2/<name>/manifests/<reference> (end-7): 404 NAME_UNKNOWN, no repository takes pushes;
// - an upload session, /v2/<name>/blobs/uploads/<reference>, with PATCH, PUT, GET or DELETE
//   (end-5, end-6, end-13, end-14): 404 BLOB_UPLOAD_UNKNOWN, none was ever started;
// - DELETE of a manifest or a blob (end-9, end-10): 405 UNSUPPORTED, as "Content Management"
//   says for disabled deletion (400 or 405);
// - GET /v2/<name>/referrers/<digest> (end-12a, end-12b): 404, the API is not offered (no image
//   built here has referrers), which tells clients to fall back ("Backwards Compatibility").
// 404 is the one failure every push endpoint lists; its codes are those of the spec's detail
// (detail.md). Any other method that is no read is 405 UNSUPPORTED with `Allow: GET, HEAD`.

import type { IncomingMessage } from 'node:http';
import { RegistryError, parseUnservedPath, type RegistryPath } from '@nixyard/core';

const READ_METHODS = new Set(['GET', 'HEAD']);
const UPLOAD_SESSION_METHODS = new Set(['GET', 'HEAD', 'PATCH', 'PUT', 'DELETE']);

const NO_PUSHES = 'this registry builds its images itself and accepts no pushes';

/**
 * The refusal for a request that is no read of a route (`route`, from parseRegistryPath), or
 * undefined for a GET or HEAD that a handler (or the not-found answer) takes.
 */
export function refusalFor(req: IncomingMessage, route: RegistryPath | undefined): RegistryError | undefined {
  const method = req.method ?? '';
  const unserved = route ? undefined : parseUnservedPath((req.url ?? '/').split('?')[0]!);
  if (unserved?.kind === 'upload' && UPLOAD_SESSION_METHODS.has(method)) {
    return new RegistryError('BLOB_UPLOAD_UNKNOWN', `no such upload: ${NO_PUSHES}, so it starts no uploads`);
  }
  if ((unserved?.kind === 'uploads' && method === 'POST') || (route?.kind === 'manifest' && method === 'PUT')) {
    return new RegistryError('NAME_UNKNOWN', `${method} is not supported: ${NO_PUSHES}`);
  }
  if (unserved?.kind === 'referrers' && READ_METHODS.has(method)) {
    return new RegistryError('NAME_UNKNOWN', 'the referrers API is not offered: no image this registry builds has referrers');
  }
  if (READ_METHODS.has(method)) return undefined;
  return new RegistryError('UNSUPPORTED', `${method} is not supported: ${NO_PUSHES}`);
}
