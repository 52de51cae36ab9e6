// Batch prebuilds through the `nixyard` CLI against the real API and worker processes: a batch of
// twenty lines (duplicates, an arm64 image, an unknown package) built and then pulled without a
// build; validation that enqueues nothing; a second submission served from the cache; the
// progress bar under a pseudo-terminal; the bearer token; --no-wait, status and cancel.
//
// The CLI runs as a child process through node_modules/.bin/nixyard, as a user would run it. The
// API serves both systems; one worker builds x86_64-linux (four jobs at a time), and an aarch64
// worker (extra-platforms, as in systems.test.ts) joins after the cancel test, which needs arm64
// jobs that nothing takes.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { OCI_IMAGE_MANIFEST, PrebuildBatchSchema, parseImageReference, type PrebuildBatch, type System } from '@nixyard/core';
import { withOfflineNixConfig } from '../../scripts/offline-nix.js';
import { freePort } from '../../scripts/stack.js';
import { REPO_ROOT } from '../helpers/bundled-set.js';
import { tempDir } from '../helpers/temp-dir.js';
import { jobCounts, metricValue, startStack, type TestStack } from '../helpers/stack.js';

const TOKEN = 'e2e-admin-token-0123456789';
const SYSTEMS: System[] = ['x86_64-linux', 'aarch64-linux'];
const STARTED = 'nixyard_builds_total{result="started"}';
const HIT = 'nixyard_manifest_requests_total{cache="hit"}';
const NIXYARD = join(REPO_ROOT, 'node_modules/.bin/nixyard');

// Twenty lines: eighteen distinct good images, one of them twice (`jq/hello` and
// `hello/jq:latest` are one image key), and one unknown package.
const GOOD = [
  'hello',
  'jq',
  'shell/jq',
  'curl',
  'busybox',
  'nano',
  'xorg.xev',
  'iana-etc',
  'cacert',
  'moreutils',
  'coreutils',
  'bash',
  'jq/hello',
  'shell/curl',
  'arm64/hello',
  'cacert/curl',
  'bash/coreutils',
  'shell',
];
const DUPLICATE = 'hello/jq:latest';
const UNKNOWN = 'nosuchpkg';
const LINES = [...GOOD.slice(0, 13), DUPLICATE, ...GOOD.slice(13), UNKNOWN];

let stack: TestStack;
let url: string;
const dir = tempDir('prebuild');
let armWorkerMetrics: string | undefined;

before(async () => {
  stack = await startStack({
    env: { NIXYARD_ADMIN_TOKEN: TOKEN },
    apiEnv: { NIXYARD_SYSTEMS: SYSTEMS.join(',') },
    workers: [{ NIXYARD_SYSTEMS: 'x86_64-linux', NIXYARD_WORKER_CONCURRENCY: '4' }],
  });
  url = `http://${stack.registry}`;
});
after(async () => {
  await stack?.stop();
  dir.cleanup();
});

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `nixyard ARGS` with the stack's URL and token in the environment (overridable). */
function nixyard(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(NIXYARD, args, { env: { ...process.env, NIXYARD_URL: url, NIXYARD_ADMIN_TOKEN: TOKEN, ...env }, cwd: dir.path }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Like `nixyard`, under a pseudo-terminal (util-linux script), so stdout is a TTY. */
function nixyardInTerminal(args: string[]): Promise<CliResult> {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const command = [NIXYARD, ...args].map(quote).join(' ');
  return new Promise((resolve) => {
    execFile('script', ['-qefc', command, '/dev/null'], { env: { ...process.env, NIXYARD_URL: url, NIXYARD_ADMIN_TOKEN: TOKEN, COLUMNS: '160' } }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

function listFile(name: string, lines: readonly string[]): string {
  const path = join(dir.path, name);
  writeFileSync(path, lines.join('\n') + '\n');
  return path;
}

async function allJobCounts(): Promise<Record<string, Record<string, number>>> {
  return Object.fromEntries(await Promise.all(SYSTEMS.map(async (s) => [s, await jobCounts(stack.redis.url, s)] as const)));
}

async function startedBuilds(): Promise<number[]> {
  return Promise.all([...stack.workerMetricsUrls, ...(armWorkerMetrics ? [armWorkerMetrics] : [])].map((m) => metricValue(m, STARTED)));
}

async function status(id: string): Promise<PrebuildBatch> {
  const result = await nixyard(['status', id, '--json']);
  assert.equal(result.code, 0, result.stderr);
  return PrebuildBatchSchema.parse(JSON.parse(result.stdout));
}

test('the image list adds up: 20 lines, 18 distinct good images, 1 unknown', () => {
  assert.equal(LINES.length, 20);
  const keys = new Set(GOOD.map((line) => JSON.stringify(parseImageReference(line))));
  assert.equal(keys.size, 18);
  assert.ok(keys.has(JSON.stringify(parseImageReference(DUPLICATE))), 'the duplicate is one of the good images');
});

test('without a token the CLI reports 401, with a wrong one 403; nothing is enqueued', async () => {
  const file = listFile('auth.txt', ['hello']);
  const jobs = await allJobCounts();
  const missing = await nixyard(['prebuild', file], { NIXYARD_ADMIN_TOKEN: '' });
  assert.equal(missing.code, 3);
  assert.match(missing.stderr, /^nixyard: 401 UNAUTHORIZED: /);
  const wrong = await nixyard(['prebuild', file, '--token', 'not-the-admin-token-at-all']);
  assert.equal(wrong.code, 3);
  assert.equal(wrong.stderr, 'nixyard: 403 DENIED: the bearer token is not valid\n');
  assert.deepEqual(await allJobCounts(), jobs);

  const closed = await freePort();
  const unreachable = await nixyard(['status', '00000000-0000-4000-8000-000000000000', '--url', `http://127.0.0.1:${closed}`]);
  assert.equal(unreachable.code, 3);
  assert.equal(unreachable.stderr, `nixyard: cannot reach http://127.0.0.1:${closed}/api/v1/prebuilds/00000000-0000-4000-8000-000000000000: connect ECONNREFUSED 127.0.0.1:${closed}\n`);
});

test('a batch with one bad name is refused whole and enqueues nothing, on either system', async () => {
  const jobs = await allJobCounts();
  const images = ['hello', 'arm64/jq', 'Bad!name', 'curl'];
  const res = await fetch(`${url}/api/v1/prebuilds`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ images }),
  });
  assert.equal(res.status, 400);
  const body = (await res.json()) as { errors: Array<{ code: string; detail: { invalid: Array<{ index: number; image: string; reason: string }> } }> };
  assert.equal(body.errors[0]!.code, 'BATCH_INVALID');
  assert.deepEqual(body.errors[0]!.detail.invalid.map((i) => [i.index, i.image]), [[2, 'Bad!name']]);

  // The CLI finds it before submitting, by line number.
  const cli = await nixyard(['prebuild', listFile('bad.txt', ['# one bad line', ...images])]);
  assert.equal(cli.code, 2);
  assert.match(cli.stderr, /bad\.txt: 1 invalid image; nothing was submitted\n  .*bad\.txt:4: Bad!name: invalid image name component "Bad!name"/);
  assert.deepEqual(await allJobCounts(), jobs);
});

test('a batch over 10,000 images is refused whole with 413 naming the limit; nothing is enqueued', async () => {
  const jobs = await allJobCounts();
  const images = Array.from({ length: 10_001 }, (_, i) => `pkg${i}`);
  const res = await fetch(`${url}/api/v1/prebuilds`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ images }),
  });
  assert.equal(res.status, 413);
  const body = (await res.json()) as { errors: Array<{ code: string; message: string }> };
  assert.equal(body.errors[0]!.code, 'BATCH_TOO_LARGE');
  assert.match(body.errors[0]!.message, /at most 10000 images/);
  assert.deepEqual(await allJobCounts(), jobs);
});

test('--no-wait, status and cancel: arm64 jobs that no worker takes are cancelled', async () => {
  const before = await jobCounts(stack.redis.url, 'aarch64-linux');
  const submitted = await nixyard(['prebuild', listFile('arm.txt', ['arm64/jq', 'arm64/curl']), '--no-wait', '--label', 'arm']);
  assert.equal(submitted.code, 0, submitted.stderr);
  const id = submitted.stdout.trim();
  assert.match(id, /^[0-9a-f-]{36}$/);

  const waiting = await status(id);
  assert.deepEqual([waiting.state, waiting.label, waiting.counts.queued], ['running', 'arm', 2]);
  assert.equal((await jobCounts(stack.redis.url, 'aarch64-linux')).waiting, (before.waiting ?? 0) + 2);
  const human = await nixyard(['status', id]);
  assert.match(human.stdout, /\(arm\): running, created .*\n  0\/2 done: 0 built, 0 cached, 0 failed; 0 building, 2 queued\n/);

  const cancelled = await nixyard(['cancel', id]);
  assert.deepEqual([cancelled.code, cancelled.stdout], [0, `cancelled 2 queued images of batch ${id}\n`]);
  const after = await status(id);
  assert.equal(after.state, 'settled');
  assert.deepEqual(after.images.map((i) => [i.image, i.state]), [
    ['arm64/jq', 'cancelled'],
    ['arm64/curl', 'cancelled'],
  ]);
  assert.equal((await jobCounts(stack.redis.url, 'aarch64-linux')).waiting ?? 0, before.waiting ?? 0);
  assert.match((await nixyard(['list'])).stdout, new RegExp(`^${id} .* settled .*"arm"$`, 'm'));
});

let batchId: string;

test('20 lines through the CLI: exit 1 naming the unknown package, 18 images built, then pulled with no build', async () => {
  armWorkerMetrics = (
    await stack.addWorker({
      NIXYARD_SYSTEMS: 'aarch64-linux',
      NIX_CONFIG: withOfflineNixConfig({ NIX_CONFIG: 'extra-platforms = aarch64-linux' }).NIX_CONFIG!,
    })
  ).metricsUrl;

  const run = await nixyard(['prebuild', listFile('nightly.txt', ['# the nightly images', ...LINES]), '--label', 'nightly', '--poll-interval', '250']);
  assert.equal(run.code, 1, run.stderr);
  const id = /^batch ([0-9a-f-]{36}): 19 distinct images from 20 lines\n/.exec(run.stdout)?.[1];
  assert.ok(id, run.stdout);
  batchId = id;
  // Not a terminal: progress lines, no bar.
  assert.doesNotMatch(run.stdout, /\x1b/);
  assert.match(run.stdout, /^\[ *\d+s\] \d+\/19 done: /m);
  assert.match(run.stdout, /settled: 19\/19 done: \d+ built, \d+ cached, 1 failed; not every image is available\n/);
  assert.match(run.stdout, /failed images \(1\):\n  nosuchpkg \[x86_64-linux\]: UNKNOWN_PACKAGES: unknown packages: nosuchpkg\n/);

  const batch = await status(id);
  assert.equal(batch.state, 'settled');
  assert.equal(batch.total, 19);
  assert.equal(batch.counts.built + batch.counts.cached, 18);
  assert.deepEqual([batch.counts.failed, batch.counts.cancelled, batch.counts.queued, batch.counts.building], [1, 0, 0, 0]);
  const failed = batch.images.filter((i) => i.state === 'failed');
  assert.deepEqual(failed.map((i) => [i.image, i.failure?.code, i.failure?.code === 'UNKNOWN_PACKAGES' ? i.failure.packages : []]), [[UNKNOWN, 'UNKNOWN_PACKAGES', [UNKNOWN]]]);
  assert.ok(batch.images.filter((i) => i.state !== 'failed').every((i) => i.manifestDigest), 'every good image names its manifest');
  assert.deepEqual(batch.images.find((i) => i.image === 'arm64/hello')?.system, 'aarch64-linux');
  const human = await nixyard(['status', id]);
  assert.match(human.stdout, /nosuchpkg \[x86_64-linux\]: UNKNOWN_PACKAGES/);

  // Every good line pulls from storage: no build anywhere, one cache hit each.
  const started = await startedBuilds();
  const hits = await metricValue(stack.apiMetricsUrl, HIT);
  const good = LINES.filter((l) => l !== UNKNOWN);
  for (const line of good) {
    const [name, tag = 'latest'] = line.split(':');
    const res = await fetch(`${url}/v2/${name}/manifests/${tag}`, { headers: { Accept: OCI_IMAGE_MANIFEST } });
    assert.equal(res.status, 200, line);
    const digest = res.headers.get('docker-content-digest');
    const entry = batch.images.find((i) => JSON.stringify(parseImageReference(i.image)) === JSON.stringify(parseImageReference(line)));
    assert.equal(digest, entry?.manifestDigest, `${line} is the image the batch built`);
    await res.arrayBuffer();
  }
  assert.deepEqual(await startedBuilds(), started, 'no build started');
  assert.equal(await metricValue(stack.apiMetricsUrl, HIT), hits + good.length);
});

test('a second submission of the 18 good images is all cached and starts no build; the unknown one is queued again', async () => {
  assert.ok(batchId, 'the batch test ran');
  const started = await startedBuilds();
  const again = await nixyard(['prebuild', listFile('good.txt', LINES.filter((l) => l !== UNKNOWN)), '--json']);
  assert.equal(again.code, 0, again.stderr);
  const batch = PrebuildBatchSchema.parse(JSON.parse(again.stdout));
  assert.equal(batch.state, 'settled');
  assert.equal(batch.total, 18);
  assert.equal(batch.counts.cached, 18);
  assert.ok(batch.images.every((i) => i.state === 'cached' && i.manifestDigest));
  assert.deepEqual(await startedBuilds(), started, 'no build started');

  // The whole list again: a failure is not stored, so the unknown image is queued (and fails) anew.
  const whole = await nixyard(['prebuild', listFile('nightly-again.txt', LINES), '--no-wait', '--json']);
  assert.equal(whole.code, 0, whole.stderr);
  const accepted = PrebuildBatchSchema.parse(JSON.parse(whole.stdout));
  assert.equal(accepted.counts.cached, 18);
  const requeued = accepted.images.filter((i) => i.state !== 'cached');
  assert.deepEqual(requeued.map((i) => i.image), [UNKNOWN]);
  // A worker may have taken it between the enqueue and the answer.
  assert.ok(['queued', 'building'].includes(requeued[0]!.state), requeued[0]!.state);
  let settled = accepted;
  for (let i = 0; i < 120 && settled.state !== 'settled'; i++) {
    await new Promise((r) => setTimeout(r, 250));
    settled = await status(accepted.id);
  }
  assert.deepEqual([settled.state, settled.counts.cached, settled.counts.failed], ['settled', 18, 1]);
});

test('on a terminal the CLI draws a bar that moves to 100%', async () => {
  // Images no earlier test asked for, so there is something to build and the bar moves.
  const fresh = ['busybox/hello', 'cacert/jq', 'bash/curl', 'iana-etc/nano', 'busybox/jq', 'hello/nano'];
  const run = await nixyardInTerminal(['prebuild', listFile('fresh.txt', fresh), '--poll-interval', '100']);
  assert.equal(run.code, 0, run.stdout);
  assert.match(run.stdout, /\x1b\[\?25l/, 'drawn on a terminal (cursor hidden while drawing)');
  const percentages = [...run.stdout.matchAll(/ (\d+)% \| (\d+)\/6 done/g)].map((m) => Number(m[1]));
  assert.ok(percentages.length >= 2, run.stdout);
  assert.ok(percentages.some((p) => p < 100), `the bar started below 100%: ${percentages.join(' ')}`);
  assert.equal(percentages.at(-1), 100);
  assert.match(run.stdout, /100% \| 6\/6 done \| 6 built, 0 cached, 0 failed \| [0-9.]+\/(s|min) \| ETA 0s/);
  assert.match(run.stdout, /settled: 6\/6 done: 6 built, 0 cached, 0 failed; all images are available/);
});
