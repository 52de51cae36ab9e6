// Readiness (`/readyz`) for both roles: every dependency answers within a bound, or the process
// reports 503 so a load balancer or orchestrator routes around it. The checks are functions, so
// this module knows nothing of Redis or a storage backend.

import { sha256Digest } from './digest.js';
import type { Storage } from './storage/storage.js';

export type ReadinessCheck = () => Promise<unknown>;

export interface Readiness {
  ready: boolean;
  /** `ok`, or what went wrong, per check. */
  checks: Record<string, string>;
}

export const READINESS_TIMEOUT_MS = 2_000;

const EMPTY_DIGEST = sha256Digest('');

/**
 * What every role needs to be ready: Redis answers a PING (through a client that fails fast
 * rather than queueing while Redis is away) and storage answers a lookup (a stat of the empty
 * blob: one cheap request on any backend, whether or not the blob exists).
 */
export function roleReadiness(deps: { pingRedis: ReadinessCheck; storage: Pick<Storage, 'statBlob'> }): () => Promise<Readiness> {
  return () => checkReadiness({ redis: deps.pingRedis, storage: () => deps.storage.statBlob(EMPTY_DIGEST) });
}

export async function checkReadiness(checks: Record<string, ReadinessCheck>, timeoutMs = READINESS_TIMEOUT_MS): Promise<Readiness> {
  const results = await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      });
      try {
        await Promise.race([check(), timeout]);
        return [name, 'ok'] as const;
      } catch (err) {
        return [name, err instanceof Error ? err.message : String(err)] as const;
      } finally {
        clearTimeout(timer);
      }
    }),
  );
  return { ready: results.every(([, status]) => status === 'ok'), checks: Object.fromEntries(results) };
}
