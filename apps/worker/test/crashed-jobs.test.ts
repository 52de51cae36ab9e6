// Crashes seen by the worker that notices them: a job BullMQ failed for stalling is counted as
// WORKER_CRASHED and logged; failures the job runner already counted are not counted twice.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { STALLED_JOB_REASON, encodeBuildFailure } from '@nixyard/core';
import { watchCrashedJobs, type QueueWorkerEvents } from '../src/crashed-jobs.js';
import { WorkerMetrics } from '../src/metrics.js';
import { capturedLog } from './captured-log.js';

function setUp() {
  const { logger, lines } = capturedLog();
  const metrics = new WorkerMetrics();
  const worker = new EventEmitter();
  watchCrashedJobs(worker as unknown as QueueWorkerEvents, metrics, logger);
  const count = async (code: string) => (await metrics.buildFailures.get()).values.find((v) => v.labels.code === code)?.value;
  return { worker, lines, count };
}

const job = { id: 'job-1', data: { imageKey: 'a'.repeat(64), requestId: 'req-1', packages: ['hello'], system: 'x86_64-linux' } };

test("a job BullMQ failed for stalling counts as WORKER_CRASHED and is logged with the job's fields", async () => {
  const { worker, lines, count } = setUp();
  worker.emit('failed', job, new Error(STALLED_JOB_REASON), 'active');
  assert.equal(await count('WORKER_CRASHED'), 1);
  const line = lines.find((l) => l.msg === 'build failed');
  assert.equal(line?.jobId, 'job-1');
  assert.equal(line?.requestId, 'req-1');
  assert.equal((line?.failure as { code: string }).code, 'WORKER_CRASHED');
});

test('failures the job runner reported are not counted again', async () => {
  const { worker, lines, count } = setUp();
  worker.emit('failed', job, new Error(encodeBuildFailure({ code: 'STORAGE', message: 'disk full' })), 'active');
  worker.emit('failed', undefined, new Error('something else'), 'active');
  assert.equal(await count('WORKER_CRASHED'), 0);
  assert.equal(await count('STORAGE'), 0);
  assert.deepEqual(lines, []);
});

test('a takeover is logged', () => {
  const { worker, lines } = setUp();
  worker.emit('stalled', 'job-2', 'active');
  assert.deepEqual(lines.map((l) => [l.level, l.jobId]), [[40, 'job-2']]);
});
