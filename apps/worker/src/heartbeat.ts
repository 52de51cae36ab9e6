// Tells the API this worker is alive and which systems it builds (see @nixyard/core's
// worker-registry): a beat every few seconds into each system's sorted set, removed on shutdown.
// A beat also goes out whenever the Redis connection becomes ready again: a Redis that restarted
// empty (or failed over) has forgotten every worker, and until the next timed beat the API would
// refuse pulls that live workers could build.

import { HEARTBEAT_INTERVAL_MS, WORKER_TTL_MS, workersKey, type System } from '@nixyard/core';
import type { Redis } from 'ioredis';

export interface Heartbeat {
  /** Stops beating and removes this worker from the sets (waits for Redis; bound it on the way out). */
  stop(): Promise<void>;
}

export async function startHeartbeat(redis: Redis, systems: readonly System[], workerId: string, onError: (err: unknown) => void): Promise<Heartbeat> {
  let stopped = false;
  const beat = async () => {
    if (stopped) return;
    const now = Date.now();
    const pipeline = redis.pipeline();
    for (const system of systems) {
      pipeline.zadd(workersKey(system), now, workerId);
      // Forget workers that died without saying goodbye, long after they stopped counting.
      pipeline.zremrangebyscore(workersKey(system), '-inf', now - 4 * WORKER_TTL_MS);
    }
    await pipeline.exec();
  };
  const onReady = () => void beat().catch(onError);
  redis.on('ready', onReady);
  try {
    await beat();
  } catch (err) {
    redis.off('ready', onReady);
    throw err;
  }
  const timer = setInterval(onReady, HEARTBEAT_INTERVAL_MS);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      redis.off('ready', onReady);
      const pipeline = redis.pipeline();
      for (const system of systems) pipeline.zrem(workersKey(system), workerId);
      await pipeline.exec();
    },
  };
}
