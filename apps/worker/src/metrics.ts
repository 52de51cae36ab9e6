// The worker's Prometheus metrics, served on NIXYARD_WORKER_METRICS_PORT. One registry per
// worker instance, so tests can run several in one process.

import { createServer, type Server } from 'node:http';
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';

export class WorkerMetrics {
  readonly registry = new Registry();

  /** Nix builds started here, by how they ended (`started` counts every one). */
  readonly builds = new Counter({
    name: 'nixyard_builds_total',
    help: 'Nix builds run by this worker, by result: started, succeeded or failed.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  /** A tiny HTTP server answering GET /metrics; anything else is 404. */
  serve(port: number, host?: string): Promise<Server> {
    const server = createServer((req, res) => {
      if (req.method === 'GET' && req.url === '/metrics') {
        this.registry.metrics().then(
          (body) => res.writeHead(200, { 'Content-Type': this.registry.contentType }).end(body),
          () => res.writeHead(500).end(),
        );
      } else {
        res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"error":"not found"}');
      }
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve(server));
    });
  }
}
