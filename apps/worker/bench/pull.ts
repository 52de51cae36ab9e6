// npm run bench:pull — cold pulls, end to end, and how much of them is not Nix.
//
// For each image and run: a fresh stack (private redis-server, empty filesystem storage, the real
// API and worker processes, the bundled set; test/helpers/stack.ts, as the e2e tests start it),
// then one manifest GET whose clock runs from the request until the manifest has answered, then
// every blob of the manifest fetched at once (timed apart: a client does that after the manifest).
// The phases come from the worker's own channel, the `nixyard_build_phase_duration_seconds`
// histogram on its metrics port (one build per fresh worker, so each phase's `_sum` is that
// build's time). Nix's own time is resolve + build + graph; the overhead is the total minus that.
// The Nix store is warmed before the clock starts (each image realised once), so every run builds
// the same way: nothing of Nixyard's is cached, and Nix finds its outputs valid.
//
//   node --import tsx apps/worker/bench/pull.ts [--runs N] [--images hello,shell/jq,large] [--warm-worker]
//
// A fresh stack means a fresh worker process too, so by default each measured build is also the
// first its worker runs (code not yet optimised by the JIT). --warm-worker first pulls an image
// that shares no store path with the measured one (`large` before `hello` and `shell/jq`, `hello`
// before `large`) and deletes the package index it published: storage then holds nothing of the
// measured image, as in a long-running farm meeting a new image.
//
// BENCH_RUNS sets the default run count (3); NIXYARD_GZIP_LEVEL and NIXYARD_PACK_THREADS, if set,
// reach the worker like any other variable. Runs are interleaved (hello, shell/jq, large, hello,
// ...) so a burst of load elsewhere on the machine spreads over the images instead of hitting one.

import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { BUILD_PHASES, DOCKER_MANIFEST_V2, OCI_IMAGE_MANIFEST, parseImageName, type BuildPhase } from '@nixyard/core';
import { buildClosure } from '../src/build-closure.js';
import { Nix } from '../src/nix/nix.js';
import { BUNDLED_SET, prepareBundledSet } from '../../../test/helpers/bundled-set.js';
import { NIX_ENV } from '../../../test/helpers/nix.js';
import { parseExposition, valueOf } from '../../../test/helpers/prometheus-exposition.js';
import { startStack } from '../../../test/helpers/stack.js';

/** The issue 12 goals: pull time minus Nix's own time, in ms, on the reference machine (2 cores). */
const GOALS: Record<string, number> = { hello: 300, 'shell/jq': 500, large: 1000 };
const NIX_PHASES: readonly BuildPhase[] = ['resolve', 'build', 'graph'];
const PHASE_HISTOGRAM = 'nixyard_build_phase_duration_seconds';

const { values: flags } = parseArgs({
  options: {
    runs: { type: 'string', default: process.env.BENCH_RUNS ?? '3' },
    images: { type: 'string', default: Object.keys(GOALS).join(',') },
    'warm-worker': { type: 'boolean', default: false },
  },
});
const RUNS = Number(flags.runs);
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error(`--runs: expected a whole number ≥ 1, got ${flags.runs}`);
const IMAGES = flags.images.split(',').filter(Boolean);
const WARM_WORKER = flags['warm-worker'];
/** Images that share no store path with `large`, and one that shares none with the others. */
const warmUpFor = (name: string) => (name === 'large' ? 'hello' : 'large');

interface Run {
  /** Manifest request until the manifest has answered (headers and body). */
  total: number;
  /** Every blob of the manifest, fetched at once, after it. */
  blobs: number;
  blobBytes: number;
  phases: Record<BuildPhase, number>;
}

async function pullOnce(name: string): Promise<Run> {
  const stack = await startStack({ env: { LOG_LEVEL: 'warn' } });
  try {
    let earlier: Record<BuildPhase, number> | undefined;
    if (WARM_WORKER) {
      const warm = await fetch(`http://${stack.registry}/v2/${warmUpFor(name)}/manifests/latest`, { headers: { Accept: OCI_IMAGE_MANIFEST } });
      await warm.arrayBuffer();
      if (warm.status !== 200) throw new Error(`warm-up ${warmUpFor(name)}: manifest answered ${warm.status}`);
      for await (const key of stack.storage.listRecords('package-index/')) await stack.storage.deleteRecord(key);
      earlier = await phaseSums(stack.workerMetricsUrl, warmUpFor(name));
    }
    const base = `http://${stack.registry}/v2/${name}`;
    let t = performance.now();
    const res = await fetch(`${base}/manifests/latest`, { headers: { Accept: `${OCI_IMAGE_MANIFEST}, ${DOCKER_MANIFEST_V2}` } });
    const body = await res.text();
    const total = performance.now() - t;
    if (res.status !== 200) throw new Error(`${name}: manifest answered ${res.status}: ${body.slice(0, 500)}`);
    const manifest = JSON.parse(body) as { config: { digest: string }; layers: Array<{ digest: string }> };

    t = performance.now();
    const sizes = await Promise.all(
      [manifest.config, ...manifest.layers].map(async ({ digest }) => {
        const blob = await fetch(`${base}/blobs/${digest}`);
        if (blob.status !== 200) throw new Error(`${name}: blob ${digest} answered ${blob.status}`);
        return (await blob.arrayBuffer()).byteLength;
      }),
    );
    const blobs = performance.now() - t;

    const sums = await phaseSums(stack.workerMetricsUrl, name);
    const phases = Object.fromEntries(BUILD_PHASES.map((phase) => [phase, sums[phase] - (earlier?.[phase] ?? 0)])) as Record<BuildPhase, number>;
    return { total, blobs, blobBytes: sizes.reduce((a, b) => a + b, 0), phases };
  } finally {
    await stack.stop();
  }
}

/** Milliseconds the worker has spent in each phase so far (its histogram's sums), for the image's system. */
async function phaseSums(metricsUrl: string, name: string): Promise<Record<BuildPhase, number>> {
  const scrape = parseExposition(await (await fetch(metricsUrl)).text(), 'worker /metrics');
  const histogram = scrape.get(PHASE_HISTOGRAM);
  if (!histogram) throw new Error(`the worker exports no ${PHASE_HISTOGRAM}`);
  const system = parseImageName(name).system;
  return Object.fromEntries(
    BUILD_PHASES.map((phase) => [phase, 1000 * (valueOf(histogram, `${PHASE_HISTOGRAM}_sum`, { phase, system }) ?? NaN)]),
  ) as Record<BuildPhase, number>;
}

const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const median = (xs: number[]) => {
  const s = sorted(xs);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const ms = (x: number) => `${x.toFixed(0)} ms`;
/** median [min–max] */
const spread = (xs: number[]) => `${ms(median(xs)).padStart(8)}  [${sorted(xs)[0]!.toFixed(0)}–${sorted(xs).at(-1)!.toFixed(0)}]`;
const nixOf = (r: Run) => NIX_PHASES.reduce((sum, p) => sum + r.phases[p], 0);

async function main(): Promise<void> {
  prepareBundledSet();
  // Realise every image once, so that no run pays for a first Nix build and all runs are alike.
  const nix = new Nix({ timeoutSeconds: 600, env: NIX_ENV });
  for (const name of new Set([...IMAGES, ...(WARM_WORKER ? IMAGES.map(warmUpFor) : [])])) {
    const spec = parseImageName(name);
    await buildClosure(nix, { source: { kind: 'path', path: BUNDLED_SET }, revision: 'bench', system: spec.system, packages: spec.packages });
  }

  const runs = new Map<string, Run[]>(IMAGES.map((name) => [name, []]));
  for (let i = 0; i < RUNS; i++) {
    for (const name of IMAGES) {
      const run = await pullOnce(name);
      runs.get(name)!.push(run);
      console.error(`run ${i + 1}/${RUNS} ${name}: total ${ms(run.total)}, nix ${ms(nixOf(run))}, overhead ${ms(run.total - nixOf(run))}`);
    }
  }

  const env = ['NIXYARD_GZIP_LEVEL', 'NIXYARD_PACK_THREADS'].filter((v) => process.env[v]).map((v) => `${v}=${process.env[v]}`);
  const worker = WARM_WORKER ? 'a worker warmed by another image' : 'a fresh worker';
  console.log(`pull benchmark: cold pulls on fresh storage and Redis, ${worker}, ${availableParallelism()} cores, ${RUNS} runs each, median [min–max]${env.length ? `, ${env.join(' ')}` : ''}`);
  let allMet = true;
  for (const [name, rs] of runs) {
    const overhead = rs.map((r) => r.total - nixOf(r));
    const goal = GOALS[name];
    const met = goal === undefined ? undefined : median(overhead) <= goal;
    if (met === false) allMet = false;
    console.log(`${name}`);
    console.log(`  total (manifest request → answer) ${spread(rs.map((r) => r.total))}`);
    console.log(`  nix (resolve + build + graph)     ${spread(rs.map(nixOf))}`);
    console.log(
      `  overhead (total − nix)            ${spread(overhead)}` +
        (goal === undefined ? '' : `  goal ≤ ${goal} ms: ${met ? 'met' : 'NOT met'}`),
    );
    for (const phase of BUILD_PHASES) console.log(`    ${phase.padEnd(31)} ${spread(rs.map((r) => r.phases[phase]))}`);
    console.log(`    ${'outside the phases'.padEnd(31)} ${spread(rs.map((r) => r.total - BUILD_PHASES.reduce((s, p) => s + r.phases[p], 0)))}`);
    console.log(`  blobs (all at once, after)        ${spread(rs.map((r) => r.blobs))}  ${(rs[0]!.blobBytes / 1048576).toFixed(1)} MiB`);
  }
  console.log(allMet ? 'every goal met' : 'some goals NOT met');
}

await main();
