// The jobs whose worker died, seen from the worker that notices. A dead worker cannot count or log
// its own crash; the live worker whose stalled-job check takes the job over logs it, and the one
// that picks up a job BullMQ has given up on (its workers died more often than stall-recovery.ts
// allows) counts it as WORKER_CRASHED and logs it, so the failure counter and the log show crashes
// as they show every other failure.

import { decodeBuildFailure } from '@nixyard/core';
import type { Logger } from 'pino';
import type { WorkerMetrics } from './metrics.js';

/** The part of a BullMQ Worker this needs: its 'stalled' and 'failed' events. */
export interface QueueWorkerEvents {
  on(event: 'stalled', listener: (jobId: string, prev: string) => void): unknown;
  on(event: 'failed', listener: (job: { id?: string | undefined; data: unknown } | undefined, error: Error, prev: string) => void): unknown;
}

export function watchCrashedJobs(worker: QueueWorkerEvents, metrics: Pick<WorkerMetrics, 'buildFailures'>, logger: Logger): void {
  worker.on('stalled', (jobId) => {
    logger.warn({ jobId }, 'job taken over: the worker running it stopped renewing its lock');
  });
  worker.on('failed', (job, error) => {
    const failure = decodeBuildFailure(error.message);
    // Every other failure went through the job runner, which counted and logged it already.
    if (failure?.code !== 'WORKER_CRASHED') return;
    metrics.buildFailures.inc({ code: failure.code });
    const data = job?.data as { imageKey?: unknown; requestId?: unknown; packages?: unknown; system?: unknown } | undefined;
    logger.error(
      { jobId: job?.id, imageKey: data?.imageKey, requestId: data?.requestId, packages: data?.packages, system: data?.system, failure },
      'build failed',
    );
  });
}
