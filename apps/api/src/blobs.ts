// GET/HEAD /v2/<name>/blobs/<digest>: streamed from storage, never read whole, with single-range
// requests answered 206 so interrupted layer downloads can resume.

import { pipeline } from 'node:stream/promises';
import type { Request, Response } from 'express';
import parseRange from 'range-parser';
import { RegistryError, parseDigest, parseImageName, type Storage } from '@nixyard/core';

export async function serveBlob(storage: Storage, name: string, rawDigest: string, req: Request, res: Response): Promise<void> {
  parseImageName(name);
  const digest = parseDigest(rawDigest);
  const stat = await storage.statBlob(digest);
  if (!stat) throw new RegistryError('BLOB_UNKNOWN', `no blob with digest ${digest}`, { digest });

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
  if (!stream) throw new RegistryError('BLOB_UNKNOWN', `no blob with digest ${digest}`, { digest });
  try {
    await pipeline(stream, res);
  } catch (err) {
    // A client that stops reading (skopeo does once it has what it needs) is not an error.
    if ((err as NodeJS.ErrnoException).code === 'ERR_STREAM_PREMATURE_CLOSE') return;
    throw err;
  }
}
