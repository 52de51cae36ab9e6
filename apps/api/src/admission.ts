// Admission control: a registry that builds on demand is a compute service open to anyone who can
// send a GET, so new cold builds are bounded twice (docs/operations.md, "Admission control"):
//   - per system, by the builds already waiting in its queue (NIXYARD_MAX_QUEUED_BUILDS);
//   - per client address, by the cold builds it has in flight (NIXYARD_MAX_BUILDS_PER_CLIENT),
//     counted in Redis so that every API replica sees the same count.
// A pull that joins a build already in flight adds no work and is never refused. Both answers are
// 429 TOOMANYREQUESTS with Retry-After. The bounds are checked before the job is added, so two
// replicas deciding at once may each let one more through: they are limits on abuse, not quotas.

import { RegistryError, clientBuildsKey, isFinishedState, jobIdFor, type BuildJobData } from '@nixyard/core';
import type { Redis } from 'ioredis';
import type { BuildQueue } from './build-queue.js';

export type RefusalReason = 'queue_full' | 'client_limit';
export const REFUSAL_REASONS: readonly RefusalReason[] = ['queue_full', 'client_limit'];

/** Job states that count as waiting for a worker. */
const QUEUED_STATES = ['waiting', 'prioritized', 'delayed'] as const;
const RETRY_AFTER_SECONDS = 30;

export interface AdmissionLimits {
  maxQueuedBuilds: number;
  /** 0: no per-client limit. */
  maxBuildsPerClient: number;
  /** How long a pull waits for its build at most: a slot is held no longer than that. */
  waitTimeoutMs: number;
}

/** Held by an admitted cold build until its pull stops waiting. */
export interface Admitted {
  release(): Promise<void>;
}

const NOTHING_HELD: Admitted = { release: async () => {} };

export class Admission {
  constructor(
    private readonly redis: Redis,
    private readonly builds: Pick<BuildQueue, 'queue'>,
    private readonly limits: AdmissionLimits,
    private readonly onRefused: (reason: RefusalReason) => void,
  ) {}

  /** Lets the build of `job` for `client` go ahead, or throws 429 TOOMANYREQUESTS. */
  async admit(job: BuildJobData, client: string): Promise<Admitted> {
    const queue = this.builds.queue(job.system);
    if (!queue) return NOTHING_HELD; // the build queue refuses the system itself
    const jobId = jobIdFor(job.imageKey);
    const existing = await queue.getJob(jobId);
    if (existing && !isFinishedState(await existing.getState())) return NOTHING_HELD;

    const counts = await queue.getJobCounts(...QUEUED_STATES);
    const queued = QUEUED_STATES.reduce((sum, state) => sum + (counts[state] ?? 0), 0);
    if (queued >= this.limits.maxQueuedBuilds) {
      this.onRefused('queue_full');
      throw new RegistryError(
        'TOOMANYREQUESTS',
        `too many builds are waiting for ${job.system} workers (${queued}); try again later`,
        { system: job.system },
        { retryAfterSeconds: RETRY_AFTER_SECONDS },
      );
    }
    if (this.limits.maxBuildsPerClient === 0) return NOTHING_HELD;

    const key = clientBuildsKey(client);
    const now = Date.now();
    const [, inFlight] = (await this.redis.multi().zremrangebyscore(key, '-inf', now).zcard(key).exec()) ?? [];
    if (Number(inFlight?.[1] ?? 0) >= this.limits.maxBuildsPerClient) {
      this.onRefused('client_limit');
      throw new RegistryError(
        'TOOMANYREQUESTS',
        `this client already has ${this.limits.maxBuildsPerClient} images building; pull them first, or try again later`,
        null,
        { retryAfterSeconds: RETRY_AFTER_SECONDS },
      );
    }
    const until = now + this.limits.waitTimeoutMs;
    await this.redis.multi().zadd(key, until, jobId).pexpireat(key, until).exec();
    return {
      release: async () => {
        await this.redis.zrem(key, jobId);
      },
    };
  }
}
