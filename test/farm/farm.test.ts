// The farm tests (tracker issue 15, part 3): the whole topology of scripts/farm/ (each host a
// network namespace on one bridge: Redis with a replica and three Sentinels, two API replicas
// behind nginx, two x86_64 workers and an aarch64 one, Prometheus), brought up once for this
// file, and driven from the root namespace through the proxy's address as clients reach it:
//
//  1. a prebuild batch of 30 distinct images settles, every worker of a system builds some of
//     them (each worker's /metrics), then 64 concurrent clients pull them all, both API replicas
//     serve a share (their /metrics), and every pulled blob hashes to its digest;
//  2. Prometheus has every target up, and the Grafana dashboard's queries return data for both
//     API replicas and all three workers (Prometheus' HTTP API);
//  3. builds per minute of the same batch with two x86_64 workers, then with one;
//  4. a worker host cut off (its link down) in the middle of a build with a pull waiting: the pull
//     is answered by another worker within 20 s of the cut; when the host comes back nothing is
//     published twice or corrupted;
//  5. an API host cut off under load of clients retrying as skopeo does: no pull fails, and the
//     proxy sends to the host again once it is back; 6. the proxy routes around the host within
//     20 s (its TCP timeouts, docker-compose.yml's `sysctls` for it), and no pull fails once it
//     has noticed;
//  7. the Redis primary's host cut off under warm and cold load: Sentinel promotes the replica,
//     warm pulls never stop, cold pulls succeed again within 30 s, every build job queued before
//     the cut completes exactly once, and no prebuild batch is lost; 8. prebuild submissions
//     succeed again within 30 s.
// After each, every blob in storage hashes to its name (fsck's check). Measured figures are
// printed (`# ...` lines) for docs/scaling.md.
//
// Builds that must be "in the middle" wait in Nix's builder until the test lets them finish
// (../chaos/slow-set.ts): the farm runs on that package set, the bundled offline set plus those.
// Needs root and `ip netns`; skipped, saying why, without them. The farm has a prefix, subnet and
// state directory of its own (nxt-, 10.213.81.0/24, /tmp/nixyard-farm-test), so it never meets
// one started with `npm run farm -- up`; it is removed in `after`, also when a test failed.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Queue } from 'bullmq';
import {
  LAYER_CACHE_HASH,
  LAYER_RECORD_PREFIX,
  OCI_IMAGE_INDEX,
  OCI_IMAGE_MANIFEST,
  WORST_CASE_TAKEOVER_MS,
  buildQueueName,
  manifestRecordKey,
  readManifestRecord,
  type PrebuildBatch,
  type System,
} from '@nixyard/core';
import { Redis } from 'ioredis';
import { farmDown, farmUp, type Farm } from '../../scripts/farm/farm.js';
import { tempDir } from '../helpers/temp-dir.js';
import { allPanels, PromqlChecker, readDashboard } from '../helpers/promql-check.js';
import { REPO_ROOT } from '../helpers/bundled-set.js';
import { descendants } from '../chaos/processes.js';
import { writeSlowSet, type SlowSet } from '../chaos/slow-set.js';
import {
  assertStorageSound,
  blobDigests,
  directRedis,
  eventsByJob,
  farmStorage,
  metricsUrl,
  primaryAccordingTo,
  promGet,
  promQuery,
  proxyErrors,
  queueEvents,
  replicationOf,
  scrape,
  seconds,
  sentinelConnection,
  sleep,
  total,
  waitFor,
  type JobEvent,
} from './farm-helpers.js';
import { Admin, NoAnswer, keepAliveAgent, pullImage, pullWithRetries, registryRequest, type PulledImage, type RetriedPull } from './registry-client.js';

const STATE_DIR = '/tmp/nixyard-farm-test';
const PREFIX = 'nxt-';
const SUBNET = '10.213.81.0/24';
const SYSTEMS: readonly System[] = ['x86_64-linux', 'aarch64-linux'];
const X86_WORKERS = ['worker-1', 'worker-2'];
const WORKER_OF_SYSTEM: Record<System, string[]> = { 'x86_64-linux': X86_WORKERS, 'aarch64-linux': ['worker-3'] };

/** Bundled packages whose pairs name distinct, cheap images (as bench/storm.ts's). */
const PACKAGES = ['jq', 'nano', 'bash', 'busybox', 'coreutils', 'moreutils', 'zlib', 'openssl', 'gmp', 'libffi', 'zstd', 'acl', 'attr'];
const PAIRS = PACKAGES.flatMap((a, i) => PACKAGES.slice(i + 1).map((b) => `${a}/${b}`));
/** 15 names, each an index of an x86_64 and an aarch64 image: the 30 distinct images of the batch. */
const BATCH = PAIRS.slice(0, 15);
/** Never asked for before the Redis case: its cold pulls (x86_64) and submissions (arm64/...). */
const FRESH = PAIRS.slice(15);

/** How long case 5 keeps api-1 cut off. */
const API_CUT_MS = 30_000;
/** How long case 7 loads and watches the farm after cutting off the Redis primary. */
const REDIS_WATCH_MS = 55_000;

const SLOW_CUT = 'slow-cut';
const SLOW_REDIS = ['slow-reda', 'slow-redb', 'slow-redc'];

const skipReason = ((): string | false => {
  if (process.platform !== 'linux') return 'the farm runs on Linux only';
  if (process.getuid?.() !== 0) return 'the farm makes network namespaces: run as root';
  const ip = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (ip.error || ip.status !== 0) return `\`ip netns\` is unavailable (${ip.error?.message ?? ip.stderr.trim()}); scripts/install-system-packages.sh --farm installs iproute2`;
  return false;
})();

describe('the farm', { skip: skipReason }, () => {
  let dir: ReturnType<typeof tempDir>;
  let slow: SlowSet;
  let farm: Farm;
  let admin: Admin;
  /** The batch of case 1: its images with their keys. */
  let batch: PrebuildBatch | undefined;

  before(async () => {
    dir = tempDir('farm');
    slow = writeSlowSet(dir.path, [SLOW_CUT, ...SLOW_REDIS]);
    // What an earlier run of this file left behind, if it was killed: these names are its own.
    await farmDown({ stateDir: STATE_DIR, prefix: PREFIX });
    const begun = performance.now();
    farm = await farmUp({
      stateDir: STATE_DIR,
      prefix: PREFIX,
      subnet: SUBNET,
      packages: slow.path,
      // Every client of these tests comes from the root namespace, one address: it stands for many
      // clients, so the per-client bound of cold builds (4) is off.
      apiEnv: { NIXYARD_MAX_BUILDS_PER_CLIENT: '0' },
      log: (line) => console.log(`farm up: ${line}`),
    });
    console.log(`farm up in ${seconds(performance.now() - begun)} (roles ${farm.roles}); registry ${farm.registry}, Prometheus ${farm.prometheusUrl}`);
    admin = new Admin(farm.registry, farm.adminToken);
  }, { timeout: 300_000 });

  after(async () => {
    for (const name of [SLOW_CUT, ...SLOW_REDIS]) slow?.release(name);
    if (farm) {
      for (const host of farm.hosts) {
        try {
          farm.restoreLink(host.name);
        } catch {
          // gone already
        }
      }
      await farm.down({ graceMs: 10_000 });
    }
    dir?.cleanup();
  });

  test('a prebuild batch of 30 distinct images settles, built by every worker of each system; 64 concurrent clients pull them all from both API replicas, every blob hashing to its digest', { timeout: 240_000 }, async () => {
    const workers = ['worker-1', 'worker-2', 'worker-3'];
    const publishedBy = async () => {
      const counts = new Map<string, number>();
      for (const w of workers) {
        const samples = await scrape(metricsUrl(farm, w));
        for (const system of SYSTEMS) counts.set(`${w} ${system}`, total(samples, 'nixyard_build_phase_duration_seconds_count', { phase: 'publish', system }));
      }
      return counts;
    };
    const before = await publishedBy();

    const submittedAt = performance.now();
    const submitted = await admin.submitted(BATCH, 'farm-test: 30 images');
    assert.equal(submitted.total, 30, `15 names, each an x86_64 and an aarch64 image: ${JSON.stringify(submitted.counts)}`);
    assert.equal(submitted.counts.cached, 0, 'nothing is stored yet');
    const builtAt = new Map<string, number>();
    const settled = await admin.settled(submitted.id, 180_000, (b) => {
      for (const image of b.images) if (image.state === 'built' && !builtAt.has(image.imageKey)) builtAt.set(image.imageKey, performance.now());
    });
    const settleMs = performance.now() - submittedAt;
    batch = settled;
    assert.deepEqual(settled.counts, { queued: 0, building: 0, built: 30, cached: 0, failed: 0, cancelled: 0 }, JSON.stringify(settled.images.filter((i) => i.state !== 'built')));

    const after = await publishedBy();
    const built = new Map([...after].map(([key, n]) => [key, n - (before.get(key) ?? 0)]));
    console.log(`batch of 30 images (15 x86_64 + 15 aarch64, 3 workers) settled in ${seconds(settleMs)}: ${((30 / settleMs) * 60_000).toFixed(1)} builds/min; built by ${[...built].filter(([, n]) => n > 0).map(([k, n]) => `${k}: ${n}`).join(', ')}`);
    for (const system of SYSTEMS) {
      for (const w of WORKER_OF_SYSTEM[system]) assert.ok(built.get(`${w} ${system}`)! >= 1, `${w} built none of the ${system} images`);
      const bySystem = workers.reduce((sum, w) => sum + built.get(`${w} ${system}`)!, 0);
      assert.equal(bySystem, 15, `each ${system} image built once`);
    }

    // 64 clients at once, each pulling three of the 30 images in turn (every image pulled by six
    // or seven of them), over keep-alive connections as registry clients keep them.
    const apis = ['api-1', 'api-2'];
    const served = async () => Promise.all(apis.map(async (a) => {
      const samples = await scrape(metricsUrl(farm, a));
      return { manifest: total(samples, 'nixyard_http_requests_total', { route: 'manifest', status: '200' }), blob: total(samples, 'nixyard_http_requests_total', { route: 'blob', status: '200' }) };
    }));
    const servedBefore = await served();
    const images = BATCH.flatMap((name) => SYSTEMS.map((system) => ({ name, system })));
    const CLIENTS = 64;
    const ROUNDS = 3;
    const agent = keepAliveAgent(CLIENTS);
    const pullsBegun = performance.now();
    const results = await Promise.all(
      Array.from({ length: CLIENTS }, async (_, client) => {
        const pulled: PulledImage[] = [];
        for (let round = 0; round < ROUNDS; round++) {
          const image = images[(client + round * CLIENTS) % images.length]!;
          pulled.push(await pullImage(farm.registry, image.name, image.system, { agent, idleTimeoutMs: 30_000 }));
        }
        return pulled;
      }),
    );
    const pullsMs = performance.now() - pullsBegun;
    agent.destroy();
    const pulls = results.flat();
    const servedAfter = await served();
    const bytes = pulls.reduce((sum, p) => sum + p.bytes, 0);
    const blobs = pulls.reduce((sum, p) => sum + p.blobs, 0);
    const share = apis.map((a, i) => ({ api: a, manifest: servedAfter[i]!.manifest - servedBefore[i]!.manifest, blob: servedAfter[i]!.blob - servedBefore[i]!.blob }));
    const requests = share.reduce((sum, s) => sum + s.manifest + s.blob, 0);
    console.log(
      `${pulls.length} whole-image pulls by ${CLIENTS} concurrent clients through the proxy (2 API replicas) in ${seconds(pullsMs)}: ` +
        `${(pulls.length / (pullsMs / 1000)).toFixed(1)} pulls/s, ${(requests / (pullsMs / 1000)).toFixed(0)} requests/s, ${(bytes / 1e6 / (pullsMs / 1000)).toFixed(0)} MB/s (${blobs} blobs, ${(bytes / 1e6).toFixed(0)} MB, each hashed by the client)`,
    );
    console.log(`requests served: ${share.map((s) => `${s.api} ${s.manifest} manifests + ${s.blob} blobs (${(((s.manifest + s.blob) / requests) * 100).toFixed(0)}%)`).join(', ')}`);

    assert.equal(pulls.length, CLIENTS * ROUNDS);
    assert.deepEqual(new Set(pulls.map((p) => `${p.name} ${p.system}`)).size, 30, 'every image of the batch was pulled');
    // Each pull already checked every blob against its digest and size; the manifests are the batch's.
    const digestOf = new Map(settled.images.map((i) => [`${i.image.replace(/ \(.*\)$/, '')} ${i.system}`, i.manifestDigest]));
    for (const p of pulls) assert.equal(p.manifestDigest, digestOf.get(`${p.name} ${p.system}`), `${p.name} ${p.system}: the manifest the batch built`);
    assert.equal(requests, pulls.length * 2 + blobs, 'every request reached an API replica (tag, manifest and each blob)');
    for (const s of share) assert.ok((s.manifest + s.blob) / requests >= 0.2, `${s.api} served ${s.manifest + s.blob} of ${requests} requests`);
    await assertStorageSound(farmStorage(farm));
  });

  test('Prometheus has every target up, and the dashboard’s queries return data for both API replicas and all three workers', { timeout: 90_000 }, async () => {
    const apiInstances = ['api-1', 'api-2'].map((a) => `${farm.process(a).address}:${farm.process(a).port}`);
    const workerInstances = ['worker-1', 'worker-2', 'worker-3'].map((w) => `${farm.process(w).address}:${farm.process(w).port}`);
    const targets = await promGet<{ activeTargets: Array<{ labels: Record<string, string>; health: string; lastError: string }> }>(farm, '/api/v1/targets?state=active');
    const byJob = (job: string) => targets.activeTargets.filter((t) => t.labels.job === job);
    assert.deepEqual(byJob('nixyard-api').map((t) => t.labels.instance).sort(), apiInstances.sort());
    assert.deepEqual(byJob('nixyard-worker').map((t) => t.labels.instance).sort(), workerInstances.sort());
    assert.equal(targets.activeTargets.length, 6, 'two APIs, three workers and Prometheus itself');
    for (const t of targets.activeTargets) assert.equal(t.health, 'up', `${t.labels.instance}: ${t.lastError}`);

    // Rates need counters that grow between two scrapes: case 1's pulls may all have fallen between
    // the same two. So pulls go on (through the proxy, to both replicas) until every target has
    // been scraped twice after they began (5 s interval).
    const since = Date.now() / 1000;
    let pulling = true;
    const traffic = (async () => {
      for (let i = 0; pulling; i++) {
        await pullImage(farm.registry, BATCH[i % BATCH.length]!, SYSTEMS[i % SYSTEMS.length]!);
        await sleep(250);
      }
    })();
    try {
      await waitFor('two scrapes of every target while pulls go on', async () => {
        const up = await promQuery(farm, 'timestamp(up)');
        return up.length === 6 && up.every((s) => Number(s.value[1]) > since + 5) ? true : undefined;
      }, 30_000, 1_000);
    } finally {
      pulling = false;
      await traffic;
    }

    const dashboard = readDashboard(join(REPO_ROOT, 'ops/grafana/dashboards/nixyard.json'));
    // Grafana's variables as their "All" value renders them; $__rate_interval as Grafana computes it for a 5 s scrape.
    const render = (expr: string) => expr.replace(/\$\{?system\}?/g, '.*').replace(/\$\{?route\}?/g, '.*').replace(/\$\{?__rate_interval\}?/g, '1m');
    const checker = new PromqlChecker([], {});
    const empty: string[] = [];
    const missing: string[] = [];
    const metrics = new Set<string>();
    let queries = 0;
    for (const panel of allPanels(dashboard.panels)) {
      for (const target of panel.targets ?? []) {
        if (!target.expr) continue;
        queries++;
        const expr = render(target.expr);
        const result = await promQuery(farm, expr);
        if (result.length === 0) empty.push(`${panel.title}: ${expr}`);
        for (const s of checker.analyse(expr).selectors) metrics.add(s.metric);
        // A panel drawn per instance draws every API replica or every worker it concerns.
        if (/by \(instance\)/.test(expr)) {
          const instances = new Set(result.map((s) => s.metric.instance));
          const api = /nixyard_farm_sampled/.test(expr);
          const worker = /nixyard_packed_bytes_total/.test(expr);
          const expected = api ? apiInstances : worker ? workerInstances : [...apiInstances, ...workerInstances];
          for (const instance of expected) if (!instances.has(instance)) missing.push(`${panel.title}: no series for ${instance}`);
        }
      }
    }
    // Every metric a query selects has series from every API replica, or every worker, that exports it.
    for (const metric of metrics) {
      const series = await promQuery(farm, `count by (job, instance) ({__name__="${metric}", job=~"nixyard-.*"})`);
      if (series.length === 0) {
        missing.push(`${metric}: no series at all`);
        continue;
      }
      const instances = new Set(series.map((s) => s.metric.instance));
      const jobs = new Set(series.map((s) => s.metric.job));
      if (jobs.has('nixyard-api')) for (const i of apiInstances) if (!instances.has(i)) missing.push(`${metric}: none from API ${i}`);
      if (jobs.has('nixyard-worker')) for (const i of workerInstances) if (!instances.has(i)) missing.push(`${metric}: none from worker ${i}`);
    }
    for (const variable of dashboard.templating.list.filter((v) => v.type === 'query')) {
      const m = /label_values\((\w+),\s*(\w+)\)/.exec(variable.definition ?? '');
      assert.ok(m, `variable ${variable.name}: ${variable.definition}`);
      const values = await promGet<string[]>(farm, `/api/v1/label/${m[2]}/values?match[]=${encodeURIComponent(m[1]!)}`);
      const expected = variable.name === 'system' ? [...SYSTEMS] : ['manifest', 'blob'];
      for (const value of expected) assert.ok(values.includes(value), `variable ${variable.name}: ${value} not among ${values.join(', ')}`);
    }
    console.log(`dashboard: ${queries} queries, ${metrics.size} metrics, checked against ${apiInstances.length} API replicas and ${workerInstances.length} workers`);
    assert.deepEqual(empty, [], 'every dashboard query returns data');
    assert.deepEqual(missing, [], 'every API replica and worker is in the data');
  });

  test('builds per minute of the same 15 x86_64 images with two workers, then with one', { timeout: 240_000 }, async () => {
    assert.ok(batch, 'case 1 built the batch');
    const storage = farmStorage(farm);
    const x86 = batch.images.filter((i) => i.system === 'x86_64-linux');
    const redis = new Redis(sentinelConnection(farm));
    redis.on('error', () => {});
    // The same work each time: the x86_64 manifests and every layer record forgotten, so each
    // build resolves, builds (Nix finds the store paths), graphs, packs every layer again and
    // publishes. The aarch64 images stay stored (the batch finds them cached).
    const forget = async () => {
      for (const image of x86) await storage.deleteRecord(manifestRecordKey(image.imageKey));
      for await (const key of storage.listRecords(LAYER_RECORD_PREFIX)) await storage.deleteRecord(key);
      await redis.del(LAYER_CACHE_HASH);
    };
    const run = async (label: string) => {
      await forget();
      // Per x86_64 worker that runs: images published, and layers packed (cache misses).
      const counters = async () =>
        Promise.all(
          X86_WORKERS.map(async (w) => {
            if ((await farm.notReady(w)) !== undefined) return { published: 0, packed: 0 };
            const samples = await scrape(metricsUrl(farm, w));
            return { published: total(samples, 'nixyard_build_phase_duration_seconds_count', { phase: 'publish' }), packed: total(samples, 'nixyard_layer_cache_requests_total', { result: 'miss' }) };
          }),
        );
      const before = await counters();
      const begun = performance.now();
      const submitted = await admin.submitted(BATCH, `farm-test: ${label}`);
      assert.deepEqual([submitted.counts.cached, submitted.total], [15, 30], 'the aarch64 images are stored, the x86_64 ones are not');
      const settled = await admin.settled(submitted.id, 180_000);
      const ms = performance.now() - begun;
      assert.equal(settled.counts.built, 15, JSON.stringify(settled.counts));
      const after = await counters();
      const packed = after.reduce((sum, c, i) => sum + c.packed - before[i]!.packed, 0);
      assert.ok(packed > 0, 'layers were packed again');
      return { ms, perMinute: (15 / ms) * 60_000, packed, byWorker: X86_WORKERS.map((w, i) => `${w} ${after[i]!.published - before[i]!.published}`) };
    };
    try {
      const two = await run('two x86_64 workers');
      await farm.kill('worker-2');
      let one: Awaited<ReturnType<typeof run>>;
      try {
        one = await run('one x86_64 worker');
      } finally {
        await farm.start('worker-2');
      }
      console.log(`15 x86_64 images, every layer packed again: two workers ${seconds(two.ms)} = ${two.perMinute.toFixed(1)} builds/min (${two.byWorker.join(', ')}; ${two.packed} layers packed); one worker ${seconds(one.ms)} = ${one.perMinute.toFixed(1)} builds/min (${one.byWorker[0]}; ${one.packed} layers packed); ×${(two.perMinute / one.perMinute).toFixed(2)} with the second worker on 2 cores`);
    } finally {
      redis.disconnect();
    }
    await assertStorageSound(storage);
  });

  test('a worker host cut off in the middle of a build with a pull waiting: another worker answers the pull within 20 s; back, the host publishes nothing twice and corrupts nothing', { timeout: 150_000 }, async (t) => {
    const system: System = 'x86_64-linux';
    const queue = new Queue(buildQueueName(system), { connection: sentinelConnection(farm) });
    queue.on('error', () => {});
    const redis = new Redis(sentinelConnection(farm));
    redis.on('error', () => {});
    t.after(async () => {
      redis.disconnect();
      await queue.close().catch(() => {});
    });
    const storage = farmStorage(farm);

    const waiting = registryRequest(farm.registry, `/v2/${SLOW_CUT}/manifests/latest`, { headers: { Accept: OCI_IMAGE_MANIFEST } });
    // In the middle: a worker runs the job, with Nix's builder running under it.
    const held = await waitFor(`${SLOW_CUT} building`, async () => {
      const job = (await queue.getJobs(['active'])).find((j) => (j.data as { packages?: string[] }).packages?.[0] === SLOW_CUT);
      const pid = Number(/:(\d+):[0-9a-f]{8}$/.exec(job?.processedBy ?? '')?.[1]);
      const holder = X86_WORKERS.map((w) => farm.process(w)).find((p) => p.pid === pid);
      if (!job || !holder || !descendants(pid).some((p) => p.cmdline.includes(`releases/${SLOW_CUT}`))) return undefined;
      return { job, holder };
    }, 60_000);
    const other = X86_WORKERS.map((w) => farm.process(w)).find((p) => p.name !== held.holder.name)!;
    const holderLog = readFileSync(held.holder.log, 'utf8').length;

    farm.cutLink(held.holder.host);
    const cutAt = Date.now();
    let restoredAt: number | undefined;
    try {
      slow.release(SLOW_CUT); // the build ends at once wherever it runs now
      const answer = await waiting;
      const answeredMs = answer.at + answer.ms - cutAt;
      assert.equal(answer.status, 200, answer.body.toString('utf8'));
      const job = (await queue.getJob(held.job.id!))!;
      assert.equal(await job.getState(), 'completed');
      assert.equal(job.processedBy?.split(':')[1], String(other.pid), `the job was finished by ${other.name}, not by ${job.processedBy}`);
      assert.equal((job.returnvalue as { manifestDigest: string }).manifestDigest, answer.digest);
      const events = (await queueEvents(redis, system)).filter((e) => e.jobId === job.id);
      const takenOver = events.find((e) => e.event === 'active' && e.at >= cutAt);
      console.log(`worker host ${held.holder.host} cut mid-build: job taken over by ${other.name} ${takenOver ? seconds(takenOver.at - cutAt) : '?'} after the cut (worst case by the stall timings ${seconds(WORST_CASE_TAKEOVER_MS)}), the waiting pull answered 200 ${seconds(answeredMs)} after the cut`);
      assert.ok(answeredMs <= 20_000, `the pull was answered ${answeredMs} ms after the cut`);
      const pulled = await pullImage(farm.registry, SLOW_CUT, system);
      assert.equal(pulled.manifestDigest, answer.digest);

      const record = await readManifestRecord(storage, job.data.imageKey);
      const blobs = await blobDigests(storage);
      farm.restoreLink(held.holder.host);
      restoredAt = Date.now();

      // The cut worker finishes its own run once it reaches Redis again (its completion is refused).
      const finished = await waitFor(`${held.holder.name} to end its run of the job`, () => {
        const line = readFileSync(held.holder.log, 'utf8').slice(holderLog).split('\n').find((l) => l.includes(job.id!) && /"msg":"build (finished|failed|crashed)"/.test(l));
        return line ? (JSON.parse(line) as { time: number; msg: string }) : undefined;
      }, 60_000, 200);
      await sleep(2_000); // and whatever it does after its processor returns
      const eventsAfter = (await queueEvents(redis, system)).filter((e) => e.jobId === job.id);
      const recordAfter = await readManifestRecord(storage, job.data.imageKey);
      const blobsAfter = await blobDigests(storage);
      console.log(`the cut worker, back ${seconds(finished.time - restoredAt)} after the link, ended its own run: "${finished.msg}"; the job's events: ${eventsAfter.map((e) => e.event).join(' ')}; manifest record ${recordAfter?.createdAt === record?.createdAt ? 'untouched' : `rewritten with the same digests (createdAt ${record?.createdAt} → ${recordAfter?.createdAt})`}`);
      assert.equal(eventsAfter.filter((e) => e.event === 'completed').length, 1, 'the job completed once');
      assert.deepEqual(recordAfter?.manifests, record?.manifests, 'the image is the one published first');
      assert.deepEqual([...blobsAfter].filter((d) => !blobs.has(d)), [], 'no blob was published again under another digest');
      assert.equal((await pullImage(farm.registry, SLOW_CUT, system)).manifestDigest, answer.digest);
      await farm.waitReady(held.holder.name, 30_000);
    } finally {
      if (restoredAt === undefined) farm.restoreLink(held.holder.host);
    }
    await assertStorageSound(storage);
  });

  /** What case 5 measured, for case 6's requirement. */
  let apiCut: { cutAt: number; restoredAt: number; noticedAt: number; pulls: RetriedPull[] } | undefined;

  test('an API host cut off under load: skopeo-like clients keep pulling, none fails, and the proxy sends to the host again once it is back', { timeout: 150_000 }, async () => {
    const api1 = farm.process('api-1');
    const images = BATCH.flatMap((name) => SYSTEMS.map((system) => ({ name, system })));
    const CLIENTS = 8;
    const agent = keepAliveAgent(CLIENTS);
    const pulls: RetriedPull[] = [];
    let stopped = false;
    let next = 0;
    const loops = Array.from({ length: CLIENTS }, async () => {
      while (!stopped) {
        const image = images[next++ % images.length]!;
        // No timeout of its own, as skopeo has none: a pull waits as long as the proxy does.
        pulls.push(await pullWithRetries(farm.registry, image.name, image.system, { agent }));
      }
    });
    let cutAt = 0;
    let restoredAt = 0;
    try {
      await sleep(3_000);
      farm.cutLink(api1.host);
      cutAt = Date.now();
      await sleep(API_CUT_MS);
      farm.restoreLink(api1.host);
      restoredAt = Date.now();
      // Until the proxy sends to api-1 again (its fail_timeout is 10 s).
      const servedBefore = total(await scrape(metricsUrl(farm, 'api-1')), 'nixyard_http_requests_total', { route: 'blob' });
      await waitFor('api-1 to serve pulls again', async () => (total(await scrape(metricsUrl(farm, 'api-1')), 'nixyard_http_requests_total', { route: 'blob' }) > servedBefore + 10 ? true : undefined), 30_000, 500);
    } finally {
      stopped = true;
      if (cutAt > 0 && restoredAt === 0) farm.restoreLink(api1.host);
      await Promise.all(loops);
      agent.destroy();
    }
    const backMs = Date.now() - restoredAt;

    // The proxy notices api-1 is gone with its first error about it (a connect timeout after
    // proxy_connect_timeout, 5 s, or a connection that fails); nginx logs whole seconds, so the
    // notice is taken at the end of the second of that line.
    const errors = proxyErrors(farm, cutAt).filter((l) => l.text.includes(`${api1.address}:${api1.port}`));
    const noticedAt = errors.length > 0 ? errors[0]!.at + 1_000 : Infinity;
    apiCut = { cutAt, restoredAt, noticedAt, pulls };
    const ended = (p: RetriedPull) => p.at + p.ms;
    const inFlight = pulls.filter((p) => p.at < cutAt && ended(p) > cutAt);
    const duringCut = pulls.filter((p) => ended(p) > cutAt + 10_000 && ended(p) <= restoredAt);
    const afterNotice = pulls.filter((p) => p.at >= noticedAt && p.at < restoredAt);
    const failed = (list: RetriedPull[]) => list.filter((p) => !p.image);
    const slowest = (list: RetriedPull[]) => (list.length === 0 ? 0 : Math.max(...list.map((p) => p.ms)));
    const line = errors[0]?.text.replace(/^.*\] \d+#\d+: \*\d+ /, '').replace(/, client:.*$/, '');
    console.log(`API host cut for ${seconds(restoredAt - cutAt)} under ${CLIENTS} skopeo-like clients: the proxy's first error about api-1 ${noticedAt === Infinity ? 'never came' : `${seconds(noticedAt - cutAt)} after the cut (${line})`}`);
    console.log(`pulls: ${pulls.length} in all, ${failed(pulls).length} failed; in flight at the cut ${inFlight.length} (slowest ${seconds(slowest(inFlight))}, ${inFlight.filter((p) => ended(p) >= restoredAt).length} ended only after the link came back); finished from 10 s after the cut until the link came back: ${duringCut.length}; started after the notice while the link was down: ${afterNotice.length} (${failed(afterNotice).length} failed, ${afterNotice.filter((p) => p.ms >= 4_500).length} waited a connect timeout, slowest ${seconds(slowest(afterNotice))}); api-1 served again ${seconds(backMs)} after its link came back`);

    assert.deepEqual(failed(pulls).map((p) => p.failures), [], 'no pull failed (with skopeo’s retries)');
    await assertStorageSound(farmStorage(farm));
  });

  test('an API host cut off under load: the proxy routes around it within 20 s, and no pull fails once it has noticed', () => {
    assert.ok(apiCut, 'the case before measured the cut');
    const { cutAt, restoredAt, noticedAt, pulls } = apiCut;
    assert.ok(noticedAt < restoredAt, 'the proxy noticed api-1 was gone while its link was down');
    const routedAround = pulls.filter((p) => p.image && p.at >= cutAt + 20_000 && p.at + p.ms <= restoredAt);
    assert.ok(routedAround.length >= 20, `pulls that started 20 s after the cut and finished while api-1 was still cut off: ${routedAround.length}`);
    assert.deepEqual(pulls.filter((p) => p.at >= noticedAt && !p.image).map((p) => p.failures), [], 'no pull failed after the proxy noticed');
    const stalled = pulls.filter((p) => p.ms > 20_000);
    assert.deepEqual(stalled.map((p) => `${p.name} ${p.system} from ${Math.round(p.at - cutAt)} ms after the cut took ${Math.round(p.ms)} ms`), [], 'no pull waited on the cut replica longer than 20 s');
  });

  /** What case 7 measured of prebuild submissions, for case 8's requirement. */
  let redisCut: { cutAt: number; submitRecovery: number; failures: Array<{ at: number; status: number; error?: string }> } | undefined;

  test('the Redis primary’s host cut off under warm and cold load: Sentinel promotes the replica, warm pulls never stop, cold pulls succeed again within 30 s, queued jobs complete once, no batch is lost', { timeout: 300_000 }, async () => {
    const oldPrimary = `${farm.process('redis-a').address}:${farm.process('redis-a').port}`;
    const replica = `${farm.process('redis-b').address}:${farm.process('redis-b').port}`;
    assert.equal(await primaryAccordingTo(farm, 'sentinel-c'), oldPrimary);
    const warmImage = { name: BATCH[0]!, system: 'x86_64-linux' as System };
    const warmDigest = (await pullImage(farm.registry, warmImage.name, warmImage.system)).manifestDigest;
    const warmManifest = JSON.parse((await registryRequest(farm.registry, `/v2/${warmImage.name}/manifests/${warmDigest}`)).body.toString('utf8')) as { layers: Array<{ digest: string; size: number }> };
    const warmLayer = [...warmManifest.layers].sort((a, b) => a.size - b.size)[0]!.digest;

    // Warm load: manifests by tag and a layer, over keep-alive connections.
    let stopped = false;
    const warm: Array<{ at: number; ms: number; status: number; error?: string }> = [];
    const warmAgent = keepAliveAgent(4);
    const warmLoops = Array.from({ length: 4 }, async (_, i) => {
      for (let n = i; !stopped; n++) {
        const path = n % 2 === 0 ? `/v2/${warmImage.name}/manifests/latest` : `/v2/${warmImage.name}/blobs/${warmLayer}`;
        const at = Date.now();
        try {
          const answer = await registryRequest(farm.registry, path, { agent: warmAgent, headers: { Accept: `${OCI_IMAGE_INDEX}, ${OCI_IMAGE_MANIFEST}` }, idleTimeoutMs: 10_000, discardBody: true });
          warm.push({ at, ms: answer.ms, status: answer.status });
        } catch (err) {
          warm.push({ at, ms: (err as NoAnswer).ms ?? Date.now() - at, status: 0, error: (err as Error).message });
        }
        await sleep(10);
      }
    });

    // Jobs queued before the cut: a batch whose builds hold every worker until released.
    const held = await admin.submitted(SLOW_REDIS, 'farm-test: held over the cut');
    const queued = new Set(held.images.map((i) => i.imageKey));
    await waitFor('every worker building a held image', async () => {
      const b = (await admin.batch(held.id)).batch;
      return b && b.counts.building === 3 ? true : undefined;
    }, 60_000, 200);

    // Cold load: a new image pulled every second; a new one-image batch submitted every 2 s.
    interface Sample { at: number; end: number; ok: boolean; status: number; error?: string; name: string }
    const cold: Sample[] = [];
    const submissions: Sample[] = [];
    const accepted: Array<{ id: string; at: number }> = [];
    const inFlight: Array<Promise<unknown>> = [];
    let fresh = 0;
    const coldLoop = (async () => {
      while (!stopped && fresh < FRESH.length) {
        const name = FRESH[fresh++]!;
        const at = Date.now();
        inFlight.push(
          registryRequest(farm.registry, `/v2/${name}/manifests/latest`, { headers: { Accept: OCI_IMAGE_MANIFEST }, idleTimeoutMs: 90_000 })
            .then((a) => cold.push({ at, end: a.at + a.ms, ok: a.status === 200, status: a.status, name, ...(a.status === 200 ? {} : { error: a.body.toString('utf8').slice(0, 200) }) }))
            .catch((err: Error) => cold.push({ at, end: Date.now(), ok: false, status: 0, error: err.message, name })),
        );
        await sleep(1_000);
      }
    })();
    let submitted = 0;
    const submitLoop = (async () => {
      while (!stopped && submitted < FRESH.length) {
        const name = `arm64/${FRESH[FRESH.length - 1 - submitted++]!}`;
        const at = Date.now();
        inFlight.push(
          admin
            .submit([name], 'farm-test: during the Redis cut', { idleTimeoutMs: 10_000 })
            .then((a) => {
              if (a.status === 202) accepted.push({ id: (JSON.parse(a.body.toString('utf8')) as { id: string }).id, at });
              submissions.push({ at, end: a.at + a.ms, ok: a.status === 202, status: a.status, name, ...(a.status === 202 ? {} : { error: a.body.toString('utf8').slice(0, 200) }) });
            })
            .catch((err: Error) => submissions.push({ at, end: Date.now(), ok: false, status: 0, error: err.message, name })),
        );
        await sleep(2_000);
      }
    })();

    await sleep(3_000);
    farm.cutLink('redis-a');
    const cutAt = Date.now();
    let restoredAt = 0;
    let promotedAt = 0;
    try {
      promotedAt = await waitFor('the Sentinels to promote the replica', async () => ((await primaryAccordingTo(farm, 'sentinel-c')) === replica ? Date.now() : undefined), 30_000, 100);
      await sleep(1_000);
      for (const name of SLOW_REDIS) slow.release(name);
      await sleep(Math.max(0, cutAt + REDIS_WATCH_MS - Date.now()));
      stopped = true;
      await Promise.all([coldLoop, submitLoop, ...warmLoops]);
      await Promise.all(inFlight);
      warmAgent.destroy();
    } finally {
      stopped = true;
      for (const name of SLOW_REDIS) slow.release(name);
      farm.restoreLink('redis-a');
      restoredAt = Date.now();
    }
    // The old primary, back on the network, is made a replica of the new one by the Sentinels.
    const firstLook = await replicationOf(oldPrimary).catch((err: Error) => ({ role: `unreadable (${err.message})` }));
    const demotedAt = await waitFor('the old primary to become a replica', async () => {
      const r = await replicationOf(oldPrimary);
      return r.role === 'slave' && r.primary === replica && r.linkUp ? Date.now() : undefined;
    }, 60_000, 200);

    // Recovery: the first moment from which every request started succeeded.
    const recovery = (samples: Sample[]) => {
      const lastFailure = samples.filter((s) => !s.ok && s.at >= cutAt).sort((a, b) => b.at - a.at)[0];
      if (!lastFailure) return 0;
      const next = samples.filter((s) => s.at > lastFailure.at).sort((a, b) => a.at - b.at)[0];
      return next ? next.at - cutAt : Infinity;
    };
    const summarize = (samples: Sample[]) => {
      const after = samples.filter((s) => s.at >= cutAt);
      const codes = new Map<string, number>();
      for (const s of after.filter((x) => !x.ok)) {
        const why = s.status === 0 ? (s.error ?? '?').replace(/^.*: /, '') : String(s.status);
        codes.set(why, (codes.get(why) ?? 0) + 1);
      }
      return `${after.length} after the cut, ${after.filter((s) => !s.ok).length} failed (${[...codes].map(([k, n]) => `${n}× ${k}`).join(', ') || 'none'})`;
    };
    const coldRecovery = recovery(cold);
    const submitRecovery = recovery(submissions);
    const during = warm.filter((w) => w.at >= cutAt && w.at <= cutAt + REDIS_WATCH_MS);
    let gap = 0;
    const ends = during.map((w) => w.at + w.ms).sort((a, b) => a - b);
    for (let i = 1; i < ends.length; i++) gap = Math.max(gap, ends[i]! - ends[i - 1]!);
    console.log(`Redis primary host cut: Sentinel promoted the replica ${seconds(promotedAt - cutAt)} after the cut`);
    console.log(`warm pulls during the ${REDIS_WATCH_MS / 1000} s after the cut: ${during.length} requests, ${during.filter((w) => w.status !== 200).length} not 200, slowest ${during.length ? Math.max(...during.map((w) => w.ms)).toFixed(0) : '?'} ms, longest pause between answers ${Math.round(gap)} ms`);
    console.log(`cold pulls: ${summarize(cold)}; every cold pull started ${seconds(coldRecovery)} or more after the cut succeeded`);
    console.log(`prebuild submissions: ${summarize(submissions)}; every submission started ${seconds(submitRecovery)} or more after the cut succeeded`);
    console.log(`the old primary, its link back: ${firstLook.role === 'master' ? 'still a primary at first (its own Sentinel was cut off with it), ' : ''}a replica of the new primary ${seconds(demotedAt - restoredAt)} after its link came back`);

    // Jobs queued before the cut: every one completes, once.
    const primary = directRedis(replica);
    try {
      const open = (events: JobEvent[]) => {
        const before = events.filter((e) => e.at < cutAt);
        const last = before[before.length - 1];
        return last !== undefined && !['completed', 'failed', 'removed'].includes(last.event);
      };
      const settledBatches = await Promise.all([held.id, ...accepted.map((a) => a.id)].map((id) => admin.settled(id, 120_000)));
      const problems: string[] = [];
      let jobsBefore = 0;
      let runTwice = 0;
      for (const system of SYSTEMS) {
        const byJob = eventsByJob(await queueEvents(primary, system));
        for (const [jobId, events] of byJob) {
          if (!open(events)) continue;
          jobsBefore++;
          queued.delete(jobId);
          const completed = events.filter((e) => e.event === 'completed').length;
          const failedEvents = events.filter((e) => e.event === 'failed').length;
          if (events.some((e) => e.event === 'stalled')) runTwice++;
          if (completed !== 1 || failedEvents !== 0) problems.push(`${system} job ${jobId.slice(0, 12)}: ${events.map((e) => e.event).join(' ')}`);
        }
      }
      console.log(`jobs queued before the cut: ${jobsBefore}, each completed once; ${runTwice} of them were taken over after the failover (their lock lapsed), so built twice`);
      assert.deepEqual([...queued].map((k) => k.slice(0, 12)), [], 'every held job is among those queued before the cut');
      assert.deepEqual(problems, [], 'every job queued before the cut completed exactly once');
      const lost = settledBatches.filter((b) => b.counts.built + b.counts.cached !== b.total);
      console.log(`prebuild batches: ${settledBatches.length} accepted (1 before the cut, ${accepted.filter((a) => a.at >= cutAt).length} after), every one found and settled with every image available`);
      assert.deepEqual(lost.map((b) => `${b.id} ${JSON.stringify(b.counts)}`), [], 'no batch lost an image');
      const listed = new Set((JSON.parse((await registryRequest(farm.registry, '/api/v1/prebuilds', { headers: { Authorization: `Bearer ${farm.adminToken}` } })).body.toString('utf8')) as { batches: Array<{ id: string }> }).batches.map((b) => b.id));
      for (const b of settledBatches) assert.ok(listed.has(b.id), `batch ${b.id} is listed`);
    } finally {
      primary.disconnect();
    }

    assert.ok(promotedAt - cutAt <= 15_000, `promoted ${promotedAt - cutAt} ms after the cut`);
    assert.ok(during.length >= 200, `warm requests during the outage: ${during.length}`);
    assert.deepEqual(during.filter((w) => w.status !== 200), [], 'every warm pull answered 200');
    assert.ok(gap <= 1_000, `warm pulls paused for ${gap} ms`);
    assert.ok(cold.some((s) => s.at >= cutAt + 30_000) && submissions.some((s) => s.at >= cutAt + 30_000), 'cold pulls and submissions were tried 30 s after the cut');
    assert.ok(coldRecovery <= 30_000, `cold pulls failed until ${coldRecovery} ms after the cut: ${JSON.stringify(cold.filter((s) => !s.ok).slice(-3))}`);
    assert.ok(submissions.some((s) => s.ok && s.at >= cutAt + 30_000), 'prebuild submissions are accepted again after the failover');
    redisCut = { cutAt, submitRecovery, failures: submissions.filter((s) => !s.ok && s.at >= cutAt) };
    await assertStorageSound(farmStorage(farm));
  });

  test('the Redis primary’s host cut off: prebuild submissions succeed again within 30 s', () => {
    assert.ok(redisCut, 'the case before measured the cut');
    const last = redisCut.failures.sort((a, b) => b.at - a.at)[0];
    assert.ok(redisCut.submitRecovery <= 30_000, `submissions failed until ${seconds(redisCut.submitRecovery)} after the cut (the last: started ${last ? seconds(last.at - redisCut.cutAt) : '?'} after it, ${last?.status === 0 ? last.error : last?.status})`);
  });
});

