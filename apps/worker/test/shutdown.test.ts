// The worker's stop sequence with a clock under the test's control: a drain that finishes exits 0,
// one that cannot finish is abandoned just inside the grace period, and a second signal ends it.
import assert from 'node:assert/strict';
import { afterEach, beforeEach, mock, test } from 'node:test';
import { abandonAfterMs, createShutdown, type ShutdownSteps } from '../src/shutdown.js';

beforeEach(() => mock.timers.enable({ apis: ['setTimeout'] }));
afterEach(() => mock.timers.reset());

function steps(drain: () => Promise<void>, graceMs = 30_000) {
  const events: string[] = [];
  const plan: ShutdownSteps = {
    graceMs,
    drain: () => {
      events.push('drain');
      return drain();
    },
    abandon: () => events.push('abandon'),
    exit: (code) => events.push(`exit ${code}`),
    log: (level, _fields, message) => events.push(`${level}: ${message}`),
  };
  return { events, stop: createShutdown(plan) };
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

test('a drain that finishes exits 0 without abandoning anything', async () => {
  const { events, stop } = steps(async () => {});
  stop('SIGTERM');
  await settle();
  assert.deepEqual(events, ['info: stopping: finishing the current jobs', 'drain', 'exit 0']);
  mock.timers.tick(60_000);
  assert.equal(events.length, 3, 'the grace timer was cleared');
});

test('a drain that never settles is abandoned just inside the grace period, then the process exits 1', async () => {
  const { events, stop } = steps(() => new Promise(() => {}), 3_000);
  stop('SIGTERM');
  await settle();
  mock.timers.tick(abandonAfterMs(3_000) - 1);
  assert.ok(!events.includes('abandon'), 'not before its time');
  mock.timers.tick(1);
  assert.deepEqual(events.slice(-3), ['warn: grace period over: the jobs in hand are left to other workers', 'abandon', 'exit 1']);
});

test('a second signal abandons at once', async () => {
  const { events, stop } = steps(() => new Promise(() => {}));
  stop('SIGTERM');
  stop('SIGINT');
  assert.deepEqual(events.slice(-2), ['abandon', 'exit 1']);
  mock.timers.tick(60_000);
  assert.equal(events.filter((e) => e.startsWith('exit')).length, 1, 'exits once');
});

test('a drain that fails is abandoned', async () => {
  const { events, stop } = steps(() => Promise.reject(new Error('redis gone')));
  stop('SIGTERM');
  await settle();
  assert.deepEqual(events.slice(-3), ['warn: could not stop cleanly', 'abandon', 'exit 1']);
});

test('the abandon point leaves a tenth of the grace period, at most a second, to exit', () => {
  assert.equal(abandonAfterMs(30_000), 29_000);
  assert.equal(abandonAfterMs(3_000), 2_700);
  assert.equal(abandonAfterMs(1_000), 900);
});
