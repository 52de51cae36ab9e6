// The API's side of the build queue (DESIGN §3): one BullMQ queue per system, one job per image
// key while it is in flight. Identical pulls that arrive while a build runs attach to the same
// job through BullMQ's deduplication, then all wait for its one result.

import { Queue, QueueEvents, type ConnectionOptions, type Job } from 'bullmq';
import {
  BuildResultSchema,
  RegistryError,
  decodeBuildFailure,
  queueNameFor,
  type BuildFailure,
  type BuildJobData,
  type BuildResult,
  type System,
} from '@nixyard/core';

export interface BuildQueueOptions {
  connection: ConnectionOptions;
  systems: readonly System[];
  /** How long a pull waits for its build before giving up (the build itself goes on). */
  waitTimeoutMs: number;
}

// Finished jobs are kept so that every API replica waiting on one can read its result; failed
// ones a day longer, for their log tails.
const KEEP_COMPLETED = { age: 60 * 60, count: 10_000 };
const KEEP_FAILED = { age: 24 * 60 * 60, count: 10_000 };

export class BuildQueue {
  private readonly queues = new Map<System, { queue: Queue; events: QueueEvents }>();

  constructor(private readonly options: BuildQueueOptions) {
    for (const system of options.systems) {
      const name = queueNameFor(system);
      this.queues.set(system, {
        queue: new Queue(name, { connection: options.connection }),
        events: new QueueEvents(name, { connection: options.connection }),
      });
    }
  }

  async ready(): Promise<void> {
    await Promise.all([...this.queues.values()].map(({ queue, events }) => Promise.all([queue.waitUntilReady(), events.waitUntilReady()])));
  }

  /** Enqueues the build (or joins the one in flight) and waits for its result. */
  async build(data: BuildJobData): Promise<BuildResult> {
    const entry = this.queues.get(data.system);
    if (!entry) {
      throw new RegistryError('UNSUPPORTED', `this registry does not build images for ${data.system}`, { system: data.system });
    }
    const job: Job = await entry.queue.add('build', data, {
      deduplication: { id: data.imageKey },
      removeOnComplete: KEEP_COMPLETED,
      removeOnFail: KEEP_FAILED,
    });
    let result: unknown;
    try {
      result = await job.waitUntilFinished(entry.events, this.options.waitTimeoutMs);
    } catch (err) {
      throw failureToRegistryError(err, job.id, this.options.waitTimeoutMs);
    }
    return BuildResultSchema.parse(result);
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map(({ queue, events }) => Promise.all([queue.close(), events.close()])));
  }
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

/** How each typed build failure reaches the client (DESIGN §3). */
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
  }
}
