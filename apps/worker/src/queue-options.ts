// The options of this process's BullMQ workers: how fast a dead worker's job is taken over (core's
// stall-recovery.ts) and how fast the worker comes back after Redis did. A worker whose job fetch
// failed on a lost connection waits 15 s by BullMQ's default before fetching again; a farm whose
// Redis restarted would sit idle that long with pulls waiting. (How soon its connections try
// again is core's: redis-url.ts, reconnectDelay.)

import type { WorkerOptions } from 'bullmq';
import { STALL_RECOVERY_WORKER_OPTIONS, type RedisConnectionOptions } from '@nixyard/core';

/** How long a worker waits before fetching jobs again after a Redis error. */
export const FETCH_RETRY_DELAY_MS = 1_000;

/**
 * A BullMQ Worker's options. `name` identifies this process in each job it takes (BullMQ stores
 * it as the job's `processedBy`), so an operator, or a test, can tell which worker holds a job.
 */
export function queueWorkerOptions(connection: RedisConnectionOptions, name: string, concurrency: number): WorkerOptions {
  return {
    connection,
    name,
    concurrency,
    runRetryDelay: FETCH_RETRY_DELAY_MS,
    ...STALL_RECOVERY_WORKER_OPTIONS,
  };
}
