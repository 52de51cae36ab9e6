// The API's Prometheus metrics (`nixyard_` prefix, base units, Prometheus naming). One registry
// per app instance (not prom-client's global one), so tests can run several apps in one process.
// Gauges that describe the farm (queue depth, live workers, prebuild batches) are sampled from
// Redis when scraped, so they are never stale and cost nothing between scrapes. Each sample has a
// deadline: while Redis is away or frozen the scrape still answers within a second, without those
// series, and nixyard_farm_sampled says which were left out.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { REFUSAL_REASONS } from './admission.js';
import { AUTH_FAILURE_REASONS } from './auth/failure-reasons.js';
import { within } from './deadline.js';

/** How long a scrape waits for each farm sample (they are taken at once). */
export const FARM_SAMPLE_DEADLINE_MS = 700;
/** A sample serves every gauge of one scrape, and of scrapes this close together. */
const SAMPLE_REUSE_MS = 250;

type Rows<K extends keyof FarmSamplers> = Awaited<ReturnType<FarmSamplers[K]>>;

/** One scrape's reading of the farm, by gauge name; undefined where Redis did not answer in time. */
interface FarmSample {
  nixyard_queue_jobs: Rows<'queueDepth'> | undefined;
  nixyard_workers: Rows<'liveWorkers'> | undefined;
  nixyard_prebuild_batches: Rows<'prebuildBatches'> | undefined;
}

async function takeSample(samplers: FarmSamplers): Promise<FarmSample> {
  const read = <T>(take: () => Promise<T>, what: string) => within(FARM_SAMPLE_DEADLINE_MS, take(), what).catch(() => undefined);
  const [queueJobs, workers, batches] = await Promise.all([
    read(() => samplers.queueDepth(), 'queue depth'),
    read(() => samplers.liveWorkers(), 'live workers'),
    read(() => samplers.prebuildBatches(), 'prebuild batches'),
  ]);
  return { nixyard_queue_jobs: queueJobs, nixyard_workers: workers, nixyard_prebuild_batches: batches };
}

/** Where samplers come from; wired in main.ts, absent in tests that need no farm gauges. */
export interface FarmSamplers {
  /** Jobs per queue state, per system. */
  queueDepth(): Promise<Array<{ system: string; state: string; count: number }>>;
  liveWorkers(): Promise<Array<{ system: string; count: number }>>;
  prebuildBatches(): Promise<Array<{ state: string; count: number }>>;
}

export class ApiMetrics {
  readonly registry = new Registry();

  readonly httpRequests = new Counter({
    name: 'nixyard_http_requests_total',
    help: 'HTTP requests by route, method and status.',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  });

  readonly httpDuration = new Histogram({
    name: 'nixyard_http_request_duration_seconds',
    help: 'HTTP request latency by route, method and status (a manifest miss includes its build).',
    labelNames: ['route', 'method', 'status'] as const,
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300],
    registers: [this.registry],
  });

  /** Manifest requests by tag, split by whether a stored manifest answered them. */
  readonly manifestRequests = new Counter({
    name: 'nixyard_manifest_requests_total',
    help: 'Manifest requests by tag, by whether the manifest was already stored (hit) or had to be built (miss).',
    labelNames: ['cache'] as const,
    registers: [this.registry],
  });

  /** Cold pulls refused by admission control (admission.ts), by reason. */
  readonly admissionRefusals = new Counter({
    name: 'nixyard_admission_refusals_total',
    help: 'Cold pulls refused with 429 by admission control: queue_full (NIXYARD_MAX_QUEUED_BUILDS) or client_limit (NIXYARD_MAX_BUILDS_PER_CLIENT).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  /** Credentials refused at /v2/ or /auth/token (auth/pull-auth.ts), by reason. */
  readonly authFailures = new Counter({
    name: 'nixyard_auth_failures_total',
    help: 'Failed logins: credentials or tokens a client sent that were refused, by reason (docs/auth.md).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly servedBytes = new Counter({
    name: 'nixyard_served_bytes_total',
    help: 'Bytes of manifests and blobs sent to clients.',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });

  constructor(samplers?: FarmSamplers) {
    collectDefaultMetrics({ register: this.registry });
    // Series that exist before their first event, so rates and alerts see them from the start.
    for (const reason of REFUSAL_REASONS) this.admissionRefusals.inc({ reason }, 0);
    for (const reason of AUTH_FAILURE_REASONS) this.authFailures.inc({ reason }, 0);
    if (!samplers) return;
    // One sampling per scrape, shared by the gauges below (prom-client collects them all at once).
    let round: { at: number; sample: Promise<FarmSample> } | undefined;
    const sampleFarm = (): Promise<FarmSample> => {
      const now = Date.now();
      if (!round || now - round.at > SAMPLE_REUSE_MS) round = { at: now, sample: takeSample(samplers) };
      return round.sample;
    };
    new Gauge({
      name: 'nixyard_farm_sampled',
      help: 'Whether the farm gauge named by `gauge` was read from Redis at this scrape (1) or left out because Redis did not answer in time (0).',
      labelNames: ['gauge'] as const,
      registers: [this.registry],
      async collect() {
        const sample = await sampleFarm();
        for (const [gauge, rows] of Object.entries(sample)) this.set({ gauge }, rows === undefined ? 0 : 1);
      },
    });
    new Gauge({
      name: 'nixyard_queue_jobs',
      help: 'Build jobs by queue state and system, sampled at scrape time.',
      labelNames: ['system', 'state'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const { system, state, count } of (await sampleFarm()).nixyard_queue_jobs ?? []) this.set({ system, state }, count);
      },
    });
    new Gauge({
      name: 'nixyard_workers',
      help: 'Live build workers by system (heard from within the last 15 s), sampled at scrape time.',
      labelNames: ['system'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const { system, count } of (await sampleFarm()).nixyard_workers ?? []) this.set({ system }, count);
      },
    });
    new Gauge({
      name: 'nixyard_prebuild_batches',
      help: 'Recent prebuild batches (last 50) by state, sampled at scrape time.',
      labelNames: ['state'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const { state, count } of (await sampleFarm()).nixyard_prebuild_batches ?? []) this.set({ state }, count);
      },
    });
  }
}
