// Faults and floods the registry API meets, done to real processes: a private redis-server, one
// worker and API processes started as in production (test/helpers/stack.ts, scripts/stack.ts),
// builds that wait in Nix's builder until the test lets them finish (slow-set.ts), and faults dealt
// with kill(2). Nothing is mocked. Each case checks a promise of apps/api (deadline.ts,
// admission.ts, client-address.ts, unknown-packages.ts, main.ts's bounded shutdown):
//
// - Redis frozen (SIGSTOP) for 7 s: warm manifest and blob pulls answer 200 throughout; a cold pull
//   gets 503 UNAVAILABLE with Retry-After within 2 s; /metrics answers within 1 s and says the
//   worker gauge was not sampled; /readyz answers 503; after SIGCONT a cold pull builds;
// - unknown packages: 404 MANIFEST_UNKNOWN from a build, then from the negative cache, with no job;
// - NIXYARD_MAX_BUILDS_PER_CLIENT=1 through X-Forwarded-For from a trusted proxy, and the header
//   ignored from an untrusted peer; and the same limit for a burst of one client's pulls at once;
// - a build storm (30 distinct cold names at once, NIXYARD_MAX_QUEUED_BUILDS=5, one worker): 429
//   TOOMANYREQUESTS with Retry-After beyond the bound, counted by the refusal metric; a pull joining
//   a queued build is not refused; warm pulls stay 200; every admitted build ends in 200;
// - SIGTERM to the API while Redis is frozen and a cold pull waits: it exits within its grace.
// After each, every blob in storage hashes to its name (fsck's check). Measured times are printed.
//
// The replicas of a case share the farm (Redis, the worker, storage) and differ in their limits.
// The bounds asserted are the API's promises (deadline.ts, readiness.ts), not measurements.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Queue, type Job } from 'bullmq';
import { buildQueueName, clientBuildsKey, redisConnectionOptions } from '@nixyard/core';
import { metricValue, startStack, type TestStack } from '../helpers/stack.js';
import { tempDir } from '../helpers/temp-dir.js';
import { waitFor } from './processes.js';
import { writeSlowSet, type SlowSet } from './slow-set.js';
import {
  errorCode,
  describeSamples,
  pullManifest,
  sampleValue,
  smallestLayer,
  startApiReplica,
  timedRequest,
  warmLoop,
  type Answer,
  type ApiReplica,
  type WarmTarget,
} from './api-replicas.js';
import { assertStorageSound } from './farm-checks.js';

const SYSTEM = 'x86_64-linux';
const GRACE_SECONDS = 3;
const FREEZE_MS = 7_000;
/** deadline.ts answers after 1.5 s; the client must have its 503 within 2 s. */
const COLD_503_LIMIT_MS = 2_000;
/** metrics.ts samples the farm within 0.7 s; the scrape must be answered within 1 s. */
const METRICS_LIMIT_MS = 1_000;
/** readiness.ts gives its checks 2 s. */
const READYZ_LIMIT_MS = 3_000;
const MAX_QUEUED = 5;
const STORM = Array.from({ length: 30 }, (_, i) => `slow-storm${String.fromCharCode(97 + Math.floor(i / 26))}${String.fromCharCode(97 + (i % 26))}`);
const XFF = ['slow-xffa', 'slow-xffb', 'slow-xffc', 'slow-xffd', 'slow-xffe'] as const;
const BURST = ['slow-bursta', 'slow-burstb', 'slow-burstc', 'slow-burstd'] as const;
const TERM = 'slow-term';

let dir: ReturnType<typeof tempDir>;
let slow: SlowSet;
let stack: TestStack;
let queue: Queue;
/** The stack's API: default limits, NIXYARD_SHUTDOWN_GRACE_SECONDS=3. */
let api: string;
/** NIXYARD_MAX_QUEUED_BUILDS=5, no per-client limit: the storm's. */
let stormApi: ApiReplica;
/** NIXYARD_TRUSTED_PROXIES=127.0.0.1, NIXYARD_MAX_BUILDS_PER_CLIENT=1. */
let proxiedApi: ApiReplica;
/** NIXYARD_MAX_BUILDS_PER_CLIENT=1 without trusted proxies. */
let directApi: ApiReplica;
/** Default limits, NIXYARD_SHUTDOWN_GRACE_SECONDS=3: the one SIGTERM stops. */
let termApi: ApiReplica;
/** The image built first, pulled warm during every case. */
let warm: { name: string; digest: string } | undefined;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

before(async () => {
  dir = tempDir('api-chaos');
  slow = writeSlowSet(dir.path, [...STORM, ...XFF, ...BURST, TERM]);
  stack = await startStack({
    workers: 1,
    env: { NIXERY_PKGS_PATH: slow.path, NIXYARD_SHUTDOWN_GRACE_SECONDS: String(GRACE_SECONDS) },
  });
  api = stack.registry;
  [stormApi, proxiedApi, directApi, termApi] = await Promise.all([
    startApiReplica(stack.env, { NIXYARD_MAX_QUEUED_BUILDS: String(MAX_QUEUED), NIXYARD_MAX_BUILDS_PER_CLIENT: '0' }),
    startApiReplica(stack.env, { NIXYARD_TRUSTED_PROXIES: '127.0.0.1', NIXYARD_MAX_BUILDS_PER_CLIENT: '1' }),
    startApiReplica(stack.env, { NIXYARD_MAX_BUILDS_PER_CLIENT: '1' }),
    startApiReplica(stack.env),
  ]);
  queue = new Queue(buildQueueName(SYSTEM), { connection: redisConnectionOptions(stack.redis.url) });
  queue.on('error', () => {}); // Redis is frozen on purpose below
});

after(async () => {
  stack?.redis.child.kill('SIGCONT');
  for (const name of [...STORM, ...XFF, ...BURST, TERM]) slow?.release(name);
  await queue?.close().catch(() => {});
  await Promise.all([stormApi, proxiedApi, directApi, termApi].map((r) => r?.stop()));
  await stack?.stop();
  dir?.cleanup();
});

/** The warm image on `host` (built by the first case that needs it). */
async function warmTarget(host: string): Promise<WarmTarget> {
  if (!warm) {
    const built = await pullManifest(api, 'hello');
    assert.equal(built.status, 200, built.body.toString());
    warm = { name: 'hello', digest: smallestLayer(built.body) };
  }
  return { host, ...warm };
}

const IN_FLIGHT = ['active', 'waiting', 'prioritized', 'delayed'];

/** The build jobs of single-package images named in `names`, in the given states. */
async function jobsOf(names: readonly string[], states: readonly string[] = IN_FLIGHT): Promise<Job[]> {
  const wanted = new Set(names);
  const jobs = (await Promise.all(states.map((state) => queue.getJobs(state as Parameters<Queue['getJobs']>[0])))).flat();
  return jobs.filter((j) => {
    const packages = (j.data as { packages?: string[] }).packages;
    return packages?.length === 1 && wanted.has(packages[0]!);
  });
}

function expectRefusal(answer: Answer, code: string, what: string): void {
  assert.equal(answer.status, code === 'TOOMANYREQUESTS' ? 429 : 503, `${what}: ${answer.status} ${answer.body.toString()}`);
  assert.equal(errorCode(answer), code, `${what}: ${answer.body.toString()}`);
  const retryAfter = Number(answer.headers['retry-after']);
  assert.ok(Number.isInteger(retryAfter) && retryAfter > 0, `${what}: Retry-After ${answer.headers['retry-after']}`);
}

async function scrape(host: string): Promise<string> {
  const answer = await timedRequest(host, '/metrics', {}, 'GET', false);
  assert.equal(answer.status, 200);
  return answer.body.toString();
}

test('Redis frozen for 7 s: warm pulls answer 200, a cold pull 503 with Retry-After within 2 s, /metrics within 1 s, /readyz 503; then a cold pull builds', { timeout: 120_000 }, async (t) => {
  const target = await warmTarget(api);
  // The API's Redis side is loaded, and the gauges are sampled while Redis answers.
  assert.equal(sampleValue(await scrape(api), 'nixyard_farm_sampled{gauge="nixyard_workers"}'), 1, 'the worker gauge is sampled while Redis answers');
  assert.equal((await timedRequest(api, '/readyz', {}, 'GET', false)).status, 200);

  const loop = warmLoop(target, { concurrency: 2, pauseMs: 20 });
  t.after(() => loop.stop());
  await sleep(300);
  stack.redis.child.kill('SIGSTOP');
  const frozenAt = performance.now();
  let thawedAt: number;
  let cold: Answer, metrics: Answer, ready: Answer;
  try {
    await sleep(300);
    [cold, metrics, ready] = await Promise.all([
      pullManifest(api, 'jq'),
      timedRequest(api, '/metrics', {}, 'GET', false),
      timedRequest(api, '/readyz', {}, 'GET', false),
    ]);
    await sleep(Math.max(0, frozenAt + FREEZE_MS - performance.now()));
  } finally {
    stack.redis.child.kill('SIGCONT');
    thawedAt = performance.now();
  }
  const samples = await loop.stop();
  const duringFreeze = samples.filter((s) => s.at >= frozenAt && s.at + s.ms <= thawedAt);

  t.diagnostic(`Redis frozen ${Math.round(thawedAt - frozenAt)} ms; warm pulls during the freeze: ${describeSamples(duringFreeze)}`);
  t.diagnostic(`cold pull during the freeze: ${cold.status} ${errorCode(cold)} Retry-After ${cold.headers['retry-after']} after ${Math.round(cold.ms)} ms`);
  t.diagnostic(`/metrics during the freeze: ${metrics.status} after ${Math.round(metrics.ms)} ms; /readyz: ${ready.status} after ${Math.round(ready.ms)} ms`);

  assert.ok(duringFreeze.length >= 50, `warm pulls sent during the freeze: ${duringFreeze.length}`);
  assert.ok(duringFreeze.some((s) => s.kind === 'blob') && duringFreeze.some((s) => s.kind === 'manifest'));
  assert.deepEqual(samples.filter((s) => s.status !== 200), [], 'every warm pull answered 200');
  assert.ok(Math.max(...duringFreeze.map((s) => s.ms)) < 1_000, 'no warm pull waited for Redis');

  expectRefusal(cold, 'UNAVAILABLE', 'cold pull during the freeze');
  assert.ok(cold.ms <= COLD_503_LIMIT_MS, `the cold pull's 503 came after ${Math.round(cold.ms)} ms`);
  assert.equal(metrics.status, 200);
  assert.ok(metrics.ms <= METRICS_LIMIT_MS, `/metrics answered after ${Math.round(metrics.ms)} ms`);
  assert.equal(sampleValue(metrics.body.toString(), 'nixyard_farm_sampled{gauge="nixyard_workers"}'), 0, 'the worker gauge is said to be left out');
  assert.equal(sampleValue(metrics.body.toString(), 'nixyard_workers{system="x86_64-linux"}'), undefined, 'no stale worker gauge');
  assert.equal(ready.status, 503, ready.body.toString());
  assert.ok(ready.ms <= READYZ_LIMIT_MS, `/readyz answered after ${Math.round(ready.ms)} ms`);

  const thawed = await pullManifest(api, 'jq');
  t.diagnostic(`cold pull after SIGCONT: ${thawed.status} after ${Math.round(thawed.ms)} ms`);
  assert.equal(thawed.status, 200, thawed.body.toString());
  assert.equal((await timedRequest(api, '/readyz', {}, 'GET', false)).status, 200);
  await assertStorageSound(stack.storage);
});

test('a name that names no package: 404 MANIFEST_UNKNOWN from a build, then from the negative cache without a job, and faster', { timeout: 90_000 }, async (t) => {
  const name = 'hello.q17';
  const worker = stack.workerMetricsUrl;
  const started = 'nixyard_builds_total{result="started"}';
  const startedBefore = await metricValue(worker, started);

  const first = await pullManifest(api, name);
  assert.equal(first.status, 404, first.body.toString());
  assert.equal(errorCode(first), 'MANIFEST_UNKNOWN');
  assert.match(first.body.toString(), /unknown packages: hello\.q17/);
  assert.equal(await metricValue(worker, started), startedBefore + 1, 'the first pull ran a build');
  const [job] = await jobsOf([name], ['failed']);
  assert.ok(job, 'the failed build job');

  const second = await pullManifest(api, name);
  t.diagnostic(`unknown package: first pull ${first.status} after ${Math.round(first.ms)} ms (a build), second ${second.status} after ${Math.round(second.ms)} ms`);
  assert.equal(second.status, 404, second.body.toString());
  assert.equal(errorCode(second), 'MANIFEST_UNKNOWN');
  assert.match(second.body.toString(), /unknown packages: hello\.q17/);
  assert.equal(await metricValue(worker, started), startedBefore + 1, 'the second pull ran no build');
  const jobs = await jobsOf([name], [...IN_FLIGHT, 'failed', 'completed']);
  assert.deepEqual(
    jobs.map((j) => [j.id, j.timestamp]),
    [[job.id, job.timestamp]],
    'the second pull added no job',
  );
  assert.ok(second.ms < first.ms, `the second pull (${Math.round(second.ms)} ms) was faster than the first (${Math.round(first.ms)} ms)`);
  await assertStorageSound(stack.storage);
});

test('NIXYARD_MAX_BUILDS_PER_CLIENT=1 by X-Forwarded-For from a trusted proxy; from an untrusted peer the header is ignored', { timeout: 120_000 }, async (t) => {
  const [a, b, c, d, e] = XFF;
  const redis = stack.redis.client();
  const refusals = (host: string) => metricValue(`http://${host}/metrics`, 'nixyard_admission_refusals_total{reason="client_limit"}');

  // Through the trusted proxy: 198.51.100.7 has one build in flight, so its second distinct one waits outside.
  const first = pullManifest(proxiedApi.host, a, { 'X-Forwarded-For': '198.51.100.7' });
  await waitFor(`${a} queued`, async () => ((await jobsOf([a])).length === 1 ? true : undefined), 20_000);
  const refused = await pullManifest(proxiedApi.host, b, { 'X-Forwarded-For': '198.51.100.7' });
  t.diagnostic(`second cold pull of 198.51.100.7: ${refused.status} ${errorCode(refused)} after ${Math.round(refused.ms)} ms`);
  expectRefusal(refused, 'TOOMANYREQUESTS', 'the second build of 198.51.100.7');
  assert.match(refused.body.toString(), /this client already has 1 images building/);
  assert.equal(await refusals(proxiedApi.host), 1);
  const other = pullManifest(proxiedApi.host, c, { 'X-Forwarded-For': '198.51.100.8' });
  await waitFor(`${c} queued for 198.51.100.8`, async () => ((await jobsOf([c])).length === 1 ? true : undefined), 20_000);
  assert.deepEqual(await redis.zrange(clientBuildsKey('198.51.100.7'), '0', '-1'), [(await jobsOf([a]))[0]!.id]);
  assert.deepEqual(await redis.zrange(clientBuildsKey('198.51.100.8'), '0', '-1'), [(await jobsOf([c]))[0]!.id]);
  assert.equal(await redis.exists(clientBuildsKey('127.0.0.1')), 0, 'the proxy itself is not the client');

  // Without trusted proxies the header is nobody's word: both pulls are 127.0.0.1's.
  const direct = pullManifest(directApi.host, d, { 'X-Forwarded-For': '198.51.100.9' });
  await waitFor(`${d} queued`, async () => ((await jobsOf([d])).length === 1 ? true : undefined), 20_000);
  const ignored = await pullManifest(directApi.host, e, { 'X-Forwarded-For': '198.51.100.10' });
  t.diagnostic(`second cold pull from 127.0.0.1 claiming another address: ${ignored.status} ${errorCode(ignored)} after ${Math.round(ignored.ms)} ms`);
  expectRefusal(ignored, 'TOOMANYREQUESTS', 'the second build of 127.0.0.1');
  assert.equal(await refusals(directApi.host), 1);
  assert.deepEqual(await redis.zrange(clientBuildsKey('127.0.0.1'), '0', '-1'), [(await jobsOf([d]))[0]!.id]);
  assert.equal(await redis.exists(clientBuildsKey('198.51.100.9')), 0);
  assert.equal(await redis.exists(clientBuildsKey('198.51.100.10')), 0);
  assert.equal((await jobsOf([b, e], [...IN_FLIGHT, 'completed', 'failed'])).length, 0, 'refused pulls added no job');

  for (const name of XFF) slow.release(name);
  const answers = await Promise.all([first, other, direct]);
  assert.deepEqual(answers.map((r) => r.status), [200, 200, 200], answers.map((r) => r.body.toString()).join('\n'));
  for (const client of ['198.51.100.7', '198.51.100.8', '127.0.0.1']) {
    assert.equal(await redis.exists(clientBuildsKey(client)), 0, `${client}'s slot is released`);
  }
  await assertStorageSound(stack.storage);
});

test('NIXYARD_MAX_BUILDS_PER_CLIENT=1 holds for a burst: four distinct cold pulls of one client at once, one admitted', { timeout: 60_000 }, async (t) => {
  const client = '198.51.100.20';
  const fired = performance.now();
  const pulls = BURST.map((name) => pullManifest(proxiedApi.host, name, { 'X-Forwarded-For': client }));
  const answered: Answer[] = [];
  for (const p of pulls) void p.then((a) => answered.push(a));
  try {
    const queued = await waitFor('every burst pull refused or queued', async () => {
      const jobs = await jobsOf(BURST);
      return answered.length + jobs.length >= BURST.length ? jobs : undefined;
    }, 20_000, 50);
    const refused = [...answered]; // the admitted ones are answered once released, below
    const slots = await stack.redis.client().zcard(clientBuildsKey(client));
    t.diagnostic(`burst of ${BURST.length} from ${client} settled after ${Math.round(performance.now() - fired)} ms: ${refused.length} refused (${refused.map((a) => a.status).join(',') || '–'}), ${queued.length} admitted, ${slots} slot(s) taken`);
    for (const name of BURST) slow.release(name);
    const finals = await Promise.all(pulls);
    assert.equal(queued.length, 1, `${queued.length} builds admitted for one client with NIXYARD_MAX_BUILDS_PER_CLIENT=1 (${slots} slots taken)`);
    assert.equal(refused.length, BURST.length - 1);
    for (const answer of refused) expectRefusal(answer, 'TOOMANYREQUESTS', 'a burst pull');
    assert.match(refused[0]!.body.toString(), /this client already has 1 images building/);
    assert.equal(finals.filter((a) => a.status === 200).length, queued.length, 'every admitted build answered 200');
    assert.equal(await stack.redis.client().exists(clientBuildsKey(client)), 0, "the client's slot is released");
  } finally {
    for (const name of BURST) slow.release(name);
    await Promise.allSettled(pulls);
  }
  await assertStorageSound(stack.storage);
});

test(`a build storm: ${STORM.length} distinct cold names at once with NIXYARD_MAX_QUEUED_BUILDS=${MAX_QUEUED} and one worker`, { timeout: 180_000 }, async (t) => {
  const host = stormApi.host;
  const target = await warmTarget(host);
  assert.equal((await pullManifest(host, target.name)).status, 200);
  assert.equal((await jobsOf(STORM)).length, 0);
  const queueFull = 'nixyard_admission_refusals_total{reason="queue_full"}';
  assert.equal(sampleValue(await scrape(host), queueFull), 0);

  // Everything is measured first and asserted at the end: the storm's builds are let go and
  // waited for in any case, so that a broken bound fails this case alone.
  const loop = warmLoop(target, { concurrency: 2, pauseMs: 10 });
  const answered = new Map<string, Answer>();
  const fired = performance.now();
  const pulls = new Map(STORM.map((name) => [name, pullManifest(host, name).then((a) => (answered.set(name, a), a))]));
  let joined: Promise<Answer> | undefined;
  try {
    // Settled: every pull was either answered at once or has its job in the queue.
    const queued = await waitFor(
      'every storm pull refused or queued',
      async () => {
        const jobs = await jobsOf(STORM);
        return answered.size + jobs.length >= STORM.length ? jobs : undefined;
      },
      30_000,
      100,
    );
    const settledMs = Math.round(performance.now() - fired);
    const refused = [...answered.values()];
    const waiting = await jobsOf(STORM, ['waiting', 'prioritized']);
    const counted = sampleValue(await scrape(host), queueFull);
    t.diagnostic(`storm settled ${settledMs} ms after it began: ${refused.length} refused (statuses ${[...new Set(refused.map((a) => a.status))].join(',') || '–'}), ${queued.length} admitted, ${waiting.length} of them waiting (bound ${MAX_QUEUED}); refusals counted: ${counted}`);
    if (refused.length > 0) t.diagnostic(`refusals answered within ${Math.round(Math.min(...refused.map((a) => a.ms)))}–${Math.round(Math.max(...refused.map((a) => a.ms)))} ms`);

    // A pull of a name already queued joins its build, however full the queue is.
    const joinedName = (waiting[0] ?? queued[0]!).data.packages[0] as string;
    joined = pullManifest(host, joinedName);
    const early = await Promise.race([joined, sleep(1_500).then(() => undefined)]);
    const countedAfterJoin = sampleValue(await scrape(host), queueFull);

    for (const name of STORM) slow.release(name);
    const admitted = [...pulls.keys()].filter((name) => answered.get(name)?.status !== 429);
    const finals = await Promise.all([...admitted.map((name) => pulls.get(name)!), joined]);
    const allDoneMs = Math.round(performance.now() - fired);
    const samples = await loop.stop();
    t.diagnostic(`every admitted build (${admitted.length}) and the joining pull answered (${[...new Set(finals.map((a) => a.status))].join(',')}) ${allDoneMs} ms after the storm began`);
    t.diagnostic(`warm pulls during the storm: ${describeSamples(samples)}`);

    assert.ok(waiting.length <= MAX_QUEUED, `${waiting.length} builds waiting with NIXYARD_MAX_QUEUED_BUILDS=${MAX_QUEUED}; ${refused.length} of ${STORM.length} pulls refused`);
    assert.ok(refused.length > 0, 'some pulls were refused');
    for (const answer of refused) expectRefusal(answer, 'TOOMANYREQUESTS', 'a storm pull');
    assert.equal(refused.length + queued.length, STORM.length);
    assert.equal(counted, refused.length, 'every 429 counted');
    assert.equal(early, undefined, `the joining pull was answered at once: ${early?.status} ${early?.body.toString()}`);
    assert.equal(countedAfterJoin, refused.length, 'the joining pull was not refused');
    assert.ok(finals.every((a) => a.status === 200), finals.map((a) => `${a.status} ${a.body.toString()}`).join('\n'));
    assert.equal(admitted.length, queued.length);
    assert.ok(samples.length >= 20, `warm pulls sent: ${samples.length}`);
    assert.deepEqual(samples.filter((s) => s.status !== 200), [], 'every warm pull answered 200');
    assert.equal((await jobsOf(STORM, ['completed'])).length, queued.length, 'one completed job per admitted name');
  } finally {
    for (const name of STORM) slow.release(name);
    await loop.stop();
    await Promise.allSettled([...pulls.values(), ...(joined ? [joined] : [])]);
  }
  await assertStorageSound(stack.storage);
});

test(`SIGTERM to the API while Redis is frozen and a cold pull waits: it exits within ${GRACE_SECONDS} s`, { timeout: 90_000 }, async (t) => {
  const pulled = pullManifest(termApi.host, TERM).catch((err: Error) => err);
  await waitFor(`${TERM} building`, async () => {
    const [job] = await jobsOf([TERM]);
    return job && (await job.isActive()) ? job : undefined;
  }, 30_000);
  const apiProcess = termApi.child;
  const exited = new Promise((done) => apiProcess.once('exit', done));
  stack.redis.child.kill('SIGSTOP');
  let stoppedMs: number;
  try {
    const signalled = performance.now();
    apiProcess.kill('SIGTERM');
    await Promise.race([exited, sleep(GRACE_SECONDS * 1000 + 10_000)]);
    stoppedMs = Math.round(performance.now() - signalled);
  } finally {
    stack.redis.child.kill('SIGCONT');
  }
  t.diagnostic(`API exited ${stoppedMs} ms after SIGTERM with Redis frozen and a pull waiting (grace ${GRACE_SECONDS} s)`);
  assert.notEqual(apiProcess.exitCode ?? apiProcess.signalCode, null, 'the API exited');
  assert.ok(stoppedMs <= GRACE_SECONDS * 1000 + 500, `exited ${stoppedMs} ms after SIGTERM`);
  assert.ok(stoppedMs >= GRACE_SECONDS * 1000 - 500, 'a pull was in flight, so it waited for its grace period');
  const outcome = await pulled;
  assert.ok(outcome instanceof Error || outcome.status !== 200, 'the waiting pull did not get an image from a stopped API');

  slow.release(TERM);
  await waitFor(`${TERM} built anyway`, async () => ((await jobsOf([TERM], ['completed'])).length === 1 ? true : undefined), 60_000);
  await assertStorageSound(stack.storage);
});
