// Batch prebuilds (docs/design.md §3): a team submits the images its CI will pull, so the first pull is
// already warm. A batch is a BullMQ flow: one parent job per batch, one child build job per
// distinct image that is not stored yet. Children carry the same job id as pulls (the image key),
// so a pull that comes while a batch builds its image waits for that very job; an image that a
// pull or another batch is already building is joined, not added again; and a failed child is
// retired like any failed build when a later pull retries it (build-queue.ts).
//
// The batch's own record (what was asked, which job builds what) lives in Redis for a week;
// its state is read from the jobs and the manifest records when asked for.
//
// Every Redis call here has the request deadline (deadline.ts): while Redis is away, or a failover
// is under way, a submission answers 503 with Retry-After at once instead of waiting, and never
// holds the farm-wide submit lock while it waits.

import { randomUUID } from 'node:crypto';
import type { FlowJob, FlowProducer, Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { z } from 'zod';
import {
  AdminError,
  BuildResultSchema,
  MAX_PREBUILD_IMAGES,
  NOT_STARTED_STATES,
  PREBUILD_BATCHES,
  PREBUILD_QUEUE,
  PREBUILD_SUBMIT_LOCK,
  PrebuildImageStateSchema,
  RegistryError,
  SystemSchema,
  buildQueueName,
  countStates,
  decodeBuildFailure,
  isFinishedState,
  isSettled,
  jobIdFor,
  parseImageReference,
  prebuildBatchKey,
  readManifestRecord,
  type BuildJobData,
  type PrebuildBatch,
  type PrebuildImage,
  type PrebuildRequest,
  type PrebuildSummary,
  type Storage,
  type System,
} from '@nixyard/core';
import { BUILD_JOB_RETENTION, type BuildQueue } from '../build-queue.js';
import { bullmq } from '../bullmq.js';
import { REDIS_DEADLINE_MS, within } from '../deadline.js';
import { freshRecord, indexSystemsFor, jobForImage } from '../image-records.js';
import type { SourceResolver } from '../source-resolver.js';

const BATCH_TTL_SECONDS = 7 * 24 * 60 * 60;
const SUBMIT_LOCK_MS = 120_000;
/** How long a submission waits for another one's lock before it answers 503. */
const SUBMIT_LOCK_WAIT_MS = 30_000;
/** Reading a batch's state is a few Redis commands per image: one deadline for all of them. */
const STATUS_DEADLINE_MS = 4 * REDIS_DEADLINE_MS;
const RELEASE_LOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0";
const RECENT = 50;

const BatchRecordSchema = z.object({
  id: z.string(),
  label: z.string().optional(),
  createdAt: z.string(),
  /** The flow's parent job, when the batch had anything to build. */
  parentJobId: z.string().optional(),
  images: z.array(
    z.object({
      image: z.string(),
      system: SystemSchema,
      imageKey: z.string(),
      /** The build job this image waits for; absent when it was already stored. */
      jobId: z.string().optional(),
      initial: PrebuildImageStateSchema,
    }),
  ),
});
type BatchRecord = z.infer<typeof BatchRecordSchema>;

export interface PrebuildDeps {
  /** The API's command connection; the flow producer shares it (as the build queues do). */
  redis: Redis;
  storage: Storage;
  builds: Pick<BuildQueue, 'queue'>;
  resolver: SourceResolver;
  systems: readonly System[];
  indexSystems: readonly System[] | undefined;
  manifestTtlSeconds: number;
  onError?(err: Error): void;
}

interface PlannedImage {
  image: string;
  job: BuildJobData;
}

export class Prebuilds {
  private readonly flows: FlowProducer;

  constructor(private readonly deps: PrebuildDeps) {
    this.flows = new bullmq.FlowProducer({ connection: deps.redis });
    this.flows.on('error', deps.onError ?? (() => {}));
  }

  async submit(request: PrebuildRequest): Promise<PrebuildBatch> {
    if (request.images.length > MAX_PREBUILD_IMAGES) {
      throw new AdminError('BATCH_TOO_LARGE', `a batch holds at most ${MAX_PREBUILD_IMAGES} images; this one has ${request.images.length}`, {
        limit: MAX_PREBUILD_IMAGES,
      });
    }
    const planned = await this.plan(request.images);

    const id = randomUUID();
    const images: BatchRecord['images'] = [];
    let parentJobId: string | undefined;
    // One submission at a time, farm-wide: a job has one parent, so two batches adding the same
    // image as a child at once would collide. Under the lock, an image in flight is joined.
    await this.withSubmitLock(async () => {
      const children: FlowJob[] = [];
      for (const { image, job } of planned) {
        const entry = { image, system: job.system, imageKey: job.imageKey };
        if (await freshRecord(this.deps.storage, job)) {
          images.push({ ...entry, initial: 'cached' });
          continue;
        }
        const jobId = jobIdFor(job.imageKey);
        images.push({ ...entry, jobId, initial: 'queued' });
        if (await within(REDIS_DEADLINE_MS, this.inFlight(job.system, jobId), 'looking up a build job')) continue;
        children.push({
          name: 'build',
          queueName: buildQueueName(job.system),
          data: job,
          // One image failing must not stop the batch: the parent completes with the rest.
          opts: { jobId, ...BUILD_JOB_RETENTION, ignoreDependencyOnFailure: true },
        });
      }
      if (children.length > 0) {
        // Past the deadline the flow may still be added once Redis answers: its builds then run, and
        // a retried submission joins them (above).
        const flow = await within(REDIS_DEADLINE_MS, this.flows.add({ name: 'prebuild', queueName: PREBUILD_QUEUE, data: { batchId: id }, children }), 'adding the batch');
        parentJobId = flow.job.id;
      }
    });

    const record: BatchRecord = {
      id,
      ...(request.label ? { label: request.label } : {}),
      createdAt: new Date().toISOString(),
      ...(parentJobId ? { parentJobId } : {}),
      images,
    };
    const now = Date.now();
    await within(
      REDIS_DEADLINE_MS,
      this.deps.redis
        .multi()
        .set(prebuildBatchKey(id), JSON.stringify(record), 'EX', BATCH_TTL_SECONDS)
        .zadd(PREBUILD_BATCHES, now, id)
        .zremrangebyscore(PREBUILD_BATCHES, '-inf', now - BATCH_TTL_SECONDS * 1000)
        .exec(),
      'recording the batch',
    );
    return within(STATUS_DEADLINE_MS, this.statusOf(record), 'reading the batch');
  }

  /** Every entry parsed, resolved and keyed, or the whole batch refused with every bad entry. */
  private async plan(texts: readonly string[]): Promise<PlannedImage[]> {
    const invalid: Array<{ index: number; image: string; reason: string }> = [];
    const planned = new Map<string, PlannedImage>();
    for (const [index, text] of texts.entries()) {
      try {
        const ref = parseImageReference(text);
        const resolved = await this.deps.resolver.resolve(ref.tag);
        const systems = indexSystemsFor(ref, this.deps.indexSystems) ?? [ref.system];
        for (const system of systems) {
          if (!this.deps.systems.includes(system)) throw new RegistryError('MANIFEST_UNKNOWN', `this registry does not serve ${system} images`);
          const job = jobForImage(this.deps.resolver.source, { ...ref, system }, resolved, this.deps.manifestTtlSeconds);
          if (!planned.has(job.imageKey)) planned.set(job.imageKey, { image: systems.length > 1 ? `${text} (${system})` : text, job });
        }
      } catch (err) {
        if (!(err instanceof RegistryError)) throw err;
        invalid.push({ index, image: text.slice(0, 200), reason: err.message });
      }
    }
    if (invalid.length > 0) {
      throw new AdminError('BATCH_INVALID', `${invalid.length} of ${texts.length} images are invalid; nothing was enqueued`, { invalid });
    }
    return [...planned.values()];
  }

  /** Whether the image's build job is waiting or running; a finished one is retired. */
  private async inFlight(system: System, jobId: string): Promise<boolean> {
    const job = await this.job(system, jobId);
    if (!job) return false;
    const state = await job.getState();
    if (!isFinishedState(state)) return true;
    await this.deps.builds.queue(system)?.remove(jobId);
    return false;
  }

  private async withSubmitLock<T>(work: () => Promise<T>): Promise<T> {
    const token = randomUUID();
    // Only our own lock is released (it may have expired and been taken by another submission).
    const release = () => this.deps.redis.eval(RELEASE_LOCK, 1, PREBUILD_SUBMIT_LOCK, token);
    const giveUpAt = Date.now() + SUBMIT_LOCK_WAIT_MS;
    for (;;) {
      let taken: string | null;
      try {
        taken = await within(REDIS_DEADLINE_MS, this.deps.redis.set(PREBUILD_SUBMIT_LOCK, token, 'PX', SUBMIT_LOCK_MS, 'NX'), 'taking the submit lock');
      } catch (err) {
        // The SET may still reach Redis once it answers, and take the lock for nobody. The release
        // goes out after it on the same connection, in order, so it undoes it.
        release().catch(() => {});
        throw err;
      }
      if (taken === 'OK') break;
      if (Date.now() > giveUpAt) {
        throw new AdminError('UNAVAILABLE', 'another prebuild submission is still being enqueued; try again', null, { retryAfterSeconds: 5 });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    try {
      return await work();
    } finally {
      // If Redis does not answer in time, the release still goes out; the lock expires regardless.
      await within(REDIS_DEADLINE_MS, release(), 'releasing the submit lock').catch(() => {});
    }
  }

  async get(id: string): Promise<PrebuildBatch> {
    return within(STATUS_DEADLINE_MS, this.record(id).then((record) => this.statusOf(record)), 'reading the batch');
  }

  async list(): Promise<PrebuildSummary[]> {
    return within(STATUS_DEADLINE_MS * 2, this.summaries(), 'listing batches');
  }

  private async summaries(): Promise<PrebuildSummary[]> {
    const ids = await this.deps.redis.zrevrange(PREBUILD_BATCHES, 0, RECENT - 1);
    const batches: PrebuildSummary[] = [];
    for (const id of ids) {
      const record = await this.record(id).catch(() => undefined);
      if (!record) continue;
      const { images: _images, ...summary } = await this.statusOf(record);
      batches.push(summary);
    }
    return batches;
  }

  /**
   * Removes the batch's build jobs that have not started; returns how many. Past the deadline the
   * removals may still happen once Redis answers; cancelling again is harmless.
   */
  async cancel(id: string): Promise<number> {
    return within(STATUS_DEADLINE_MS, this.cancelWaiting(id), 'cancelling the batch');
  }

  private async cancelWaiting(id: string): Promise<number> {
    const record = await this.record(id);
    let cancelled = 0;
    for (const image of record.images) {
      if (!image.jobId) continue;
      const job = await this.job(image.system, image.jobId);
      // Only our own waiting children: a job this batch merely joined belongs to someone else.
      const ours = job?.parent !== undefined && job.parent.id === record.parentJobId && job.parent.queueKey.endsWith(`:${PREBUILD_QUEUE}`);
      if (!job || !ours) continue;
      if (!(NOT_STARTED_STATES as readonly string[]).includes(await job.getState())) continue;
      try {
        await job.remove();
        image.initial = 'cancelled';
        delete image.jobId;
        cancelled += 1;
      } catch {
        // it started meanwhile: it is no longer cancellable
      }
    }
    const ttl = await this.deps.redis.ttl(prebuildBatchKey(id));
    await this.deps.redis.set(prebuildBatchKey(id), JSON.stringify(record), 'EX', ttl > 0 ? ttl : BATCH_TTL_SECONDS);
    return cancelled;
  }

  async close(): Promise<void> {
    await this.flows.close();
  }

  private async record(id: string): Promise<BatchRecord> {
    const raw = /^[0-9a-f-]{36}$/.test(id) ? await this.deps.redis.get(prebuildBatchKey(id)) : null;
    if (!raw) throw new AdminError('BATCH_UNKNOWN', `no prebuild batch ${id.slice(0, 64)}`);
    return BatchRecordSchema.parse(JSON.parse(raw));
  }

  private async job(system: System, jobId: string): Promise<Job | undefined> {
    const queue = this.deps.builds.queue(system);
    return queue ? await bullmq.Job.fromId(queue, jobId) : undefined;
  }

  private async statusOf(record: BatchRecord): Promise<PrebuildBatch> {
    const images = await Promise.all(record.images.map((image) => this.imageStatus(image)));
    const counts = countStates(images);
    return {
      id: record.id,
      ...(record.label ? { label: record.label } : {}),
      createdAt: record.createdAt,
      state: isSettled(counts) ? 'settled' : 'running',
      total: images.length,
      counts,
      images,
    };
  }

  private async imageStatus(image: BatchRecord['images'][number]): Promise<PrebuildImage> {
    const base = { image: image.image, system: image.system, imageKey: image.imageKey };
    const stored = async () => (await readManifestRecord(this.deps.storage, image.imageKey))?.manifests.oci.digest;
    if (image.initial === 'cached' || image.initial === 'cancelled' || !image.jobId) {
      const digest = image.initial === 'cached' ? await stored() : undefined;
      return { ...base, state: image.initial, ...(digest ? { manifestDigest: digest } : {}) };
    }
    const job = await this.job(image.system, image.jobId);
    const state = job ? await job.getState() : 'unknown';
    switch (state) {
      case 'completed': {
        const result = BuildResultSchema.safeParse(job!.returnvalue);
        return { ...base, state: 'built', ...(result.success ? { manifestDigest: result.data.manifestDigest } : {}) };
      }
      case 'failed': {
        const failure = decodeBuildFailure(job!.failedReason) ?? { code: 'BUILD_FAILED' as const, message: String(job!.failedReason).slice(0, 500), logTail: '' };
        return { ...base, state: 'failed', failure };
      }
      case 'active':
        return { ...base, state: 'building' };
      case 'unknown': {
        // The job has expired: the manifest record tells whether it was built.
        const digest = await stored();
        if (digest) return { ...base, state: 'built', manifestDigest: digest };
        return { ...base, state: 'failed', failure: { code: 'BUILD_FAILED', message: 'the build job has expired without a manifest', logTail: '' } };
      }
      default:
        return { ...base, state: 'queued' };
    }
  }
}
