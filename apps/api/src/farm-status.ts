// What the farm is doing right now, read from Redis: queue depth and recent failures per system,
// live workers, prebuild batches. The metrics' sampled gauges and the status page both use it.

import { BuildJobDataSchema, QUEUE_STATES, decodeBuildFailure, type BuildFailure, type QueueState, type System } from '@nixyard/core';
import type { BuildQueue } from './build-queue.js';
import type { LiveWorkers } from './live-workers.js';
import type { FarmSamplers } from './metrics.js';
import type { Prebuilds } from './admin/prebuilds.js';

export interface RecentFailure {
  jobId: string;
  system: System;
  packages: string[];
  requestId: string | undefined;
  failedAt: Date;
  failure: BuildFailure;
}

export class FarmStatus implements FarmSamplers {
  constructor(
    private readonly systems: readonly System[],
    private readonly builds: Pick<BuildQueue, 'queue'>,
    private readonly workers: Pick<LiveWorkers, 'count'>,
    private readonly prebuilds?: Pick<Prebuilds, 'list'>,
  ) {}

  async queueDepth(): Promise<Array<{ system: System; state: QueueState; count: number }>> {
    const rows = await Promise.all(
      this.systems.map(async (system) => {
        const counts = (await this.builds.queue(system)?.getJobCounts(...QUEUE_STATES)) ?? {};
        return QUEUE_STATES.map((state) => ({ system, state, count: counts[state] ?? 0 }));
      }),
    );
    return rows.flat();
  }

  async liveWorkers(): Promise<Array<{ system: System; count: number }>> {
    return Promise.all(this.systems.map(async (system) => ({ system, count: await this.workers.count(system) })));
  }

  async prebuildBatches(): Promise<Array<{ state: string; count: number }>> {
    const batches = (await this.prebuilds?.list()) ?? [];
    return ['running', 'settled'].map((state) => ({ state, count: batches.filter((b) => b.state === state).length }));
  }

  /** The newest failed builds across all systems, newest first. */
  async recentFailures(limit = 20): Promise<RecentFailure[]> {
    const perSystem = await Promise.all(
      this.systems.map(async (system) => {
        const jobs = (await this.builds.queue(system)?.getFailed(0, limit - 1)) ?? [];
        return jobs.map((job): RecentFailure => {
          const data = BuildJobDataSchema.safeParse(job.data);
          return {
            jobId: job.id ?? '',
            system,
            packages: data.success ? data.data.packages : [],
            requestId: data.success ? data.data.requestId : undefined,
            failedAt: new Date(job.finishedOn ?? job.timestamp),
            failure: decodeBuildFailure(job.failedReason) ?? { code: 'BUILD_FAILED', message: String(job.failedReason ?? 'unknown failure').slice(0, 500), logTail: '' },
          };
        });
      }),
    );
    return perSystem
      .flat()
      .sort((a, b) => b.failedAt.getTime() - a.failedAt.getTime())
      .slice(0, limit);
  }
}
