// Loading on first use, for the part of the API that a warm pull never needs (the operator app).
// Concurrent first callers share one load; a load that fails is forgotten, so the next caller
// tries again instead of inheriting the failure for the life of the process.

import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';

/** `load`, run once on first call; its promise is shared until it fails. */
export function onFirstUse<T>(load: () => Promise<T>): () => Promise<T> {
  let loading: Promise<T> | undefined;
  return () => {
    loading ??= load().catch((err: unknown) => {
      loading = undefined;
      throw err;
    });
    return loading;
  };
}

/** A request listener that is loaded by the first request it gets; `fail` answers when loading fails. */
export function listenerOnFirstUse(
  load: () => Promise<RequestListener>,
  fail: (req: IncomingMessage, res: ServerResponse, err: unknown) => void,
): RequestListener {
  const listener = onFirstUse(load);
  return (req, res) => {
    listener().then(
      (handle) => handle(req, res),
      (err: unknown) => fail(req, res, err),
    );
  };
}
