// GET/HEAD /v2/: the distribution API's version check (end-1). Clients such as skopeo and podman
// ask it first to learn that a registry speaks v2 and whether it needs credentials; it answers
// 200 with an empty JSON object (the version header is set for every response in app.ts), or 401
// when pull authentication asks for a login (auth/, in app.ts): the two statuses end-1 lists.
// containerd skips it. HEAD gets GET's headers, its length included, and no body.

import type { ServerResponse } from 'node:http';

const BODY = '{}';

export function serveBase(head: boolean, res: ServerResponse): void {
  res.statusCode = 200;
  res.setHeader('Content-Type', 'application/json');
  res.setHeader('Content-Length', BODY.length);
  res.end(head ? undefined : BODY);
}
