// GET/HEAD /v2/<name>/blobs/<digest>. Four ways to send the bytes, picked per request:
// - S3 with presigned URLs: a redirect to the bucket, so layer bytes never pass through the API;
// - behind the proxy (NIXYARD_BLOB_ACCEL_PREFIX): the API checks the request and answers with the
//   headers and an `X-Accel-Redirect` to the file, and nginx sends the file itself with sendfile;
// - a hot blob (content-cache.ts): one write of a shared in-memory buffer;
// - otherwise streamed from storage, never read whole.
// Single-range requests are answered 206 so interrupted downloads can resume, and an unsatisfiable
// one 416 (RFC 9110 §15.5.17; the spec's detail.md, "Fetch Blob Part", lists it). HEAD, errors,
// unsatisfiable, multi-range and conditional requests are always answered here, so they look the
// same on every path; HEAD is how clients learn a blob's size.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import parseRange from 'range-parser';
import { RegistryError, blobLocation, type Digest, type Storage } from '@nixyard/core';
import type { ContentCache } from './content-cache.js';
import { blobDigestOf } from './path-params.js';

export interface BlobServing {
  /**
   * Redirect GETs to the storage's own URL when it has one (S3_USE_PRESIGNED_URLS). The URL must
   * be reachable by clients: S3_ENDPOINT is what they are sent to.
   */
  redirects?: boolean;
  /** How long a redirect URL stays valid (default 300 s): long enough to start a large download. */
  urlSeconds?: number;
  /**
   * NIXYARD_BLOB_ACCEL_PREFIX: the proxy's internal location of the storage directory. GETs are
   * answered with `X-Accel-Redirect: <prefix>blobs/sha256/<hex>` and no body (filesystem storage).
   */
  accelPrefix?: string;
}

export const DEFAULT_BLOB_URL_SECONDS = 300;

export interface BlobDeps {
  storage: Storage;
  content: Pick<ContentCache, 'blob'>;
  serving?: BlobServing;
}

export async function serveBlob(deps: BlobDeps, name: string, rawDigest: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  // A name or digest outside the grammar names no blob: 404, the one failure end-2 lists.
  const digest = blobDigestOf(name, rawDigest);
  const unknown = () => new RegistryError('BLOB_UNKNOWN', `no blob with digest ${digest}`, { digest });
  const { storage, serving = {} } = deps;

  if (req.method === 'GET' && serving.redirects && storage.blobUrl) {
    // blobUrl answers undefined for a missing blob, so this costs one lookup, as a stat would.
    const url = await storage.blobUrl(digest, serving.urlSeconds ?? DEFAULT_BLOB_URL_SECONDS);
    if (url === undefined) throw unknown();
    redirect(res, digest, url);
    return;
  }

  // Behind the proxy the API never reads the blob: a stat for its size (Range, HEAD) is all.
  const found = serving.accelPrefix ? await statOnly(storage, digest) : await deps.content.blob(digest);
  if (!found) throw unknown();
  const size = found.kind === 'memory' ? found.bytes.length : found.size;

  res.setHeader('Docker-Content-Digest', digest);
  res.setHeader('ETag', `"${digest}"`);
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('Content-Type', 'application/octet-stream');
  res.setHeader('Cache-Control', 'public, max-age=31536000, immutable'); // content-addressed

  const rangeHeader = req.headers.range;
  const ranges = rangeHeader ? parseRange(size, rangeHeader, { combine: true }) : -2;
  if (ranges === -1) {
    res.statusCode = 416;
    res.setHeader('Content-Range', `bytes */${size}`);
    res.end();
    return;
  }
  // A malformed header or several ranges: serve the whole blob, which every client accepts.
  const range = Array.isArray(ranges) && ranges.length === 1 && ranges.type === 'bytes' ? ranges[0]! : undefined;
  const start = range?.start ?? 0;
  const end = range?.end ?? size - 1;
  res.statusCode = range ? 206 : 200;
  if (range) res.setHeader('Content-Range', `bytes ${start}-${end}/${size}`);

  if (req.method === 'GET' && serving.accelPrefix && size > 0 && proxyAgreesOnRange(rangeHeader, range) && !isConditional(req)) {
    // The proxy answers from the file with the client's own Range header; it adds its own
    // Accept-Ranges to a 200 (and none to a 206), and puts back the headers it drops (nginx.conf).
    res.setHeader('X-Accel-Redirect', `${serving.accelPrefix}${blobLocation(digest)}`);
    if (!range) res.removeHeader('Accept-Ranges');
    res.end();
    return;
  }

  res.setHeader('Content-Length', size === 0 ? 0 : end - start + 1);
  if (req.method === 'HEAD' || size === 0) {
    res.end();
    return;
  }
  if (found.kind === 'memory') {
    // One write of a slice of the shared buffer: the socket sends it as the client reads.
    res.end(range ? found.bytes.subarray(start, end + 1) : found.bytes);
    return;
  }
  const stream = await storage.readBlob(digest, range ? { start, end } : undefined);
  if (!stream) throw unknown();
  try {
    await pipeline(stream, res);
  } catch (err) {
    // A client that stops reading (skopeo does once it has what it needs) is not an error.
    if ((err as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') return;
    throw err;
  }
}

async function statOnly(storage: Storage, digest: Digest): Promise<{ kind: 'storage'; size: number } | undefined> {
  const stat = await storage.statBlob(digest);
  return stat && { kind: 'storage', size: stat.size };
}

/**
 * Whether nginx, given the client's Range header, sends exactly the bytes the API would: no
 * header, or one plain `bytes=` range that range-parser read as exactly that range. Anything else
 * (several ranges, which nginx would answer as multipart) is sent by the API itself.
 */
function proxyAgreesOnRange(header: string | undefined, range: { start: number; end: number } | undefined): boolean {
  if (header === undefined) return true;
  return range !== undefined && /^bytes=(\d+-\d*|-\d+)$/.test(header.trim());
}

/** The API answers conditional requests as plain ones; nginx would judge them by the file's mtime. */
const CONDITIONAL_HEADERS = ['if-match', 'if-none-match', 'if-modified-since', 'if-unmodified-since', 'if-range'];

function isConditional(req: IncomingMessage): boolean {
  return CONDITIONAL_HEADERS.some((name) => req.headers[name] !== undefined);
}

/**
 * 307 keeps the method and lets the client send its Range header on to the URL. The answer must
 * not be cached: the URL expires, the blob does not.
 */
function redirect(res: ServerResponse, digest: Digest, url: string): void {
  res.statusCode = 307;
  res.setHeader('Location', url);
  res.setHeader('Docker-Content-Digest', digest);
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Length', 0);
  res.end();
}
