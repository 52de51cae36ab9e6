// Every Redis call that a request waits for has a deadline. ioredis queues commands while Redis is
// away and a frozen Redis answers nothing at all, so without one a cold pull or a scrape would
// hang for the whole outage; with one, the client hears 503 UNAVAILABLE with Retry-After at once
// and retries (docs/operations.md, "Failure modes"). The work itself is not cancelled: a command
// already sent completes or fails on its own once Redis answers again.

import { RegistryError } from '@nixyard/core';

/** How long a request waits for the farm's Redis before it answers 503. */
export const REDIS_DEADLINE_MS = 1500;
/** What the 503 tells clients to wait before trying again. */
export const REDIS_RETRY_AFTER_SECONDS = 5;

export class DeadlineError extends Error {
  override readonly name = 'DeadlineError';

  /** `what`: the step that did not answer, as a client may read it ("taking the submit lock"). */
  constructor(
    readonly what: string,
    readonly ms: number,
  ) {
    super(`${what} did not answer within ${ms} ms`);
  }
}

/** What a client is told when the farm's Redis did not answer `what` in time (pull and admin API alike). */
export function redisUnavailableMessage(what: string): string {
  return `the build farm's Redis did not answer in time (${what}); try again shortly`;
}

/** `work`'s result, or a DeadlineError once `ms` have passed without one. */
export async function within<T>(ms: number, work: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(what, ms)), ms);
  });
  work.catch(() => {}); // once abandoned, its own failure is nobody's concern
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** `work`'s result, or 503 UNAVAILABLE with Retry-After when Redis does not answer in time. */
export async function fromRedis<T>(work: Promise<T>, what: string): Promise<T> {
  try {
    return await within(REDIS_DEADLINE_MS, work, what);
  } catch (err) {
    if (!(err instanceof DeadlineError)) throw err;
    throw new RegistryError(
      'UNAVAILABLE',
      redisUnavailableMessage(what),
      null,
      { cause: err, retryAfterSeconds: REDIS_RETRY_AFTER_SECONDS },
    );
  }
}
