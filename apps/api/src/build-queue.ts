// The API's side of the build queue (docs/design.md §3): one BullMQ queue per system, one job per image
// key while it is in flight. The job id is the image key, so identical pulls that arrive while a
// build runs attach to the same job and all wait for its one result, and so do prebuild batches,
// whose flow children carry the same id (BullMQ refuses its deduplication option on flow
// children). The cost of a custom id: a finished job keeps it, so `addBuild` retires a finished
// job before adding a new one: a completed one is stale (its record is missing or too old, or
// nobody would ask), a failed one is a build to retry.

import type { ConnectionOptions, Job, Queue, QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import {
  BuildResultSchema,
  RegistryError,
  buildQueueName,
  decodeBuildFailure,
  isFinishedState,
  jobIdFor,
  type BuildFailure,
  type BuildJobData,
  type BuildResult,
  type System,
} from '@nixyard/core';
import { bullmq } from './bullmq.js';

export interface BuildQueueOptions {
  /**
   * The API's one command connection, which every queue shares (BullMQ uses a client it is given
   * as it is). One busy connection notices a lost Redis primary once, for all of them; a queue
   * with a connection of its own would notice only at its first command after the failover, and
   * wait DEAD_CONNECTION_MS then (docs/operations.md, "Redis high availability").
   */
  client: Redis;
  /** Options for each queue's event stream, which blocks and so needs a connection of its own. */
  connection: ConnectionOptions;
  systems: readonly System[];
  /** How long a pull waits for its build before giving up (the build itself goes on). */
  waitTimeoutMs: number;
  /** How often a waiting pull checks that its job is still there and not finished unheard (default JOB_CHECK_MS). */
  jobCheckMs?: number;
  /** Connection errors (Redis away): BullMQ retries; an unheard 'error' event would end the process. */
  onError?(err: Error): void;
}

// Finished jobs are kept so that every API replica waiting on one can read its result; failed
// ones a day longer, for their log tails.
export const BUILD_JOB_RETENTION = {
  removeOnComplete: { age: 60 * 60, count: 10_000 },
  removeOnFail: { age: 24 * 60 * 60, count: 10_000 },
};

export class BuildQueue {
  private readonly queues = new Map<System, { queue: Queue; events: QueueEvents }>();

  constructor(private readonly options: BuildQueueOptions) {
    for (const system of options.systems) {
      const name = buildQueueName(system);
      const queue = new bullmq.Queue(name, { connection: options.client });
      const events = new bullmq.QueueEvents(name, { connection: options.connection });
      // Every pull waiting for a build listens for the queue's 'closing' (BullMQ's waitUntilFinished).
      queue.setMaxListeners(0);
      const onError = options.onError ?? (() => {});
      queue.on('error', onError);
      events.on('error', onError);
      this.queues.set(system, { queue, events });
    }
  }

  async ready(): Promise<void> {
    await Promise.all([...this.queues.values()].map(({ queue, events }) => Promise.all([queue.waitUntilReady(), events.waitUntilReady()])));
  }

  /** The system's queue, for job lookups (prebuild status) and removal (prebuild cancel). */
  queue(system: System): Queue | undefined {
    return this.queues.get(system)?.queue;
  }

  /** Enqueues the build (or joins the one in flight) and waits for its result. */
  async build(data: BuildJobData): Promise<BuildResult> {
    return (await this.enqueue(data)).result();
  }

  /**
   * Enqueues the build, or joins the one in flight: the quick part, a few Redis commands, which a
   * caller may bound with a deadline; `result()` is the wait for the build itself.
   */
  async enqueue(data: BuildJobData): Promise<{ result(): Promise<BuildResult> }> {
    const entry = this.queues.get(data.system);
    if (!entry) {
      // A pull asks for it (end-3), where 404 is the failure the spec lists: no such image here.
      throw new RegistryError('MANIFEST_UNKNOWN', `this registry does not build images for ${data.system}`, { system: data.system });
    }
    let job = await addBuild(entry.queue, data);
    return {
      result: async () => {
        const giveUpAt = Date.now() + this.options.waitTimeoutMs;
        for (;;) {
          const waiting = job.waitUntilFinished(entry.events, Math.max(1, giveUpAt - Date.now()));
          let outcome: { finished: unknown } | Unheard;
          try {
            outcome = await Promise.race([waiting.then((finished) => ({ finished })), unheard(entry.queue, job.id!, waiting, this.options.jobCheckMs ?? JOB_CHECK_MS)]);
          } catch (err) {
            throw failureToRegistryError(err, job.id, this.options.waitTimeoutMs);
          }
          if (typeof outcome === 'object') return BuildResultSchema.parse(outcome.finished);
          waiting.catch(() => {});
          // Redis lost the job (restarted empty, or flushed): the pull asks for the build again.
          // Or the job finished while the event stream's connection was away (it reconnects on
          // its own, after the command connection may have): waiting anew reads the result at once.
          if (outcome === 'vanished') job = await addBuild(entry.queue, data);
        }
      },
    };
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map(({ queue, events }) => Promise.all([queue.close(), events.close()])));
  }
}

/** How often a pull waiting for a build checks that Redis still has its job, and has not finished it unheard. */
export const JOB_CHECK_MS = 5_000;

/** Why a wait for a job's event would never end: the job is gone, or its event was missed. */
type Unheard = 'vanished' | 'finished';

/**
 * Resolves once the job's event can no longer come while `waiting` still waits for it: 'vanished'
 * when Redis no longer knows the job, 'finished' when the job is completed or failed (its event
 * went by while the event stream was not listening). Never while `waiting` is pending otherwise;
 * a check that fails, Redis being away, is only tried again. BullMQ's own wait would last until
 * its timeout in both cases.
 */
async function unheard(queue: Queue, jobId: string, waiting: Promise<unknown>, checkMs: number): Promise<Unheard> {
  let settled = false;
  waiting.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, checkMs).unref());
    if (settled) return new Promise<never>(() => {});
    const state = await queue.getJobState(jobId).catch(() => 'unreadable');
    if (settled) continue;
    if (state === 'unknown') return 'vanished';
    if (isFinishedState(state)) return 'finished';
  }
}

/** Adds the build job for an image, or returns the one in flight for it. */
export async function addBuild(queue: Queue, data: BuildJobData): Promise<Job> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const job = await queue.add('build', data, { jobId: jobIdFor(data.imageKey), ...BUILD_JOB_RETENTION });
    const state = await job.getState();
    if (!isFinishedState(state)) return job;
    await queue.remove(job.id!); // 0 when another replica retired it first: fine either way
  }
  throw new RegistryError('UNKNOWN', 'could not enqueue the build: its job id stayed taken by finished jobs');
}

function failureToRegistryError(err: unknown, jobId: string | undefined, waitTimeoutMs: number): RegistryError {
  const message = err instanceof Error ? err.message : String(err);
  const failure = decodeBuildFailure(message);
  if (failure) return registryErrorFor(failure, jobId);
  if (/timed out before finishing/.test(message)) {
    return new RegistryError('UNKNOWN', `the build did not finish within ${Math.round(waitTimeoutMs / 1000)}s; it goes on, try again later`, { job: jobId ?? null });
  }
  return new RegistryError('UNKNOWN', `the build failed: ${message.slice(0, 300)}`, { job: jobId ?? null });
}

/** How each typed build failure reaches the client (docs/design.md §3). */
export function registryErrorFor(failure: BuildFailure, jobId: string | undefined): RegistryError {
  const job = jobId ?? null;
  switch (failure.code) {
    case 'UNKNOWN_PACKAGES':
      return new RegistryError('MANIFEST_UNKNOWN', `unknown packages: ${failure.packages.join(', ')}`, { packages: failure.packages });
    case 'TIMEOUT':
      return new RegistryError('UNKNOWN', `the build timed out after ${failure.seconds}s (NIX_TIMEOUT); see the log of build job ${job}`, { job, seconds: failure.seconds });
    case 'BUILD_FAILED':
      return new RegistryError('UNKNOWN', `the build failed: ${failure.message}; see the log of build job ${job}`, { job });
    case 'STORAGE':
      return new RegistryError('UNKNOWN', `the image could not be stored: ${failure.message}`, { job });
    case 'WORKER_CRASHED':
      // Not the image's fault as far as anyone knows (a deploy, a lost machine): the next pull
      // starts a new build, after a pause that a farm restarting its workers needs.
      return new RegistryError(
        'UNAVAILABLE',
        `the workers running build job ${job} crashed or were killed before finishing it, more often than it is retried; try again later`,
        { job },
        { retryAfterSeconds: 30 },
      );
  }
}
