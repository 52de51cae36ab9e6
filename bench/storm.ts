// npm run bench:storm — whether warm pulls stay fast while a storm of cold builds hits the farm,
// and what admission control (NIXYARD_MAX_QUEUED_BUILDS) makes of the storm.
//
// Each round starts, on free loopback ports with temp storage of its own: a private redis-server,
// the API (compiled, `node apps/api/dist/main.js`, when `npm run build` is current, else its
// sources through tsx: the bench builds nothing; LOG_LEVEL=info, NIXYARD_MAX_BUILDS_PER_CLIENT=0
// since every request comes from 127.0.0.1) and workers on the bundled offline set, sparing one
// CPU to serving as `npm start` and the compose file have them (NIXYARD_WORKER_SPARE_CPUS=1;
// `--spare-cpus 0` shows the workers on every CPU). It builds one warm image (`hello`), then:
//   1. idle: warm pulls of its manifest (by tag) and of its smallest layer for a few seconds,
//      after as long again unmeasured, so that idle is the steady state and not V8 compiling the
//      API's code paths (which made idle p99 look worse, and the ratio better, than they are);
//   2. the storm: 60 distinct cold images (pairs of bundled packages) pulled at once, while the
//      same warm load runs until every admitted build has answered (it starts WARM_LEAD_MS
//      before the storm, so that starting wrk is not part of it);
//   3. idle again, as long as the first. The round's idle figure is whichever of the two has the
//      lower p99: interference from outside the bench (this machine's neighbours) only ever
//      raises a p99, and one idle window that caught some would flatter the ratio.
// The warm load is wrk with bench/storm-warm.lua (one thread, a few keep-alive connections, each
// asking for the manifest and the layer in turn with a short pause: a modest, steady load), a C
// client as in bench:serve. The client shares the cores with all it measures, and Node's http
// client, which this bench used before, spent about as much CPU per request as the API does.
// It prints, per round and as median [min–max] over the rounds: warm p50/p99 idle and during the
// storm, the goal "warm p99 during the storm <= 2x idle p99" with pass/FAIL, the 429 refusals
// counted from the answers and by nixyard_admission_refusals_total, the builds admitted, and the
// time until every admitted build had answered. The Nix store is made warm first (every package
// is nix-built once), so a storm's builds resolve, graph, layer and pack, and every round sees
// the same work. This process reads the queue's depth from Redis itself during the storm, so the
// API serves nothing but the pulls. The storm is fired by curl (storm-burst.ts), started before
// the idle phase.
//
// Two reference loads follow each round's storm, for reading its figures: the same warm load while
// the CPUs the workers build on run a loop of their own and no builds, first a busy loop that makes
// no system calls, then a shell starting /bin/true over and over. On a virtual machine, a vCPU
// that starts processes can slow its neighbours (docs/operations.md, "Builds yield to serving");
// the second figure is what any process-starting work on the build CPUs costs warm pulls there,
// whatever Nixyard does.
//
// `npm run bench:storm` runs this process with --no-memory-reducer: V8 otherwise shrinks an idle
// heap with full collections, and this process idles through the storm while it waits for curl.
// Its collections took ~100 ms of CPU in the storm's window, on the core that serves the pulls.
//
//   npm run bench:storm                          5 rounds, about 2.5 minutes on 2 cores
//   npm run bench:storm -- --rounds 1
//   npm run bench:storm -- --builds 60 --max-queued 20 --workers 2 --spare-cpus 1 --idle-seconds 4

import { execFileSync, spawn } from 'node:child_process';
import { parseArgs } from 'node:util';
import { Queue } from 'bullmq';
import { buildQueueName, redisConnectionOptions } from '@nixyard/core';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildProblem, freePort, startRedis, startRole, waitForHttp, type Started } from '../scripts/stack.js';
import { withOfflineNixConfig } from '../scripts/offline-nix.js';
import { BUNDLED_SET, prepareBundledSet } from '../test/helpers/bundled-set.js';
import { parseCpuList } from '../apps/worker/src/build-cpus.js';
import { startBurst } from './storm-burst.js';
import { startWrk, type WrkReport } from './wrk.js';
import {
  pullManifest,
  sampleValue,
  smallestLayer,
  startApiReplica,
  timedRequest,
} from '../test/chaos/api-replicas.js';

// ---------------------------------------------------------------------------------------------
// Options

const USAGE = 'usage: npm run bench:storm -- [--rounds N] [--builds N] [--max-queued N] [--workers N] [--spare-cpus N] [--idle-seconds N]';
function usage(problem: string): never {
  console.error(`bench:storm: ${problem}\n${USAGE}`);
  process.exit(2);
}
let flags: Record<string, string | undefined>;
try {
  ({ values: flags } = parseArgs({
    options: { rounds: { type: 'string' }, builds: { type: 'string' }, 'max-queued': { type: 'string' }, workers: { type: 'string' }, 'spare-cpus': { type: 'string' }, 'idle-seconds': { type: 'string' } },
  }));
} catch (err) {
  usage((err as Error).message);
}
function option(name: string, fallback: number, min = 1): number {
  const raw = flags[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) usage(`--${name} takes a whole number >= ${min}`);
  return value;
}
const ROUNDS = option('rounds', 5);
const BUILDS = option('builds', 60);
const MAX_QUEUED = option('max-queued', 20);
const WORKERS = option('workers', 2);
/** NIXYARD_WORKER_SPARE_CPUS of every worker: as `npm start` and the compose file set it. */
const SPARE_CPUS = option('spare-cpus', 1, 0);
/** Seconds of warm pulls measured idle; as many go first, unmeasured. */
const IDLE_SECONDS = option('idle-seconds', 4);
/** wrk's connections, each pausing PAUSE_MS between requests. */
const CONNECTIONS = 4;
const PAUSE_MS = 2;
const WARM_SCRIPT = join(import.meta.dirname, 'storm-warm.lua');
const WARM = 'hello';
/** How long the storm's warm load runs before the storm is fired. */
const WARM_LEAD_MS = 100;
const GOAL_RATIO = 2;

/** Bundled packages whose pairs name the storm's images (the bundled set has no others this small). */
const PACKAGES = ['jq', 'nano', 'bash', 'busybox', 'coreutils', 'moreutils', 'zlib', 'openssl', 'gmp', 'libffi', 'zstd', 'acl', 'attr'];
const COLD_NAMES = PACKAGES.flatMap((a, i) => PACKAGES.slice(i + 1).map((b) => `${a}/${b}`)).slice(0, BUILDS);
if (COLD_NAMES.length < BUILDS) usage(`--builds: at most ${COLD_NAMES.length} distinct images`);

// ---------------------------------------------------------------------------------------------
// Processes and clean-up (also on Ctrl-C)

const cleanups: Array<() => Promise<void> | void> = [];
async function cleanUp(): Promise<void> {
  for (const step of cleanups.splice(0).reverse()) {
    try {
      await step();
    } catch (err) {
      console.error(`bench:storm: clean-up: ${(err as Error).message}`);
    }
  }
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    console.error(`\nbench:storm: ${signal}, stopping everything`);
    void cleanUp().finally(() => process.exit(130));
  });
}

function track(started: Started): Started {
  cleanups.push(() => started.stop(5_000));
  return started;
}

// ---------------------------------------------------------------------------------------------
// One round

interface Round {
  /** The idle window with the lower p99 (see the top of the file). */
  idle: WrkReport;
  idleBefore: WrkReport;
  idleAfter: WrkReport;
  storm: WrkReport;
  refusedAnswers: number;
  refusedCounted: number;
  admitted: number;
  /** Answers other than 200 and 429 (builds that failed, 503s). */
  failed: string[];
  /** From the storm's first request to the last admitted build's answer. */
  stormMs: number;
  /** The largest number of builds waiting at once, sampled from /metrics during the storm. */
  peakWaiting: number;
  /** The warm load, no builds, with a busy loop on each build CPU; then with a loop starting processes there. */
  busyLoop: WrkReport;
  spawnLoop: WrkReport;
}

async function round(n: number, compiled: boolean): Promise<Round> {
  const dir = mkdtempSync(join(tmpdir(), 'nixyard-bench-storm-'));
  const roundCleanups = cleanups.length;
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  try {
    const redis = await startRedis(join(dir, 'redis'));
    track(redis);
    const env = withOfflineNixConfig({
      ...process.env,
      REDIS_URL: redis.url,
      STORAGE_PATH: join(dir, 'storage'),
      NIXERY_PKGS_PATH: BUNDLED_SET,
      NIX_TIMEOUT: '600',
      LOG_LEVEL: 'info',
      NIXYARD_MAX_QUEUED_BUILDS: String(MAX_QUEUED),
      NIXYARD_MAX_BUILDS_PER_CLIENT: '0',
      NIXYARD_WORKER_SPARE_CPUS: String(SPARE_CPUS),
    });
    const api = await startApiReplica(env, {}, { compiled, quiet: true });
    cleanups.push(() => api.stop());
    const workers = await Promise.all(
      Array.from({ length: WORKERS }, async () => {
        const metricsPort = await freePort();
        const worker = track(startRole('worker', { env: { ...env, NIXYARD_WORKER_METRICS_PORT: String(metricsPort) }, stdio: 'ignore', compiled }));
        await waitForHttp(`http://127.0.0.1:${metricsPort}/metrics`, 60_000, worker.child);
        return worker;
      }),
    );

    const built = await pullManifest(api.host, WARM);
    if (built.status !== 200) throw new Error(`the warm image did not build: ${built.status} ${built.body.toString()}`);
    const warmLoad = (seconds: number) => {
      const run = startWrk([
        '-t', '1', '-c', String(CONNECTIONS), '-d', `${seconds}s`, '--timeout', '10s', '-s', WARM_SCRIPT, `http://${api.host}`,
        '--', `/v2/${WARM}/manifests/latest`, `/v2/${WARM}/blobs/${smallestLayer(built.body)}`, String(PAUSE_MS),
      ]);
      cleanups.push(run.kill);
      return run;
    };
    // The API's Redis side is loaded by the first scrape, not by the storm.
    await timedRequest(api.host, '/metrics');

    const burst = startBurst(api.host, COLD_NAMES, mkdtempSync(join(dir, 'burst-')));
    // The queue's depth is read from Redis by this process, not from the API's /metrics: the API
    // serves only the pulls. Connected now: connecting (and loading BullMQ's scripts) at the storm
    // took this process tens of milliseconds of CPU in the storm's first moments.
    const queue = new Queue(buildQueueName('x86_64-linux'), { connection: redisConnectionOptions(redis.url) });
    cleanups.push(() => queue.close());
    await queue.getJobCounts('waiting');
    cleanups.push(() => burst.stop());

    await warmLoad(IDLE_SECONDS).report; // not measured: V8 compiles the API's code paths first
    const idleBefore = await warmLoad(IDLE_SECONDS).report;

    // Until the storm is over (interrupted then; the duration is only a backstop). Started a moment
    // before the storm, so that starting wrk is not part of it.
    const load = warmLoad(600);
    await new Promise((resolve) => setTimeout(resolve, WARM_LEAD_MS));
    let peakWaiting = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const counts = await queue.getJobCounts('waiting', 'prioritized');
        peakWaiting = Math.max(peakWaiting, (counts.waiting ?? 0) + (counts.prioritized ?? 0));
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
    const fired = performance.now();
    const answers = await burst.fire();
    const stormEnd = performance.now();
    sampling = false;
    await sampler;
    load.interrupt();
    const storm = await load.report;
    const idleAfter = await warmLoad(IDLE_SECONDS).report;
    const idle = idleAfter.p99Us < idleBefore.p99Us ? idleAfter : idleBefore;
    // A started worker has confined itself to the CPUs it builds on (NIXYARD_WORKER_SPARE_CPUS).
    const buildCpus = cpusAllowed(workers[0]!.child.pid!);
    const busyLoop = await withLoops(BUSY_LOOP, buildCpus, () => warmLoad(IDLE_SECONDS).report);
    const spawnLoop = await withLoops(SPAWN_LOOP, buildCpus, () => warmLoad(IDLE_SECONDS).report);

    const text = (await timedRequest(api.host, '/metrics', {}, 'GET', false)).body.toString();
    const refused = answers.filter((a) => a.status === 429);
    const failed = answers.flatMap((a, i) => (a.status === 200 || a.status === 429 ? [] : [`${COLD_NAMES[i]}: ${a.status || 'no answer'} ${a.code ?? ''}`]));
    const result: Round = {
      idle,
      idleBefore,
      idleAfter,
      storm,
      refusedAnswers: refused.length,
      refusedCounted: sampleValue(text, 'nixyard_admission_refusals_total{reason="queue_full"}') ?? NaN,
      admitted: answers.length - refused.length,
      failed,
      stormMs: stormEnd - fired,
      peakWaiting,
      busyLoop,
      spawnLoop,
    };
    console.log(
      `round ${n}: idle ${describe(idleBefore)}, after the storm ${describe(idleAfter)}; storm ${describe(storm)}; ${result.refusedAnswers} refused (429), ${result.admitted} admitted, ` +
        `peak waiting ${peakWaiting}, storm over after ${(result.stormMs / 1000).toFixed(1)} s${failed.length ? `; FAILED pulls: ${failed.join('; ')}` : ''}; ` +
        `no builds, CPU ${buildCpus.join(',')} in a busy loop: ${describe(busyLoop)}; starting processes: ${describe(spawnLoop)}`,
    );
    return result;
  } finally {
    for (const step of cleanups.splice(roundCleanups).reverse()) {
      try {
        await step();
      } catch (err) {
        console.error(`bench:storm: clean-up: ${(err as Error).message}`);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The reference loads (see the top of the file): constant shell programs, nothing put into them.

const BUSY_LOOP = 'while :; do :; done';
const SPAWN_LOOP = 'while :; do /bin/true; done';

/** The CPUs process `pid` may run on. */
function cpusAllowed(pid: number): number[] {
  const line = /^Cpus_allowed_list:\s*(.+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!line) throw new Error(`/proc/${pid}/status has no Cpus_allowed_list`);
  return parseCpuList(line[1]!);
}

/** Runs `measure` while one `sh -c loop` per CPU of `cpus` runs there. */
async function withLoops<T>(loop: string, cpus: readonly number[], measure: () => Promise<T>): Promise<T> {
  const loops = cpus.map((cpu) => spawn('taskset', ['--cpu-list', String(cpu), 'sh', '-c', loop], { stdio: 'ignore' }));
  try {
    await new Promise((resolve) => setTimeout(resolve, 200));
    return await measure();
  } finally {
    // taskset execs sh, so this is the loop itself; a /bin/true it started ends on its own.
    for (const child of loops) child.kill('SIGKILL');
  }
}

/** Warm requests that failed: an answer other than 2xx/3xx, a socket error or a timeout. */
const failures = (r: WrkReport) => r.statusErrors + r.connectErrors + r.readErrors + r.writeErrors + r.timeouts;
const ms = (us: number) => us / 1000;

function describe(r: WrkReport): string {
  const bad = failures(r);
  return `${r.requests} warm requests${bad ? ` (${bad} FAILED)` : ''}, p50 ${fmt(ms(r.p50Us))} ms, p99 ${fmt(ms(r.p99Us))} ms, max ${fmt(ms(r.maxUs), 1)} ms`;
}

// ---------------------------------------------------------------------------------------------
// Report

const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
function fmt(x: number, digits = 2): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '–';
}
function spread(xs: number[], digits = 2): string {
  if (xs.length < 2) return fmt(xs[0] ?? NaN, digits);
  return `${fmt(median(xs), digits)} [${fmt(Math.min(...xs), digits)}–${fmt(Math.max(...xs), digits)}]`;
}

async function main(): Promise<void> {
  const begun = performance.now();
  if (!process.execArgv.includes('--no-memory-reducer')) console.error('bench:storm: not run by `npm run bench:storm`: without --no-memory-reducer, this process collects garbage during the storm (see the top of bench/storm.ts)');
  const load = loadavg()[0]!;
  prepareBundledSet();
  const problem = buildProblem();
  const compiled = problem === undefined;
  if (!compiled) console.error(`bench:storm: no current compiled roles (${problem}); running the sources through tsx`);
  // A warm Nix store: the storm's builds do the same work in every round.
  execFileSync('nix-build', ['--no-out-link', BUNDLED_SET, ...[WARM, ...PACKAGES].flatMap((a) => ['-A', a])], {
    env: withOfflineNixConfig(process.env),
    stdio: ['ignore', 'ignore', 'inherit'],
  });

  const rounds: Round[] = [];
  for (let n = 1; n <= ROUNDS; n++) rounds.push(await round(n, compiled));

  const pick = (f: (r: Round) => number) => rounds.map(f);
  const ratios = pick((r) => r.storm.p99Us / r.idle.p99Us);
  const pass = median(ratios) <= GOAL_RATIO && rounds.every((r) => failures(r.idleBefore) + failures(r.idleAfter) + failures(r.storm) === 0);
  const againstIdle = (f: (r: Round) => WrkReport) => `${spread(pick((r) => ms(f(r).p99Us)))}, ${spread(pick((r) => f(r).p99Us / r.idle.p99Us))}x idle`;
  const lines: Array<[string, string]> = [
    ['warm p99 idle before / after the storm (ms)', `${spread(pick((r) => ms(r.idleBefore.p99Us)))} / ${spread(pick((r) => ms(r.idleAfter.p99Us)))}`],
    ['warm p50 idle, manifest+blob (ms)', spread(pick((r) => ms(r.idle.p50Us)))],
    ['warm p99 idle, manifest+blob (ms), the lower window', spread(pick((r) => ms(r.idle.p99Us)))],
    ['warm max idle (ms)', spread(pick((r) => ms(r.idle.maxUs)), 1)],
    ['warm p50 during the storm (ms)', spread(pick((r) => ms(r.storm.p50Us)))],
    ['warm p99 during the storm (ms)', spread(pick((r) => ms(r.storm.p99Us)))],
    ['warm max during the storm (ms)', spread(pick((r) => ms(r.storm.maxUs)), 1)],
    ['warm requests during the storm', spread(pick((r) => r.storm.requests), 0)],
    [`goal: warm p99 during the storm <= ${GOAL_RATIO}x idle p99`, `${spread(ratios)}x  ${pass ? 'pass' : 'FAIL'}`],
    ['429 refusals, from the answers', spread(pick((r) => r.refusedAnswers), 0)],
    ['429 refusals, nixyard_admission_refusals_total{reason="queue_full"}', spread(pick((r) => r.refusedCounted), 0)],
    [`builds admitted (of ${BUILDS}; bound: ${MAX_QUEUED} waiting + ${WORKERS} running)`, spread(pick((r) => r.admitted), 0)],
    ['peak builds waiting (read from the queue every 250 ms)', spread(pick((r) => r.peakWaiting), 0)],
    ['time until every admitted build answered (s)', spread(pick((r) => r.stormMs / 1000), 1)],
    ['pulls that failed (neither 200 nor 429)', spread(pick((r) => r.failed.length), 0)],
    ['no builds: warm p99 with a busy loop on the build CPUs (ms)', againstIdle((r) => r.busyLoop)],
    ['no builds: warm p99 with processes started on the build CPUs (ms)', againstIdle((r) => r.spawnLoop)],
  ];
  console.log('');
  console.log(
    `bench:storm: ${ROUNDS} round(s), median [min–max]; ${BUILDS} distinct cold images at once, NIXYARD_MAX_QUEUED_BUILDS=${MAX_QUEUED}, ` +
      `${WORKERS} worker(s) sparing ${SPARE_CPUS} CPU(s) to serving; warm ${WARM} manifest and smallest layer, wrk with ${CONNECTIONS} keep-alive connections pausing ${PAUSE_MS} ms, ${IDLE_SECONDS} s idle after as long unmeasured; ` +
      `roles ${compiled ? 'compiled' : 'on tsx (NOT compiled)'}; ${cpus().length} cores, load ${load.toFixed(2)} at the start`,
  );
  const width = Math.max(...lines.map(([name]) => name.length));
  for (const [name, value] of lines) console.log(`${name.padEnd(width)}  ${value}`);
  const mismatched = rounds.filter((r) => r.refusedAnswers !== r.refusedCounted).length;
  if (mismatched) console.log(`note: in ${mismatched} round(s) the refusal metric differs from the 429s answered`);
  console.log(`the bench took ${Math.round((performance.now() - begun) / 1000)} s`);
  process.exitCode = pass ? 0 : 1;
}

main()
  .catch((err: unknown) => {
    console.error(`bench:storm: ${(err as Error).stack ?? String(err)}`);
    process.exitCode = 1;
  })
  .finally(() => cleanUp());
