// The worker's Prometheus metrics (`nixyard_` prefix, base units), with /healthz and /readyz, on
// NIXYARD_WORKER_METRICS_PORT (and NIXYARD_WORKER_METRICS_HOST). One registry per worker instance,
// so tests can run several.

import { createServer, type Server } from 'node:http';
import { FAILURE_COUNTER_CODES, type Readiness } from '@nixyard/core';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class WorkerMetrics {
  readonly registry = new Registry();

  /** Nix builds started here, and how they ended (`started` counts every one). */
  readonly builds = new Counter({
    name: 'nixyard_builds_total',
    help: 'Nix builds run by this worker, by result: started, succeeded or failed.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly buildFailures = new Counter({
    name: 'nixyard_build_failures_total',
    help: `Failed build jobs by failure code (${FAILURE_COUNTER_CODES.join(', ')}).`,
    labelNames: ['code'] as const,
    registers: [this.registry],
  });

  readonly phaseDuration = new Histogram({
    name: 'nixyard_build_phase_duration_seconds',
    help: 'Time spent in each phase of an image build, by phase and system.',
    labelNames: ['phase', 'system'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
    registers: [this.registry],
  });

  readonly layerCache = new Counter({
    name: 'nixyard_layer_cache_requests_total',
    help: 'Layers an image needed, by whether they were already packed (hit) or packed now (miss).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  readonly packedBytes = new Counter({
    name: 'nixyard_packed_bytes_total',
    help: 'Compressed bytes of the layers this worker packed.',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    // Every code is exported from the start, at 0: a series that appears only with its first
    // failure makes rate() and increase() miss that failure, and alerts on it start late.
    for (const code of FAILURE_COUNTER_CODES) this.buildFailures.inc({ code }, 0);
  }

  /**
   * A tiny HTTP server: GET /metrics, /healthz and /readyz; anything else is 404. Listens on
   * `host`, or on every interface when it is undefined.
   */
  serve(port: number, host: string | undefined, readiness: () => Promise<Readiness>): Promise<Server> {
    const json = (res: import('node:http').ServerResponse, status: number, body: unknown) =>
      res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
    const server = createServer((req, res) => {
      const route = req.method === 'GET' ? req.url : undefined;
      if (route === '/metrics') {
        this.registry.metrics().then(
          (body) => res.writeHead(200, { 'Content-Type': this.registry.contentType }).end(body),
          () => res.writeHead(500).end(),
        );
      } else if (route === '/healthz') {
        json(res, 200, { status: 'ok' });
      } else if (route === '/readyz') {
        readiness().then((r) => json(res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'unavailable', checks: r.checks }));
      } else {
        json(res, 404, { error: 'not found' });
      }
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      if (host === undefined) server.listen(port, () => resolve(server));
      else server.listen(port, host, () => resolve(server));
    });
  }
}
