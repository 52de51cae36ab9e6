// GET/HEAD /v2/: the distribution API's version check. Clients such as skopeo and podman ask it
// first to learn that a registry speaks v2 and needs no credentials; Nixyard asks for none, so it
// answers every client 200 with an empty JSON object (the version header is set for every
// response in app.ts). containerd skips it.

import type { ServerResponse } from 'node:http';

export function serveBase(head: boolean, res: ServerResponse): void {
  res.statusCode = 200;
  res.setHeader('Content-Type', 'application/json');
  res.end(head ? undefined : '{}');
}
