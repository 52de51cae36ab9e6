// The admin API's error contract in-process: what a client sees when a prebuild call fails, above
// all when the farm's Redis does not answer in time (503 UNAVAILABLE with Retry-After, in the
// admin API's error shape), so a CLI or CI job knows to try again rather than give up.

import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import express from 'express';
import { pino } from 'pino';
import { AdminError } from '@nixyard/core';
import { adminRouter, type AdminDeps } from '../src/admin/routes.js';
import { DeadlineError, REDIS_RETRY_AFTER_SECONDS } from '../src/deadline.js';

const TOKEN = 'admin-token-for-tests';
let failWith: Error = new Error('unset');
const prebuilds: AdminDeps['prebuilds'] = {
  submit: async () => {
    throw failWith;
  },
  list: async () => {
    throw failWith;
  },
  get: async () => {
    throw failWith;
  },
  cancel: async () => {
    throw failWith;
  },
};

let base = '';
let close: () => void = () => {};
before(async () => {
  const app = express();
  app.use('/api/v1', adminRouter({ token: TOKEN, prebuilds, logger: pino({ level: 'silent' }) }));
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`;
  close = () => server.close();
});
after(() => close());

const submit = () =>
  fetch(`${base}/prebuilds`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ images: ['shell/jq'] }),
  });

test('Redis not answering in time is 503 UNAVAILABLE with Retry-After, in the admin error shape', async () => {
  failWith = new DeadlineError('taking the submit lock', 1500);
  const res = await submit();
  assert.equal(res.status, 503);
  assert.equal(res.headers.get('retry-after'), String(REDIS_RETRY_AFTER_SECONDS));
  const body = (await res.json()) as { errors: Array<{ code: string; message: string }> };
  assert.equal(body.errors[0]?.code, 'UNAVAILABLE');
  assert.match(body.errors[0]?.message ?? '', /did not answer in time \(taking the submit lock/);

  const listed = await fetch(`${base}/prebuilds`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal(listed.status, 503);
  assert.equal(listed.headers.get('retry-after'), String(REDIS_RETRY_AFTER_SECONDS));
});

test('an AdminError keeps its own status, and Retry-After only when it has one', async () => {
  failWith = new AdminError('UNAVAILABLE', 'another prebuild submission is still being enqueued; try again', null, { retryAfterSeconds: 2.2 });
  const busy = await submit();
  assert.equal(busy.status, 503);
  assert.equal(busy.headers.get('retry-after'), '3', 'whole seconds, rounded up');

  failWith = new AdminError('BATCH_UNKNOWN', 'no prebuild batch x');
  const unknown = await fetch(`${base}/prebuilds/00000000-0000-0000-0000-000000000000`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  assert.equal(unknown.status, 404);
  assert.equal(unknown.headers.get('retry-after'), null);
  assert.equal(((await unknown.json()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'BATCH_UNKNOWN');
});

test('any other failure is 500 UNKNOWN without its details', async () => {
  failWith = new Error('connection to 10.0.0.1:6379 refused, password hunter2');
  const res = await submit();
  assert.equal(res.status, 500);
  const text = await res.text();
  assert.match(text, /"code":"UNKNOWN"/);
  assert.doesNotMatch(text, /hunter2|10\.0\.0\.1/);
});
