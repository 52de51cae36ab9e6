// What the API fault tests (api-faults.test.ts) and the storm bench (bench/storm.ts) share: more API
// replicas on one farm, each with limits of its own (the stack's API has the defaults), timed
// registry requests over keep-alive connections, a loop of warm pulls that records every answer
// while a fault or a flood goes on, and percentiles. Loopback only.

import { Agent, request } from 'node:http';
import { OCI_IMAGE_MANIFEST } from '@nixyard/core';
import { freePort, startRole, waitForHttp, type Started } from '../../scripts/stack.js';

export interface ApiReplica {
  /** host:port */
  host: string;
  metricsUrl: string;
  child: Started['child'];
  stop(): Promise<void>;
}

/**
 * Starts one more API process with the farm's environment `env` and `extra` on top (on a port of
 * its own); resolves once /v2/ answers.
 */
export async function startApiReplica(env: NodeJS.ProcessEnv, extra: Record<string, string> = {}, options: { compiled?: boolean; quiet?: boolean } = {}): Promise<ApiReplica> {
  const port = await freePort();
  const started = startRole('api', {
    env: { ...env, ...extra, PORT: String(port) },
    ...(options.compiled ? { compiled: true } : {}),
    ...(options.quiet ? { stdio: 'ignore' as const } : {}),
  });
  const host = `127.0.0.1:${port}`;
  try {
    await waitForHttp(`http://${host}/v2/`, 60_000, started.child);
  } catch (err) {
    await started.stop();
    throw err;
  }
  return { host, metricsUrl: `http://${host}/metrics`, child: started.child, stop: () => started.stop() };
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** From sending the request to the end of the body. */
  ms: number;
}

/** Keep-alive connections for the warm loops, as a registry client keeps them. */
const keepAlive = new Agent({ keepAlive: true, maxSockets: 64 });

/** A GET (or HEAD) whose answer is read to the end; `ms` times the whole exchange. */
export function timedRequest(host: string, path: string, headers: Record<string, string> = {}, method = 'GET', agent: Agent | false = keepAlive): Promise<Answer> {
  const [hostname, port] = host.split(':');
  const begun = performance.now();
  return new Promise((resolve, reject) => {
    const req = request({ hostname, port: Number(port), method, path, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks), ms: performance.now() - begun }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** A manifest pull by tag, on a connection of its own (a cold pull may wait for minutes). */
export function pullManifest(host: string, name: string, headers: Record<string, string> = {}): Promise<Answer> {
  return timedRequest(host, `/v2/${name}/manifests/latest`, { Accept: OCI_IMAGE_MANIFEST, ...headers }, 'GET', false);
}

/** The registry error code of a non-200 answer (`errors[0].code`), or undefined. */
export function errorCode(answer: Pick<Answer, 'body'>): string | undefined {
  try {
    return (JSON.parse(answer.body.toString('utf8')) as { errors?: Array<{ code?: string }> }).errors?.[0]?.code;
  } catch {
    return undefined;
  }
}

export interface WarmTarget {
  host: string;
  name: string;
  /** A blob of the image (its smallest layer). */
  digest: string;
}

/** The smallest layer of a built image, by its manifest. */
export function smallestLayer(manifest: Buffer): string {
  const layers = (JSON.parse(manifest.toString('utf8')) as { layers: Array<{ digest: string; size: number }> }).layers;
  return [...layers].sort((a, b) => a.size - b.size)[0]!.digest;
}

export interface WarmSample {
  kind: 'manifest' | 'blob';
  /** performance.now() when the request was sent. */
  at: number;
  status: number;
  ms: number;
  /** Set when the request failed without an answer. */
  error?: string;
}

export interface WarmLoop {
  samples: WarmSample[];
  /** Stops sending; resolves with every sample once the requests in flight are answered. */
  stop(): Promise<WarmSample[]>;
}

/**
 * `concurrency` loops, each a manifest GET by tag and a GET of the blob in turn, until stop() or
 * until `count` requests were sent; `pauseMs` between two requests of a loop.
 */
export function warmLoop(target: WarmTarget, options: { concurrency?: number; count?: number; pauseMs?: number } = {}): WarmLoop & { done: Promise<WarmSample[]> } {
  const { concurrency = 1, count = Infinity, pauseMs = 0 } = options;
  const samples: WarmSample[] = [];
  let sent = 0;
  let stopped = false;
  const one = async (kind: WarmSample['kind']) => {
    const path = kind === 'manifest' ? `/v2/${target.name}/manifests/latest` : `/v2/${target.name}/blobs/${target.digest}`;
    const at = performance.now();
    try {
      const answer = await timedRequest(target.host, path, kind === 'manifest' ? { Accept: OCI_IMAGE_MANIFEST } : {});
      samples.push({ kind, at, status: answer.status, ms: answer.ms });
    } catch (err) {
      samples.push({ kind, at, status: 0, ms: performance.now() - at, error: (err as Error).message });
    }
  };
  const loops = Array.from({ length: concurrency }, async (_, i) => {
    let kind: WarmSample['kind'] = i % 2 === 0 ? 'manifest' : 'blob';
    while (!stopped && sent < count) {
      sent++;
      await one(kind);
      kind = kind === 'manifest' ? 'blob' : 'manifest';
      if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
    }
  });
  const done = Promise.all(loops).then(() => samples);
  return {
    samples,
    done,
    stop() {
      stopped = true;
      return done;
    },
  };
}

/** The p-th percentile (0-100) of `values`, nearest rank; NaN for none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/** One line about a set of warm samples: how many, statuses, p50/p99/max. */
export function describeSamples(samples: readonly WarmSample[]): string {
  const ms = samples.map((s) => s.ms);
  const statuses = new Map<number, number>();
  for (const s of samples) statuses.set(s.status, (statuses.get(s.status) ?? 0) + 1);
  const by = [...statuses].map(([status, n]) => `${n}×${status}`).join(' ');
  return `${samples.length} requests (${by}), p50 ${percentile(ms, 50).toFixed(1)} ms, p99 ${percentile(ms, 99).toFixed(1)} ms, max ${Math.max(...ms).toFixed(1)} ms`;
}

/** The value of one sample of a Prometheus text exposition, e.g. `x_total{reason="a"}`; undefined when absent. */
export function sampleValue(exposition: string, sample: string): number | undefined {
  const line = exposition.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}
