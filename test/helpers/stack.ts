// A running Nixyard for end-to-end tests: private redis-server, the real API and worker
// processes (scripts/stack.ts, as the quick start runs them), temp storage, the bundled set.

import type { ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
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
  /**
   * Starts one more API on this farm (its Redis and storage), on a port of its own, with these
   * variables on top of the stack's (not `apiEnv`); resolves once it answers `/readyz`.
   */
  addApi(env?: Record<string, string>): Promise<StackApi>;
  stop(): Promise<void>;
}

export interface StackWorker {
  metricsUrl: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

export interface StackApi {
  registry: string; // host:port
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
  /**
   * Where the output of the API and worker processes goes: by default the test's own output; with
   * a directory, each process writes its stdout and stderr to files of its own there
   * (`api-1.stdout.log`, `api-1.stderr.log`, `worker-1.stdout.log`, ...), complete once stop() resolves.
   */
  logDir?: string;
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
  const logsWritten: Array<Promise<unknown>> = [];
  const processCount = { api: 0, worker: 0 };
  /** startRole, with the output in logDir when there is one. */
  const start = (role: 'api' | 'worker', roleEnv: NodeJS.ProcessEnv): Started => {
    const n = ++processCount[role];
    if (options.logDir === undefined) return startRole(role, { env: roleEnv });
    mkdirSync(options.logDir, { recursive: true });
    const proc = startRole(role, { env: roleEnv, stdio: 'pipe' });
    for (const stream of ['stdout', 'stderr'] as const) {
      const file = createWriteStream(join(options.logDir, `${role}-${n}.${stream}.log`));
      proc.child[stream]!.pipe(file);
      logsWritten.push(finished(file).catch(() => {}));
    }
    return proc;
  };
  const addWorker = async (extra: Record<string, string> = {}) => {
    const metricsPort = await freePort();
    const worker = start('worker', { ...env, ...extra, NIXYARD_WORKER_METRICS_PORT: String(metricsPort) });
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
    async addApi(extra = {}) {
      const apiPort = await freePort();
      const api = start('api', { ...env, ...extra, PORT: String(apiPort) });
      roles.push(api);
      const registry = `127.0.0.1:${apiPort}`;
      await waitForHttp(`http://${registry}/readyz`, 60_000, api.child);
      return { registry, metricsUrl: `http://${registry}/metrics`, child: api.child, stop: () => api.stop() };
    },
    async stop() {
      await Promise.all(roles.map((r) => r.stop()));
      await Promise.all(logsWritten);
      await redis.stop();
      dir.cleanup();
    },
  };
  try {
    const api = start('api', { ...env, ...options.apiEnv });
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
