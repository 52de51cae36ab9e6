// Tells the API this worker is alive and which systems it builds (see @nixyard/core's
// worker-registry): a beat every few seconds into each system's sorted set, removed on shutdown.

import { HEARTBEAT_INTERVAL_MS, WORKER_TTL_MS, workersKey, type System } from '@nixyard/core';
import type { Redis } from 'ioredis';

export interface Heartbeat {
  stop(): Promise<void>;
}

export async function startHeartbeat(redis: Redis, systems: readonly System[], workerId: string, onError: (err: unknown) => void): Promise<Heartbeat> {
  const beat = async () => {
    const now = Date.now();
    const pipeline = redis.pipeline();
    for (const system of systems) {
      pipeline.zadd(workersKey(system), now, workerId);
      // Forget workers that died without saying goodbye, long after they stopped counting.
      pipeline.zremrangebyscore(workersKey(system), '-inf', now - 4 * WORKER_TTL_MS);
    }
    await pipeline.exec();
  };
  await beat();
  const timer = setInterval(() => beat().catch(onError), HEARTBEAT_INTERVAL_MS);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      const pipeline = redis.pipeline();
      for (const system of systems) pipeline.zrem(workersKey(system), workerId);
      await pipeline.exec();
    },
  };
}
