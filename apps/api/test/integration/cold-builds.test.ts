// The farm's side of a cold pull against a real redis-server and real BullMQ queues
// (cold-builds.ts, admission.ts, unknown-packages.ts, deadline.ts): the queue bound and the
// per-client bound with their 429s, joining a build in flight, the negative cache with its TTLs,
// live workers re-checked after a zero, and a frozen Redis answered with 503. Builds are run by an
// in-test BullMQ worker whose processor answers as a real worker would (a result, or an encoded
// typed failure).

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { once } from 'node:events';
import { QueueEvents, UnrecoverableError, Worker, type Job } from 'bullmq';
import {
  BUILD_PHASES,
  OCI_IMAGE_MANIFEST,
  PATH_REVISION,
  RegistryError,
  buildJobFor,
  buildQueueName,
  encodeBuildFailure,
  jobIdFor,
  parseImageName,
  redisConnectionOptions,
  unknownPackagesKey,
  workersKey,
  type BuildJobData,
  type BuildResult,
} from '@nixyard/core';
import { Admission, type RefusalReason } from '../../src/admission.js';
import { BuildQueue } from '../../src/build-queue.js';
import { ColdBuilds } from '../../src/cold-builds.js';
import { LiveWorkers } from '../../src/live-workers.js';
import { PINNED_TTL_SECONDS, UnknownPackages } from '../../src/unknown-packages.js';
import { startTestRedis, type TestRedis } from '../../../../test/helpers/redis.js';

const SYSTEM = 'x86_64-linux';
const TTL_SECONDS = 300;

function job(name: string, moving = false): BuildJobData {
  return buildJobFor({
    spec: parseImageName(name),
    source: { kind: 'path', path: '/srv/pkgs' },
    revision: PATH_REVISION,
    ...(moving ? { freshAfter: new Date(Date.now() - TTL_SECONDS * 1000) } : {}),
  });
}

function resultFor(data: BuildJobData): BuildResult {
  return {
    imageKey: data.imageKey,
    manifestDigest: `sha256:${'a'.repeat(64)}`,
    mediaType: OCI_IMAGE_MANIFEST,
    timings: Object.fromEntries(BUILD_PHASES.map((phase) => [phase, 1])) as BuildResult['timings'],
  };
}

function isRefusal(code: string, pattern: RegExp) {
  return (err: unknown) => {
    assert.ok(err instanceof RegistryError, String(err));
    assert.equal(err.code, code);
    assert.match(err.message, pattern);
    assert.ok(err.retryAfterSeconds !== undefined && err.retryAfterSeconds > 0, 'Retry-After');
    return true;
  };
}

describe('cold builds on a real Redis', () => {
  let redis: TestRedis;
  let builds: BuildQueue;
  const refusals: RefusalReason[] = [];
  /** Image names the in-test worker answers as unknown packages; others build. */
  const unknown = new Set<string>();
  /** Image keys whose first build the in-test worker holds until `releases` lets it go. */
  const holdFirst = new Set<string>();
  const releases = new Map<string, () => void>();
  let processed: string[] = [];
  let worker: Worker | undefined;

  function coldBuilds(limits: { maxQueuedBuilds: number; maxBuildsPerClient: number; queueFullMemoryMs?: number }): ColdBuilds {
    const client = redis.client();
    const admission = new Admission(client, builds, { ...limits, waitTimeoutMs: 60_000 }, (reason) => refusals.push(reason));
    return new ColdBuilds(builds, admission, new UnknownPackages(client, TTL_SECONDS));
  }

  function startWorker(): void {
    worker = new Worker(
      buildQueueName(SYSTEM),
      async (bullJob: Job<BuildJobData>) => {
        processed.push(bullJob.data.imageKey);
        if (unknown.has(bullJob.data.packages.join('/'))) {
          throw new UnrecoverableError(encodeBuildFailure({ code: 'UNKNOWN_PACKAGES', message: 'unknown packages', packages: bullJob.data.packages }));
        }
        if (holdFirst.delete(bullJob.data.imageKey)) await new Promise<void>((release) => releases.set(bullJob.data.imageKey, release));
        return resultFor(bullJob.data);
      },
      { connection: redisConnectionOptions(redis.url), concurrency: 10 },
    );
    worker.on('error', () => {});
  }

  before(async () => {
    redis = await startTestRedis();
  });
  beforeEach(async () => {
    await worker?.close();
    worker = undefined;
    await builds?.close();
    await redis.client().flushall();
    builds = new BuildQueue({ client: redis.client(), connection: redisConnectionOptions(redis.url), systems: [SYSTEM], waitTimeoutMs: 60_000, jobCheckMs: 200 });
    await builds.ready();
    refusals.length = 0;
    unknown.clear();
    holdFirst.clear();
    releases.clear();
    processed = [];
  });
  after(async () => {
    await worker?.close();
    await builds?.close();
    await redis?.stop();
  });

  test('beyond NIXYARD_MAX_QUEUED_BUILDS a new build gets 429, but a pull joining a queued one does not', async () => {
    const cold = coldBuilds({ maxQueuedBuilds: 2, maxBuildsPerClient: 0 });
    // No worker yet: builds stay waiting.
    const first = cold.build(job('hello'), { client: '192.0.2.1' });
    const second = cold.build(job('jq'), { client: '192.0.2.2' });
    await waitFor(async () => (await builds.queue(SYSTEM)!.getWaitingCount()) === 2);
    await assert.rejects(cold.build(job('git'), { client: '192.0.2.3' }), isRefusal('TOOMANYREQUESTS', /too many builds are waiting for x86_64-linux workers \(2\)/));
    assert.deepEqual(refusals, ['queue_full']);
    const joined = cold.build(job('hello'), { client: '192.0.2.4' });
    startWorker();
    await Promise.all([first, second, joined]);
    assert.deepEqual(processed.sort(), [job('hello').imageKey, job('jq').imageKey].sort(), 'the joining pull added no build');
  });

  test('a burst of distinct cold pulls at once: exactly NIXYARD_MAX_QUEUED_BUILDS are queued, the rest get 429', async () => {
    const cold = coldBuilds({ maxQueuedBuilds: 3, maxBuildsPerClient: 0 });
    const names = ['hello', 'jq', 'git', 'curl', 'htop', 'tree', 'file', 'less', 'gnused', 'gawk'];
    const outcomes = names.map((name, i) => cold.build(job(name), { client: `192.0.2.${i + 1}` }).then(
      () => 'built',
      (err: unknown) => (err instanceof RegistryError ? err.code : String(err)),
    ));
    await waitFor(async () => refusals.length === 7);
    assert.equal(await builds.queue(SYSTEM)!.getWaitingCount(), 3);
    startWorker();
    const settled = await Promise.all(outcomes);
    assert.deepEqual(settled.filter((o) => o === 'built').length, 3);
    assert.deepEqual(settled.filter((o) => o === 'TOOMANYREQUESTS').length, 7);
  });

  test('a queue found full is remembered for a moment: new builds are refused without asking, then admitted again', async () => {
    const cold = coldBuilds({ maxQueuedBuilds: 1, maxBuildsPerClient: 0, queueFullMemoryMs: 300 });
    await builds.enqueue(job('hello')); // waiting: no worker yet
    const refused = isRefusal('TOOMANYREQUESTS', /too many builds are waiting for x86_64-linux workers \(1\)/);
    await assert.rejects(cold.build(job('jq'), { client: '192.0.2.1' }), refused);
    // The queue empties, but this replica still refuses, with the count it saw.
    assert.equal(await builds.queue(SYSTEM)!.remove(jobIdFor(job('hello').imageKey)), 1);
    assert.equal(await builds.queue(SYSTEM)!.getWaitingCount(), 0);
    await assert.rejects(cold.build(job('git'), { client: '192.0.2.2' }), refused);
    assert.deepEqual(refusals, ['queue_full', 'queue_full']);
    await new Promise((r) => setTimeout(r, 350));
    const admitted = cold.build(job('git'), { client: '192.0.2.2' });
    await waitFor(async () => (await builds.queue(SYSTEM)!.getWaitingCount()) === 1);
    startWorker();
    await admitted;
    assert.deepEqual(processed, [job('git').imageKey]);
    assert.equal(refusals.length, 2);
  });

  test('a burst of distinct cold pulls from one client: exactly NIXYARD_MAX_BUILDS_PER_CLIENT go ahead', async () => {
    const cold = coldBuilds({ maxQueuedBuilds: 100, maxBuildsPerClient: 2 });
    const outcomes = ['hello', 'jq', 'git', 'curl', 'htop', 'tree'].map((name) => cold.build(job(name), { client: '198.51.100.9' }).then(
      () => 'built',
      (err: unknown) => (err instanceof RegistryError ? err.code : String(err)),
    ));
    await waitFor(async () => refusals.length === 4);
    assert.deepEqual(refusals, Array(4).fill('client_limit'));
    startWorker();
    const settled = await Promise.all(outcomes);
    assert.equal(settled.filter((o) => o === 'built').length, 2);
  });

  test('beyond NIXYARD_MAX_BUILDS_PER_CLIENT a client gets 429 until one of its builds is done; other clients do not', async () => {
    const cold = coldBuilds({ maxQueuedBuilds: 100, maxBuildsPerClient: 1 });
    holdFirst.add(job('hello').imageKey);
    startWorker();
    const first = cold.build(job('hello'), { client: '198.51.100.7' });
    await waitFor(async () => processed.length === 1);
    await assert.rejects(cold.build(job('jq'), { client: '198.51.100.7' }), isRefusal('TOOMANYREQUESTS', /this client already has 1 images building/));
    assert.deepEqual(refusals, ['client_limit']);
    // Another client, and the same client joining its own build in flight, go ahead.
    await cold.build(job('git'), { client: '198.51.100.8' });
    const events = new QueueEvents(buildQueueName(SYSTEM), { connection: redisConnectionOptions(redis.url) });
    await events.waitUntilReady();
    const joining = once(events, 'duplicated');
    const again = cold.build(job('hello'), { client: '198.51.100.7' });
    await joining; // BullMQ saw the same job id added again: `again` has joined the held build
    await events.close();
    releases.get(job('hello').imageKey)!();
    await Promise.all([first, again]);
    assert.equal(processed.filter((key) => key === job('hello').imageKey).length, 1, 'one build of hello');
    await cold.build(job('jq'), { client: '198.51.100.7' });
    assert.equal(await redis.client().exists('nixyard:client:198.51.100.7'), 0, 'no slot is left taken');
  });

  test('unknown packages are remembered: the next pull is answered without a job, for the TTL of its kind', async () => {
    const cold = coldBuilds({ maxQueuedBuilds: 100, maxBuildsPerClient: 4 });
    unknown.add('hello.q17');
    startWorker();
    const isUnknown = (err: unknown) => err instanceof RegistryError && err.code === 'MANIFEST_UNKNOWN' && /unknown packages: hello\.q17/.test(err.message);
    await assert.rejects(cold.build(job('hello.q17'), { client: '192.0.2.1' }), isUnknown);
    await assert.rejects(cold.build(job('hello.q17'), { client: '192.0.2.1' }), isUnknown);
    assert.equal(processed.length, 1, 'the second pull made no job');
    const pinnedTtl = await redis.client().ttl(unknownPackagesKey(job('hello.q17').imageKey));
    assert.ok(pinnedTtl > PINNED_TTL_SECONDS - 10 && pinnedTtl <= PINNED_TTL_SECONDS, `pinned TTL ${pinnedTtl}`);

    unknown.add('hello.drvPath');
    await assert.rejects(cold.build(job('hello.drvPath', true), { client: '192.0.2.1' }), (err) => err instanceof RegistryError && err.code === 'MANIFEST_UNKNOWN');
    const movingTtl = await redis.client().ttl(unknownPackagesKey(job('hello.drvPath', true).imageKey));
    assert.ok(movingTtl > TTL_SECONDS - 10 && movingTtl <= TTL_SECONDS, `moving TTL ${movingTtl}`);
  });

  test('a job that Redis loses while a pull waits for it (restarted empty) is asked for again, and the pull gets its build', async () => {
    const cold = coldBuilds({ maxQueuedBuilds: 100, maxBuildsPerClient: 4 });
    const pull = cold.build(job('hello'), { client: '192.0.2.1' });
    await waitFor(async () => (await builds.queue(SYSTEM)!.getWaitingCount()) === 1);
    await redis.client().flushall(); // what an empty restart leaves, without closing the connections
    startWorker();
    await pull;
    assert.deepEqual(processed, [job('hello').imageKey]);
  });

  test('live workers: a zero is looked at again for a moment, so a worker re-announcing after a Redis restart counts', async () => {
    const live = new LiveWorkers(redis.client());
    assert.equal(await live.countSettled(SYSTEM, 0), 0, 'no worker, nothing to wait for');
    const counting = live.countSettled(SYSTEM, 5000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await redis.client().zadd(workersKey(SYSTEM), Date.now(), 'worker-back');
    assert.equal(await counting, 1);
  });

  test('a frozen Redis: the pull gets 503 UNAVAILABLE with Retry-After instead of waiting for it', async () => {
    const cold = coldBuilds({ maxQueuedBuilds: 100, maxBuildsPerClient: 4 });
    await cold.build(job('hello'), { client: '192.0.2.1' }).catch(() => {}); // connections open
    redis.child.kill('SIGSTOP');
    try {
      await assert.rejects(cold.build(job('jq'), { client: '192.0.2.1' }), isRefusal('UNAVAILABLE', /Redis did not answer in time/));
    } finally {
      redis.child.kill('SIGCONT');
    }
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
