// The options of this process's BullMQ workers and Redis connections: how fast a dead worker's job
// is taken over (core's stall-recovery.ts) and how fast the worker comes back after Redis did.
// BullMQ's own reconnect delay grows to 20 s after a few failed attempts, and a worker whose job
// fetch failed on a lost connection waits 15 s before fetching again; a farm whose Redis restarted
// would sit idle that long with pulls waiting. Reconnecting every half second at most costs a
// refused TCP connection per attempt.

import type { WorkerOptions } from 'bullmq';
import { STALL_RECOVERY_WORKER_OPTIONS, type RedisConnectionOptions } from '@nixyard/core';

/** The longest pause between two attempts to reach Redis again. */
export const MAX_RECONNECT_DELAY_MS = 500;
/** How long a worker waits before fetching jobs again after a Redis error. */
export const FETCH_RETRY_DELAY_MS = 1_000;

/** ioredis' retryStrategy: 50 ms, 100 ms, ... up to MAX_RECONNECT_DELAY_MS, and never gives up. */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(Math.max(1, attempt) * 50, MAX_RECONNECT_DELAY_MS);
}

export type WorkerConnectionOptions = RedisConnectionOptions & { retryStrategy: (attempt: number) => number };

/** REDIS_URL's options with this worker's reconnect timing, for every connection it opens. */
export function workerConnection(base: RedisConnectionOptions): WorkerConnectionOptions {
  return { ...base, retryStrategy: reconnectDelayMs };
}

/**
 * A BullMQ Worker's options. `name` identifies this process in each job it takes (BullMQ stores
 * it as the job's `processedBy`), so an operator, or a test, can tell which worker holds a job.
 */
export function queueWorkerOptions(connection: WorkerConnectionOptions, name: string, concurrency: number): WorkerOptions {
  return {
    connection,
    name,
    concurrency,
    runRetryDelay: FETCH_RETRY_DELAY_MS,
    ...STALL_RECOVERY_WORKER_OPTIONS,
  };
}
