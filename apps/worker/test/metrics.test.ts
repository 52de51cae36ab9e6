// The worker's metrics endpoint in-process: every failure code is exported at 0 from the start,
// and the server listens on the address it is given.
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { FAILURE_COUNTER_CODES } from '@nixyard/core';
import { WorkerMetrics } from '../src/metrics.js';

test('the failure counter has a series at 0 for every code before any failure', async () => {
  const text = await new WorkerMetrics().registry.metrics();
  for (const code of FAILURE_COUNTER_CODES) assert.match(text, new RegExp(`^nixyard_build_failures_total\\{code="${code}"\\} 0$`, 'm'), code);
});

test('serves on the given host, and on every interface without one', async () => {
  const metrics = new WorkerMetrics();
  const ready = async () => ({ ready: true, checks: {} }) as never;
  const loopback = await metrics.serve(0, '127.0.0.1', ready);
  const any = await metrics.serve(0, undefined, ready);
  try {
    assert.equal((loopback.address() as AddressInfo).address, '127.0.0.1');
    assert.match((any.address() as AddressInfo).address, /^(::|0\.0\.0\.0)$/);
    const res = await fetch(`http://127.0.0.1:${(loopback.address() as AddressInfo).port}/metrics`);
    assert.equal(res.status, 200);
    assert.match(await res.text(), /nixyard_build_failures_total\{code="WORKER_CRASHED"\} 0/);
  } finally {
    loopback.close();
    any.close();
  }
});
