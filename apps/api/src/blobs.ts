// GET/HEAD /v2/<name>/blobs/<digest>. With a storage that can hand out its own URLs (S3) and
// presigned URLs enabled, a GET is answered with a redirect there, so layer bytes flow from the
// bucket to the client and never through the API. Otherwise the blob is streamed from storage,
// never read whole, with single-range requests answered 206 so interrupted downloads can resume.
// HEAD is always answered here: clients read the blob's size from it.

import { pipeline } from 'node:stream/promises';
import type { Request, Response } from 'express';
import parseRange from 'range-parser';
import { RegistryError, parseDigest, parseImageName, type Digest, type Storage } from '@nixyard/core';

export interface BlobServing {
  /**
   * Redirect GETs to the storage's own URL when it has one (S3_USE_PRESIGNED_URLS). The URL must
   * be reachable by clients: S3_ENDPOINT is what they are sent to.
   */
  redirects?: boolean;
  /** How long a redirect URL stays valid (default 300 s): long enough to start a large download. */
  urlSeconds?: number;
}

export const DEFAULT_BLOB_URL_SECONDS = 300;

export async function serveBlob(
  storage: Storage,
  name: string,
  rawDigest: string,
  req: Request,
  res: Response,
  serving: BlobServing = {},
): Promise<void> {
  parseImageName(name);
  const digest = parseDigest(rawDigest);
  const unknown = () => new RegistryError('BLOB_UNKNOWN', `no blob with digest ${digest}`, { digest });

  if (req.method === 'GET' && serving.redirects && storage.blobUrl) {
    // blobUrl answers undefined for a missing blob, so this costs one lookup, as a stat would.
    const url = await storage.blobUrl(digest, serving.urlSeconds ?? DEFAULT_BLOB_URL_SECONDS);
    if (url === undefined) throw unknown();
    redirect(res, digest, url);
    return;
  }

  const stat = await storage.statBlob(digest);
  if (!stat) throw unknown();

  res.setHeader('Docker-Content-Digest', digest);
  res.setHeader('ETag', `"${digest}"`);
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('Content-Type', 'application/octet-stream');
  res.setHeader('Cache-Control', 'public, max-age=31536000, immutable'); // content-addressed

  const rangeHeader = req.headers.range;
  const ranges = rangeHeader ? parseRange(stat.size, rangeHeader, { combine: true }) : -2;
  if (ranges === -1) {
    res.status(416).setHeader('Content-Range', `bytes */${stat.size}`);
    res.end();
    return;
  }
  // A malformed header or several ranges: serve the whole blob, which every client accepts.
  const range = Array.isArray(ranges) && ranges.length === 1 && ranges.type === 'bytes' ? ranges[0]! : undefined;
  const start = range?.start ?? 0;
  const end = range?.end ?? stat.size - 1;
  res.status(range ? 206 : 200);
  if (range) res.setHeader('Content-Range', `bytes ${start}-${end}/${stat.size}`);
  res.setHeader('Content-Length', stat.size === 0 ? 0 : end - start + 1);
  if (req.method === 'HEAD' || stat.size === 0) {
    res.end();
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

/**
 * 307 keeps the method and lets the client send its Range header on to the URL. The answer must
 * not be cached: the URL expires, the blob does not.
 */
function redirect(res: Response, digest: Digest, url: string): void {
  res.status(307);
  res.setHeader('Location', url);
  res.setHeader('Docker-Content-Digest', digest);
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Content-Length', 0);
  res.end();
}
