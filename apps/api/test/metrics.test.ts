// The API's metrics (metrics.ts): farm gauges sampled at scrape time within a deadline, so a Redis
// that does not answer leaves them out (and says so) instead of holding the scrape; refusal
// counters exist at 0 before the first refusal.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ApiMetrics, FARM_SAMPLE_DEADLINE_MS, type FarmSamplers } from '../src/metrics.js';

const answering: FarmSamplers = {
  queueDepth: async () => [{ system: 'x86_64-linux', state: 'waiting', count: 3 }],
  liveWorkers: async () => [{ system: 'x86_64-linux', count: 2 }],
  prebuildBatches: async () => [{ state: 'running', count: 1 }],
};

test('farm gauges are read at scrape time, and say they were', async () => {
  const text = await new ApiMetrics(answering).registry.metrics();
  assert.match(text, /^nixyard_queue_jobs\{system="x86_64-linux",state="waiting"\} 3$/m);
  assert.match(text, /^nixyard_workers\{system="x86_64-linux"\} 2$/m);
  assert.match(text, /^nixyard_farm_sampled\{gauge="nixyard_workers"\} 1$/m);
});

test('a sampler that does not answer is left out after the deadline; the others still answer', async () => {
  const frozen: FarmSamplers = { ...answering, liveWorkers: () => new Promise(() => {}) };
  const metrics = new ApiMetrics(frozen);
  const started = performance.now();
  const text = await metrics.registry.metrics();
  const took = performance.now() - started;
  assert.ok(took >= FARM_SAMPLE_DEADLINE_MS - 50, `waited for the deadline (${Math.round(took)} ms)`);
  assert.doesNotMatch(text, /^nixyard_workers\{/m);
  assert.match(text, /^nixyard_farm_sampled\{gauge="nixyard_workers"\} 0$/m);
  assert.match(text, /^nixyard_queue_jobs\{system="x86_64-linux",state="waiting"\} 3$/m);
  assert.match(text, /^nixyard_farm_sampled\{gauge="nixyard_queue_jobs"\} 1$/m);
});

test('a sampler that fails is left out at once', async () => {
  const failing: FarmSamplers = { ...answering, queueDepth: async () => Promise.reject(new Error('Connection is closed.')) };
  const text = await new ApiMetrics(failing).registry.metrics();
  assert.match(text, /^nixyard_farm_sampled\{gauge="nixyard_queue_jobs"\} 0$/m);
  assert.doesNotMatch(text, /^nixyard_queue_jobs\{/m);
});

test('admission refusals and failed logins are exported at 0 for each reason before the first', async () => {
  const metrics = new ApiMetrics();
  let text = await metrics.registry.metrics();
  assert.match(text, /^nixyard_admission_refusals_total\{reason="queue_full"\} 0$/m);
  assert.match(text, /^nixyard_admission_refusals_total\{reason="client_limit"\} 0$/m);
  for (const reason of ['malformed', 'unsupported_scheme', 'unknown_user', 'wrong_password', 'invalid_token', 'expired_token']) {
    assert.match(text, new RegExp(`^nixyard_auth_failures_total\\{reason="${reason}"\\} 0$`, 'm'));
  }
  metrics.admissionRefusals.inc({ reason: 'client_limit' });
  text = await metrics.registry.metrics();
  assert.match(text, /^nixyard_admission_refusals_total\{reason="client_limit"\} 1$/m);
});
