// What the farm tests read of the farm besides the registry: the processes' /metrics on their own
// addresses, Redis through the Sentinels (or the primary the Sentinels name), a queue's event
// stream (every job's history, replicated with the rest of Redis), the shared storage, the
// proxy's error log, and Prometheus' HTTP API. Plus the small timing helpers the tests share.

import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import {
  FilesystemStorage,
  buildQueueName,
  redisConnectionOptions,
  type RedisConnectionOptions,
  type Storage,
  type System,
} from '@nixyard/core';
import type { Farm } from '../../scripts/farm/farm.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns a value other than undefined; throws after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError = '';
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = ` (last error: ${(err as Error).message})`;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError}`);
    await sleep(everyMs);
  }
}

/** Seconds with one decimal, for the printed figures. */
export const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

// ---------------------------------------------------------------------------------------------
// Metrics

/** A process's /metrics, as `name{labels}` → value (labels as exposed, in their order). */
export async function scrape(url: string): Promise<Map<string, number>> {
  const text = await (await fetch(url, { signal: AbortSignal.timeout(5_000) })).text();
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    samples.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return samples;
}

/** The sum of a metric's samples whose labels include every one of `labels`. */
export function total(samples: Map<string, number>, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const [series, value] of samples) {
    const brace = series.indexOf('{');
    if ((brace === -1 ? series : series.slice(0, brace)) !== name) continue;
    if (Object.entries(labels).every(([k, v]) => series.includes(`${k}="${v}"`))) sum += value;
  }
  return sum;
}

export function metricsUrl(farm: Farm, process: string): string {
  const proc = farm.process(process);
  return `http://${proc.address}:${proc.port}/metrics`;
}

// ---------------------------------------------------------------------------------------------
// Redis

/** The farm's Redis as every role reaches it: through the Sentinels. */
export function sentinelConnection(farm: Farm): RedisConnectionOptions {
  return redisConnectionOptions({
    kind: 'sentinel',
    sentinels: farm.redisSentinels.split(',').map((s) => {
      const [host, port] = s.split(':');
      return { host: host!, port: Number(port) };
    }),
    name: farm.redisSentinelName,
    username: undefined,
    password: undefined,
    sentinelPassword: undefined,
    db: undefined,
  });
}

/** Where the Sentinel on `sentinelHost` says the primary is (`address:port`), or undefined when it does not answer. */
export async function primaryAccordingTo(farm: Farm, sentinelProcess: string): Promise<string | undefined> {
  const proc = farm.process(sentinelProcess);
  const client = new Redis({ host: proc.address, port: proc.port, lazyConnect: true, connectTimeout: 1_000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  client.on('error', () => {});
  try {
    await client.connect();
    const [host, port] = (await client.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', farm.redisSentinelName)) as [string, string];
    return `${host}:${port}`;
  } catch {
    return undefined;
  } finally {
    client.disconnect();
  }
}

/** A plain connection to one Redis server (no Sentinel): for reading the primary a Sentinel named. */
export function directRedis(address: string): Redis {
  const [host, port] = address.split(':');
  const client = new Redis({ host: host!, port: Number(port), connectTimeout: 2_000, maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  return client;
}

/** `role` and the primary's address from INFO replication. */
export async function replicationOf(address: string): Promise<{ role: string; primary?: string; linkUp?: boolean }> {
  const client = directRedis(address);
  try {
    const info = await client.info('replication');
    const field = (name: string) => new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();
    const role = field('role') ?? '?';
    return role === 'slave'
      ? { role, primary: `${field('master_host')}:${field('master_port')}`, linkUp: field('master_link_status') === 'up' }
      : { role };
  } finally {
    client.disconnect();
  }
}

export interface JobEvent {
  /** The stream entry's time (ms since the epoch, Redis' clock: this machine's). */
  at: number;
  event: string;
  jobId: string;
  prev?: string;
}

/** A build queue's event stream (BullMQ's `<queue>:events`), oldest first. */
export async function queueEvents(redis: Redis, system: System): Promise<JobEvent[]> {
  const entries = await redis.xrange(`bull:${buildQueueName(system)}:events`, '-', '+');
  return entries.map(([id, fields]) => {
    const o: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) o[fields[i]!] = fields[i + 1]!;
    return { at: Number(id.split('-')[0]), event: o.event ?? '', jobId: o.jobId ?? '', ...(o.prev ? { prev: o.prev } : {}) };
  });
}

/** Per job id: its events in order. */
export function eventsByJob(events: readonly JobEvent[]): Map<string, JobEvent[]> {
  const byJob = new Map<string, JobEvent[]>();
  for (const e of events) if (e.jobId) byJob.set(e.jobId, [...(byJob.get(e.jobId) ?? []), e]);
  return byJob;
}

// ---------------------------------------------------------------------------------------------
// Storage

export function farmStorage(farm: Farm): Storage {
  return new FilesystemStorage(farm.storagePath);
}

/** The chaos suite's check, so that "storage is sound" means the same in both. */
export { assertStorageSound } from '../chaos/farm-checks.js';

/** The digests of every blob in storage. */
export async function blobDigests(storage: Storage): Promise<Set<string>> {
  const digests = new Set<string>();
  for await (const blob of storage.listBlobs()) digests.add(blob.digest);
  return digests;
}

// ---------------------------------------------------------------------------------------------
// The proxy's error log

export interface LogLine {
  /** nginx logs whole seconds: the start of the line's second, ms since the epoch. */
  at: number;
  text: string;
}

/** The proxy's error-log lines (nginx's `YYYY/MM/DD HH:MM:SS [level]` format) from `since` on. */
export function proxyErrors(farm: Farm, since: number): LogLine[] {
  const lines: LogLine[] = [];
  for (const text of readFileSync(farm.process('proxy').log, 'utf8').split('\n')) {
    const m = /^(\d{4})\/(\d\d)\/(\d\d) (\d\d):(\d\d):(\d\d) \[/.exec(text);
    if (!m) continue;
    const [, y, mo, d, h, mi, s] = m.map(Number) as number[];
    const at = new Date(y!, mo! - 1, d!, h!, mi!, s!).getTime();
    if (at >= since - 1_000) lines.push({ at, text });
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------
// Prometheus

export interface PromSeries {
  metric: Record<string, string>;
  value: [number, string];
}

/** An instant query; throws unless Prometheus answers `success`. */
export async function promQuery(farm: Farm, query: string): Promise<PromSeries[]> {
  const url = `${farm.prometheusUrl}/api/v1/query?query=${encodeURIComponent(query)}`;
  const body = (await (await fetch(url, { signal: AbortSignal.timeout(10_000) })).json()) as { status: string; error?: string; data?: { resultType: string; result: PromSeries[] } };
  if (body.status !== 'success') throw new Error(`Prometheus refused ${query}: ${body.error}`);
  const data = body.data!;
  if (data.resultType === 'scalar') return [{ metric: {}, value: data.result as unknown as [number, string] }];
  return data.result;
}

export async function promGet<T>(farm: Farm, path: string): Promise<T> {
  const body = (await (await fetch(`${farm.prometheusUrl}${path}`, { signal: AbortSignal.timeout(10_000) })).json()) as { status: string; data: T; error?: string };
  if (body.status !== 'success') throw new Error(`Prometheus ${path}: ${body.error}`);
  return body.data;
}
