// The API's Prometheus metrics. One registry per app instance (not prom-client's global one),
// so tests can run several apps in one process without duplicate-metric errors.

import { Counter, Registry, collectDefaultMetrics } from 'prom-client';

export class ApiMetrics {
  readonly registry = new Registry();

  /** Manifest requests by tag, split by whether a stored manifest answered them. */
  readonly manifestRequests = new Counter({
    name: 'nixyard_manifest_requests_total',
    help: 'Manifest requests by tag, by whether the manifest was already stored (hit) or had to be built (miss).',
    labelNames: ['cache'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
