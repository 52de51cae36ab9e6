// GET/HEAD /v2/<name>/tags/list. Images are built on demand, never pushed, so there is no
// per-image tag list to keep: every valid name has every tag the configured source knows
// (source-resolver.ts). `skopeo inspect` asks for it; the name is checked against the grammar
// and echoed as the client spelled it. Pagination (`n`, `last`) is not offered: the list is short.

import type { ServerResponse } from 'node:http';
import { parseImageName } from '@nixyard/core';
import type { SourceResolver } from './source-resolver.js';

export type TagSource = Pick<SourceResolver, 'knownTags'>;

export async function serveTags(resolver: TagSource, name: string, head: boolean, res: ServerResponse): Promise<void> {
  parseImageName(name);
  const body = JSON.stringify({ name, tags: await resolver.knownTags() });
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  res.statusCode = 200;
  res.end(head ? undefined : body);
}
