// Admission control: a registry that builds on demand is a compute service open to anyone who can
// send a GET, so new cold builds are bounded twice (docs/operations.md, "Admission control"):
//   - per system, by the builds already waiting in its queue (NIXYARD_MAX_QUEUED_BUILDS);
//   - per client address, by the cold builds it has in flight (NIXYARD_MAX_BUILDS_PER_CLIENT),
//     counted in Redis so that every API replica sees the same count.
// A pull that joins a build already in flight adds no work and is never refused. Both answers are
// 429 TOOMANYREQUESTS with Retry-After.
//
// The decisions must hold under a burst, when many cold pulls arrive in the same millisecond:
// within a replica, new builds of one system are decided and enqueued one at a time, so each
// sees the jobs the one before it added; a client's slot is checked and taken in one Lua script,
// so replicas cannot both take the last one. Across replicas the queue bound is still read, then
// added to, so replicas deciding at the same moment may each let one more build through.
//
// A storm must cost the replica little, since it serves warm pulls on the same event loop: once a
// system's queue is found full, new builds of it are refused for QUEUE_FULL_MEMORY_MS without
// asking Redis again or waiting for a turn, so each refusal of a storm costs one command (is the
// image in flight?). A build that leaves the queue in that second is seen a moment late.

import { RegistryError, clientBuildsKey, isFinishedState, jobIdFor, type BuildJobData, type System } from '@nixyard/core';
import type { Redis } from 'ioredis';
import type { BuildQueue } from './build-queue.js';

export type RefusalReason = 'queue_full' | 'client_limit';
export const REFUSAL_REASONS: readonly RefusalReason[] = ['queue_full', 'client_limit'];

/** Job states that count as waiting for a worker. */
const QUEUED_STATES = ['waiting', 'prioritized', 'delayed'] as const;
const RETRY_AFTER_SECONDS = 30;
/** How long a replica refuses new builds of a system whose queue it found full, without asking again. */
export const QUEUE_FULL_MEMORY_MS = 1_000;

/**
 * Takes a client's slot if it has one left: drops slots past their deadline, counts the rest, and
 * adds this one when under the limit. KEYS[1] the client's sorted set; ARGV now, limit, job id,
 * deadline (ms). Returns 1 when taken (or already held by this job), 0 when the client is at its limit.
 */
const TAKE_SLOT = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then return 1 end
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('PEXPIREAT', KEYS[1], ARGV[4])
return 1
`;

export interface AdmissionLimits {
  maxQueuedBuilds: number;
  /** 0: no per-client limit. */
  maxBuildsPerClient: number;
  /** How long a pull waits for its build at most: a slot is held no longer than that. */
  waitTimeoutMs: number;
  /** How long a full queue is remembered (default QUEUE_FULL_MEMORY_MS). */
  queueFullMemoryMs?: number;
}

/** Held by an admitted cold build until its pull stops waiting. */
export interface Admitted {
  release(): Promise<void>;
}

const NOTHING_HELD: Admitted = { release: async () => {} };

export class Admission {
  /** Per system: the decision in progress, which the next one waits for. */
  private readonly turns = new Map<System, Promise<unknown>>();
  /** Per system: the queue found full, with the count then, until when that stands. */
  private readonly full = new Map<System, { queued: number; until: number }>();

  constructor(
    private readonly redis: Redis,
    private readonly builds: Pick<BuildQueue, 'queue'>,
    private readonly limits: AdmissionLimits,
    private readonly onRefused: (reason: RefusalReason) => void,
  ) {}

  /**
   * Lets the build of `job` for `client` go ahead and enqueues it with `enqueue`, or throws 429
   * TOOMANYREQUESTS. A pull that joins a build in flight is enqueued (joined) without a decision.
   */
  async admit<T>(job: BuildJobData, client: string, enqueue: () => Promise<T>): Promise<{ admitted: Admitted; queued: T }> {
    if (!this.builds.queue(job.system) || (await this.inFlight(job))) return { admitted: NOTHING_HELD, queued: await enqueue() };
    this.refuseIfRememberedFull(job.system);
    return this.inTurn(job.system, async () => {
      // Another pull of this replica may have enqueued the same image while this one waited.
      if (await this.inFlight(job)) return { admitted: NOTHING_HELD, queued: await enqueue() };
      await this.checkQueue(job.system);
      const admitted = await this.takeSlot(job, client);
      try {
        return { admitted, queued: await enqueue() };
      } catch (err) {
        await admitted.release().catch(() => {});
        throw err;
      }
    });
  }

  /** One Redis command (BullMQ's getJobState script): a storm asks it of every pull. */
  private async inFlight(job: BuildJobData): Promise<boolean> {
    const state = await this.builds.queue(job.system)!.getJobState(jobIdFor(job.imageKey));
    return state !== 'unknown' && !isFinishedState(state);
  }

  private async checkQueue(system: System): Promise<void> {
    this.refuseIfRememberedFull(system);
    const counts = await this.builds.queue(system)!.getJobCounts(...QUEUED_STATES);
    const queued = QUEUED_STATES.reduce((sum, state) => sum + (counts[state] ?? 0), 0);
    if (queued < this.limits.maxQueuedBuilds) {
      this.full.delete(system);
      return;
    }
    this.full.set(system, { queued, until: Date.now() + (this.limits.queueFullMemoryMs ?? QUEUE_FULL_MEMORY_MS) });
    this.refuseFull(system, queued);
  }

  private refuseIfRememberedFull(system: System): void {
    const full = this.full.get(system);
    if (full === undefined) return;
    if (Date.now() < full.until) this.refuseFull(system, full.queued);
    this.full.delete(system);
  }

  private refuseFull(system: System, queued: number): never {
    this.onRefused('queue_full');
    throw new RegistryError(
      'TOOMANYREQUESTS',
      `too many builds are waiting for ${system} workers (${queued}); try again later`,
      { system },
      { retryAfterSeconds: RETRY_AFTER_SECONDS },
    );
  }

  private async takeSlot(job: BuildJobData, client: string): Promise<Admitted> {
    if (this.limits.maxBuildsPerClient === 0) return NOTHING_HELD;
    const key = clientBuildsKey(client);
    const jobId = jobIdFor(job.imageKey);
    const now = Date.now();
    const taken = await this.redis.eval(TAKE_SLOT, 1, key, now, this.limits.maxBuildsPerClient, jobId, now + this.limits.waitTimeoutMs);
    if (taken !== 1) {
      this.onRefused('client_limit');
      throw new RegistryError(
        'TOOMANYREQUESTS',
        `this client already has ${this.limits.maxBuildsPerClient} images building; pull them first, or try again later`,
        null,
        { retryAfterSeconds: RETRY_AFTER_SECONDS },
      );
    }
    return {
      release: async () => {
        await this.redis.zrem(key, jobId);
      },
    };
  }

  /** Runs `decide` once every earlier decision for `system` on this replica has settled. */
  private async inTurn<T>(system: System, decide: () => Promise<T>): Promise<T> {
    const before = this.turns.get(system) ?? Promise.resolve();
    const mine = before.catch(() => {}).then(decide);
    this.turns.set(system, mine);
    try {
      return await mine;
    } finally {
      if (this.turns.get(system) === mine) this.turns.delete(system);
    }
  }
}
