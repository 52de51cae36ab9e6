// Operating Nixyard: readiness follows Redis without any process exiting, and a worker told to
// stop in the middle of a build finishes it, so the pull waiting for it gets its manifest.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BUNDLED_SET } from '../helpers/bundled-set.js';
import { startTestRedis, type TestRedis } from '../helpers/redis.js';
import { tempDir } from '../helpers/temp-dir.js';
import { metricValue, startStack, type TestStack } from '../helpers/stack.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function status(url: string): Promise<number> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(3000) })).status;
  } catch {
    return 0;
  }
}

/** Polls until `url` answers `expected`; returns the milliseconds it took. */
async function waitForStatus(url: string, expected: number, withinMs: number): Promise<number> {
  const started = performance.now();
  while (performance.now() - started < withinMs) {
    if ((await status(url)) === expected) return performance.now() - started;
    await sleep(100);
  }
  throw new Error(`${url} did not answer ${expected} within ${withinMs} ms (last: ${await status(url)})`);
}

describe('readiness follows Redis', () => {
  let stack: TestStack;
  let restarted: TestRedis | undefined;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await restarted?.stop();
    await stack?.stop();
  });

  test('/readyz turns 503 within 5 s when Redis stops, and 200 after it returns; nothing exits', async () => {
    const api = `http://${stack.registry}`;
    const worker = stack.workerMetricsUrl.replace(/\/metrics$/, '');
    for (const base of [api, worker]) {
      assert.equal(await status(`${base}/readyz`), 200, `${base}/readyz: ${await (await fetch(`${base}/readyz`)).text()}`);
      assert.equal(await status(`${base}/healthz`), 200, `${base}/healthz`);
    }

    const port = Number(new URL(stack.redis.url).port);
    await stack.redis.stop();
    for (const base of [api, worker]) {
      const ms = await waitForStatus(`${base}/readyz`, 503, 5000);
      assert.ok(ms < 5000, `${base}/readyz was 503 after ${ms.toFixed(0)} ms`);
      assert.equal(await status(`${base}/healthz`), 200, 'alive while Redis is away');
    }

    restarted = await startTestRedis(port);
    for (const base of [api, worker]) await waitForStatus(`${base}/readyz`, 200, 30_000);
    for (const w of stack.workers) assert.equal(w.child.exitCode, null, 'the worker never exited');

    // The farm works again: the restarted Redis is empty, so once the workers' next heartbeats
    // (every 5 s) have announced them, a new image builds through it. Polled for up to 30 s, not
    // just past one heartbeat: a busy machine delays heartbeats and answers alike.
    let res = await fetch(`${api}/v2/hello/manifests/latest`);
    for (let i = 0; i < 300 && res.status === 503; i++) {
      await sleep(100);
      res = await fetch(`${api}/v2/hello/manifests/latest`);
    }
    assert.equal(res.status, 200, await res.clone().text());
  });
});

describe('a worker stopped during a build', () => {
  let stack: TestStack;
  const dir = tempDir('slow-set');
  before(async () => {
    // A package whose build takes a few seconds, so SIGTERM lands in the middle of it.
    writeFileSync(
      join(dir.path, 'default.nix'),
      `{ system ? builtins.currentSystem, ... }@args: (import ${JSON.stringify(BUNDLED_SET)} args) // {
  slow = derivation {
    name = "slow-${process.pid}-${Date.now()}";
    inherit system;
    builder = "/bin/sh";
    args = [ "-c" "/bin/sleep 4; /bin/mkdir -p $out/bin; exit 0" ];
  };
}
`,
    );
    stack = await startStack({ env: { NIXERY_PKGS_PATH: dir.path }, workers: 2 });
  });
  after(async () => {
    await stack?.stop();
    dir.cleanup();
  });

  test('SIGTERM: the build completes and the waiting pull gets its manifest', async () => {
    const pull = fetch(`http://${stack.registry}/v2/slow/manifests/latest`);
    // Find the worker that took the job.
    let busy: (typeof stack.workers)[number] | undefined;
    for (let i = 0; i < 100 && !busy; i++) {
      await sleep(100);
      for (const w of stack.workers) if ((await metricValue(w.metricsUrl, 'nixyard_builds_total{result="started"}')) > 0) busy = w;
    }
    assert.ok(busy, 'a worker started the build');
    const exited = new Promise<number | null>((resolve) => busy!.child.once('exit', (code) => resolve(code)));
    busy.child.kill('SIGTERM');

    const res = await pull;
    assert.equal(res.status, 200, await res.clone().text());
    assert.ok(res.headers.get('docker-content-digest')?.startsWith('sha256:'));
    assert.equal(await exited, 0, 'the stopped worker exited cleanly after its job');

    // The farm goes on with the other worker.
    const other = stack.workers.find((w) => w !== busy)!;
    assert.equal(other.child.exitCode, null);
    assert.equal((await fetch(`http://${stack.registry}/v2/jq/manifests/latest`)).status, 200);
  });
});
