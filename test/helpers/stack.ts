// A running Nixyard for end-to-end tests: private redis-server, the real API and worker
// processes (scripts/stack.ts, as the quick start runs them), temp storage, the bundled set.

import type { ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { loadConfig, openStorage, buildQueueName, redisConnectionOptions, type Storage, type System } from '@nixyard/core';
import { freePort, startRole, waitForHttp, type Started } from '../../scripts/stack.js';
import { withOfflineNixConfig } from '../../scripts/offline-nix.js';
import { BUNDLED_SET, prepareBundledSet } from './bundled-set.js';
import { startTestRedis, type TestRedis } from './redis.js';
import { readAll } from './streams.js';
import { tempDir } from './temp-dir.js';

export interface TestStack {
  registry: string; // host:port
  storagePath: string;
  redis: TestRedis;
  /** The environment the processes were started with (storage, Redis, source ...). */
  env: NodeJS.ProcessEnv;
  /** The farm's storage, opened by the test process from the same configuration. */
  storage: Storage;
  /** The first worker's metrics. */
  workerMetricsUrl: string;
  workerMetricsUrls: string[];
  workers: StackWorker[];
  apiMetricsUrl: string;
  /** Starts one more worker with these variables on top of the stack's; resolves once it serves metrics. */
  addWorker(env?: Record<string, string>): Promise<StackWorker>;
  stop(): Promise<void>;
}

export interface StackWorker {
  metricsUrl: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

export interface StackOptions {
  /** Variables for every process. */
  env?: Record<string, string>;
  /** Variables for the API only. */
  apiEnv?: Record<string, string>;
  /** Worker processes to start (default 1), each with its own metrics port, or their extra variables. */
  workers?: number | Array<Record<string, string>>;
}

export async function startStack(options: StackOptions = {}): Promise<TestStack> {
  prepareBundledSet();
  const dir = tempDir('stack');
  const redis = await startTestRedis();
  const port = await freePort();
  const env = withOfflineNixConfig({
    ...process.env,
    REDIS_URL: redis.url,
    STORAGE_PATH: join(dir.path, 'storage'),
    NIXERY_PKGS_PATH: BUNDLED_SET,
    PORT: String(port),
    NIX_TIMEOUT: '600',
    LOG_LEVEL: 'warn',
    ...options.env,
  });
  // The test process reads the farm's storage too; the AWS SDK takes S3 credentials from its
  // own environment (the standard chain), so it gets the stack's.
  for (const name of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'] as const) if (env[name]) process.env[name] = env[name];
  const roles: Started[] = [];
  const workerMetricsUrls: string[] = [];
  const stackWorkers: StackWorker[] = [];
  const addWorker = async (extra: Record<string, string> = {}) => {
    const metricsPort = await freePort();
    const worker = startRole('worker', { env: { ...env, ...extra, NIXYARD_WORKER_METRICS_PORT: String(metricsPort) } });
    roles.push(worker);
    const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    await waitForHttp(metricsUrl, 60_000, worker.child);
    return { metricsUrl, child: worker.child, stop: () => worker.stop() };
  };
  const stack: TestStack = {
    registry: `127.0.0.1:${port}`,
    storagePath: join(dir.path, 'storage'),
    redis,
    env,
    storage: openStorage(loadConfig(env).storage),
    apiMetricsUrl: `http://127.0.0.1:${port}/metrics`,
    workerMetricsUrl: '',
    workerMetricsUrls,
    workers: stackWorkers,
    addWorker,
    async stop() {
      await Promise.all(roles.map((r) => r.stop()));
      await redis.stop();
      dir.cleanup();
    },
  };
  try {
    const api = startRole('api', { env: { ...env, ...options.apiEnv } });
    roles.push(api);
    // As the compose proxy does (it starts once the replicas report ready): /readyz also loads the
    // API's Redis side, which a fresh API otherwise loads with its first cold pull.
    await waitForHttp(`http://${stack.registry}/readyz`, 60_000, api.child);
    const workers = typeof options.workers === 'object' ? options.workers : Array.from({ length: options.workers ?? 1 }, () => ({}));
    for (const extra of workers) {
      const worker = await addWorker(extra);
      stackWorkers.push(worker);
      workerMetricsUrls.push(worker.metricsUrl);
    }
    stack.workerMetricsUrl = workerMetricsUrls[0] ?? '';
  } catch (err) {
    await stack.stop();
    throw err;
  }
  return stack;
}

/** The value of one Prometheus sample, e.g. `nixyard_builds_total{result="started"}`; 0 when absent. */
export async function metricValue(url: string, sample: string): Promise<number> {
  const text = await (await fetch(url)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line ? Number(line.slice(sample.length + 1)) : 0;
}

/** How many jobs the system's build queue holds, by state. */
export async function jobCounts(redisUrl: string, system: System = 'x86_64-linux'): Promise<Record<string, number>> {
  const queue = new Queue(buildQueueName(system), { connection: redisConnectionOptions(redisUrl) });
  try {
    return await queue.getJobCounts();
  } finally {
    await queue.close();
  }
}

/** How many jobs the system's build queue holds in any state. */
export async function jobCount(redisUrl: string, system: System = 'x86_64-linux'): Promise<number> {
  return Object.values(await jobCounts(redisUrl, system)).reduce((a, b) => a + b, 0);
}

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** An HTTP request whose path is sent exactly as given (fetch would normalise `..` away). */
export function rawRequest(host: string, method: string, path: string, headers: Record<string, string> = {}): Promise<RawResponse> {
  const [hostname, port] = host.split(':');
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port: Number(port), method, path, headers }, (res) => {
      readAll(res).then((body) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }), reject);
    });
    req.on('error', reject);
    req.end();
  });
}
