// The API's Prometheus metrics (`nixyard_` prefix, base units, Prometheus naming). One registry
// per app instance (not prom-client's global one), so tests can run several apps in one process.
// Gauges that describe the farm (queue depth, live workers, prebuild batches) are sampled from
// Redis when scraped, so they are never stale and cost nothing between scrapes.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

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

  readonly servedBytes = new Counter({
    name: 'nixyard_served_bytes_total',
    help: 'Bytes of manifests and blobs sent to clients.',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });

  constructor(samplers?: FarmSamplers) {
    collectDefaultMetrics({ register: this.registry });
    if (!samplers) return;
    new Gauge({
      name: 'nixyard_queue_jobs',
      help: 'Build jobs by queue state and system, sampled at scrape time.',
      labelNames: ['system', 'state'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const { system, state, count } of await samplers.queueDepth()) this.set({ system, state }, count);
      },
    });
    new Gauge({
      name: 'nixyard_workers',
      help: 'Live build workers by system (heard from within the last 15 s), sampled at scrape time.',
      labelNames: ['system'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const { system, count } of await samplers.liveWorkers()) this.set({ system }, count);
      },
    });
    new Gauge({
      name: 'nixyard_prebuild_batches',
      help: 'Recent prebuild batches (last 50) by state, sampled at scrape time.',
      labelNames: ['state'] as const,
      registers: [this.registry],
      async collect() {
        this.reset();
        for (const { state, count } of await samplers.prebuildBatches()) this.set({ state }, count);
      },
    });
  }
}
