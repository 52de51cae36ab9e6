// The job runner in-process: a stand-in processor, real metrics and a captured log, no Redis.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UnrecoverableError } from 'bullmq';
import { BuildFailureError, decodeBuildFailure, type BuildJobData, type BuildResult } from '@nixyard/core';
import { createJobRunner } from '../src/job-runner.js';
import type { BuildImageDeps } from '../src/build-image.js';
import { WorkerMetrics } from '../src/metrics.js';
import { capturedLog } from './captured-log.js';

const job: BuildJobData = {
  imageKey: 'a'.repeat(64),
  packages: ['hello'],
  system: 'x86_64-linux',
  source: { kind: 'path', path: '/srv/pkgs' },
  revision: 'unversioned',
  requestId: 'req-1',
};
const result: BuildResult = {
  imageKey: job.imageKey,
  manifestDigest: `sha256:${'b'.repeat(64)}`,
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  timings: { resolve: 100, build: 2000, graph: 50, layer: 5, pack: 300, publish: 20 },
};

function setUp(processor: (deps: BuildImageDeps, data: BuildJobData) => Promise<BuildResult>) {
  const { logger, lines } = capturedLog();
  const metrics = new WorkerMetrics();
  const run = createJobRunner({ build: {} as BuildImageDeps, metrics, logger, buildImage: processor });
  const sample = async (name: string, labels: Record<string, string>) =>
    (await metrics.registry.getSingleMetric(name)!.get()).values.find((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value))?.value;
  return { run, lines, metrics, sample };
}

test('a built image: its result, one histogram sample per phase, and log lines that carry the request id', async () => {
  const { run, lines, metrics } = setUp(async (deps, data) => {
    deps.onNixBuild?.('started');
    deps.onNixBuild?.('succeeded');
    deps.onAssembled?.({ layers: [{ packed: true, size: 1000 }, { packed: false, size: 5 }] } as never);
    assert.deepEqual(data, job);
    return result;
  });
  assert.deepEqual(await run(job, 'job-1'), result);
  const phases = (await metrics.phaseDuration.get()).values.filter((v) => v.metricName?.endsWith('_count'));
  assert.deepEqual(phases.map((v) => [v.labels.phase, v.value]).sort(), [['build', 1], ['graph', 1], ['layer', 1], ['pack', 1], ['publish', 1], ['resolve', 1]]);
  const sum = (await metrics.phaseDuration.get()).values.find((v) => v.metricName?.endsWith('_sum') && v.labels.phase === 'build');
  assert.equal(sum?.value, 2);
  assert.equal((await metrics.registry.getSingleMetric('nixyard_packed_bytes_total')!.get()).values[0]?.value, 1000);
  const cache = (await metrics.registry.getSingleMetric('nixyard_layer_cache_requests_total')!.get()).values.map((v) => [v.labels.result, v.value]).sort();
  assert.deepEqual(cache, [['hit', 1], ['miss', 1]]);
  assert.deepEqual(lines.map((l) => [l.msg, l.requestId, l.jobId]), [['build started', 'req-1', 'job-1'], ['build finished', 'req-1', 'job-1']]);
});

test('a job answered from an existing record (all timings zero) adds no histogram samples', async () => {
  const { run, metrics } = setUp(async () => ({ ...result, timings: { resolve: 0, build: 0, graph: 0, layer: 0, pack: 0, publish: 0 } }));
  await run(job, 'job-2');
  const counts = (await metrics.phaseDuration.get()).values.filter((v) => v.metricName?.endsWith('_count'));
  assert.deepEqual(counts, []);
});

test('a typed failure becomes an UnrecoverableError carrying the encoded failure, counted by its code', async () => {
  const failure = { code: 'BUILD_FAILED' as const, message: 'nix-build failed', logTail: 'error: builder failed\n' };
  const { run, sample, lines } = setUp(async () => {
    throw new BuildFailureError(failure);
  });
  const error = await run(job, 'job-3').then(
    () => assert.fail('expected a rejection'),
    (err: unknown) => err,
  );
  assert.ok(error instanceof UnrecoverableError);
  assert.deepEqual(decodeBuildFailure(error.message), failure);
  assert.equal(await sample('nixyard_build_failures_total', { code: 'BUILD_FAILED' }), 1);
  const failed = lines.find((l) => l.msg === 'build failed');
  assert.ok(failed, 'a "build failed" line');
  assert.deepEqual(failed.failure, { code: 'BUILD_FAILED', message: 'nix-build failed' }, 'the log tail stays in the job, not in the log line');
});

test('anything else is a crash: rethrown as it is (BullMQ may retry it) and counted as CRASH', async () => {
  const boom = new Error('disk on fire');
  const { run, sample, lines } = setUp(async () => {
    throw boom;
  });
  await assert.rejects(run(job, 'job-4'), (err) => err === boom);
  assert.equal(await sample('nixyard_build_failures_total', { code: 'CRASH' }), 1);
  assert.equal(lines.at(-1)?.msg, 'build crashed');
});

test('job data that breaks the queue contract is refused before any work', async () => {
  let called = false;
  const { run } = setUp(async () => {
    called = true;
    return result;
  });
  await assert.rejects(run({ ...job, packages: ['${abort}'] }, 'job-5'), { name: 'ZodError' });
  assert.equal(called, false);
});
