// Loading on first use, for the parts of the API that a warm pull never needs (farm.ts, the
// operator app). Concurrent first callers share one load; a load that fails is forgotten, so the
// next caller tries again instead of inheriting the failure for the life of the process.

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

type AsyncMethods<T> = { [K in keyof T as T[K] extends (...args: never[]) => Promise<unknown> ? K : never]: T[K] };

/**
 * Stands in for an object that is loaded on first use: each named method waits for `load`, then
 * calls the loaded object's method of the same name. Only methods that return promises qualify,
 * since the wait makes every call asynchronous.
 */
export function deferred<T, K extends keyof AsyncMethods<T>>(load: () => Promise<T>, methods: readonly K[]): Pick<AsyncMethods<T>, K> {
  const standIn: Record<PropertyKey, unknown> = {};
  for (const method of methods) {
    standIn[method] = async (...args: unknown[]) => {
      const target = await load();
      return (target[method as keyof T] as (...a: unknown[]) => Promise<unknown>).apply(target, args);
    };
  }
  return standIn as Pick<AsyncMethods<T>, K>;
}
