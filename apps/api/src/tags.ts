// GET/HEAD /v2/<name>/tags/list. Images are built on demand, never pushed, so there is no
// per-image tag list to keep: every valid name has every tag the configured source knows
// (source-resolver.ts). `skopeo inspect` asks for it; the name is checked against the grammar
// and echoed as the client spelled it.
//
// Pagination is the distribution spec's ("Content Discovery" › listing tags, end-8b): the tags in
// lexical order (code-unit order, the spec's "ASCIIbetical"; tags are ASCII), at most `n` of them
// (`n=0`: none, and no Link), those after `last` when it is given, and a
// `Link: </v2/<name>/tags/list?n=<n>&last=<tag>>; rel="next"` when more remain. The endpoint
// table lists only 404 as its failure, so an `n` that is not a whole number is a 404, like a name
// outside the grammar: the URL names no list.

import type { ServerResponse } from 'node:http';
import { RegistryError, displayValue } from '@nixyard/core';
import { imageNameOf } from './path-params.js';
import type { SourceResolver } from './source-resolver.js';

export type TagSource = Pick<SourceResolver, 'knownTags'>;

/** What the query string asks for: a page size (undefined: every tag) and where to start. */
interface TagsPage {
  n: number | undefined;
  last: string | undefined;
}

/** `n` and `last` of a tags/list request target (its path and query, as in `req.url`). */
function tagsPageOf(target: string): TagsPage {
  const at = target.indexOf('?');
  const query = new URLSearchParams(at === -1 ? '' : target.slice(at + 1));
  const n = query.get('n');
  if (n !== null && !/^\d+$/.test(n)) {
    throw new RegistryError('NAME_UNKNOWN', `invalid n ${displayValue(n)}: expected how many tags to list, a whole number (0 or more)`, {
      n: displayValue(n),
    });
  }
  return { n: n === null ? undefined : Number(n), last: query.get('last') ?? undefined };
}

/** One page of `tags`, and the `last` of the next page when more remain after it. */
function pageOf(tags: readonly string[], { n, last }: TagsPage): { tags: string[]; next: string | undefined } {
  const sorted = [...new Set(tags)].sort();
  const after = last === undefined ? sorted : sorted.filter((tag) => tag > last);
  if (n === undefined) return { tags: after, next: undefined };
  const page = after.slice(0, n);
  return { tags: page, next: n > 0 && after.length > n ? page[page.length - 1] : undefined };
}

/** `target` is the request's path and query (`req.url`): `n` and `last` are read from it. */
export async function serveTags(resolver: TagSource, name: string, target: string, head: boolean, res: ServerResponse): Promise<void> {
  imageNameOf(name);
  const query = tagsPageOf(target);
  const { tags, next } = pageOf(await resolver.knownTags(), query);
  const body = JSON.stringify({ name, tags });
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  if (next !== undefined) {
    // The name is echoed as given: the grammar leaves only letters, digits, "_", "-", "." and "/".
    res.setHeader('Link', `</v2/${name}/tags/list?${new URLSearchParams({ n: String(query.n), last: next })}>; rel="next"`);
  }
  res.statusCode = 200;
  res.end(head ? undefined : body);
}
