// Loading on first use (on-first-use.ts): one load for concurrent callers, a failed load retried,
// and a request listener answering in the registry's error form when its load fails.

import assert from 'node:assert/strict';
import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { listenerOnFirstUse, onFirstUse } from '../src/on-first-use.js';
import { failRequest } from '../src/http-errors.js';
import { pino } from 'pino';

test('nothing is loaded until first use, and concurrent first callers share one load', async () => {
  let loads = 0;
  const get = onFirstUse(async () => ({ n: ++loads }));
  assert.equal(loads, 0);
  const [a, b] = await Promise.all([get(), get()]);
  assert.equal(loads, 1);
  assert.equal(a, b);
  assert.equal(await get(), a);
  assert.equal(loads, 1);
});

test('a failed load is not remembered: the next call loads again', async () => {
  let attempts = 0;
  const get = onFirstUse(async () => {
    attempts++;
    if (attempts === 1) throw new Error('redis module missing');
    return 'loaded';
  });
  await assert.rejects(get(), /redis module missing/);
  assert.equal(await get(), 'loaded');
  assert.equal(attempts, 2);
});

async function serve(listener: RequestListener): Promise<{ url: string; close(): void }> {
  const server = createServer(listener).listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => server.close() };
}

test('a listener loaded on first use serves every request, the first one included, and reads its body', async () => {
  let loads = 0;
  const listener = listenerOnFirstUse(
    async () => {
      loads++;
      await new Promise((resolve) => setTimeout(resolve, 20)); // the body arrives while this loads
      return (req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => res.end(`${req.method} ${req.url} ${Buffer.concat(chunks).toString()}`));
      };
    },
    () => assert.fail('the load does not fail'),
  );
  const server = await serve(listener);
  try {
    const answers = await Promise.all([1, 2].map((i) => fetch(`${server.url}/x${i}`, { method: 'POST', body: `body ${i}` }).then((r) => r.text())));
    assert.deepEqual(answers, ['POST /x1 body 1', 'POST /x2 body 2']);
    assert.equal(loads, 1);
  } finally {
    server.close();
  }
});

test('when the load fails, the request gets 500 in the registry error form, and a later one loads again', async () => {
  let attempts = 0;
  const logger = pino({ level: 'silent' });
  const listener = listenerOnFirstUse(
    async () => {
      if (++attempts === 1) throw new Error('cannot load express');
      return (_req, res) => res.end('ok');
    },
    (req, res, err) => failRequest(logger, req, res, err),
  );
  const server = await serve(listener);
  try {
    const failed = await fetch(`${server.url}/metrics`);
    assert.equal(failed.status, 500);
    assert.deepEqual(await failed.json(), { errors: [{ code: 'UNKNOWN', message: 'internal error; the registry logged the details', detail: null }] });
    const later = await fetch(`${server.url}/metrics`);
    assert.equal(await later.text(), 'ok');
  } finally {
    server.close();
  }
});
