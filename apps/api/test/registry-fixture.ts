// The registry API in-process, for the registry-api-*.test.ts files: createApp with the in-memory
// storage, a real SourceResolver for a path source, real metrics, and fakes for everything that
// would need Redis (build queue, worker heartbeats) or a worker's output (package index). Images
// are seeded the way a worker publishes them (blobs first, then the manifest record), with core's
// own functions, so the record a pull by tag looks up is exactly the one seeded here.

import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import express, { type RequestHandler } from 'express';
import { pino, type Logger } from 'pino';
import {
  BUILD_PHASES,
  MemoryStorage,
  OCI_IMAGE_MANIFEST,
  PATH_REVISION,
  buildJobFor,
  imageDocuments,
  parseImageName,
  publishImageDocuments,
  sha256Digest,
  type BuildJobData,
  type BuildResult,
  type BuiltDocument,
  type Digest,
  type ManifestRecord,
  type PackageIndexId,
  type PathSource,
  type Readiness,
  type Storage,
  type System,
} from '@nixyard/core';
import { createApp, type ApiDeps } from '../src/app.js';
import { createOperatorApp } from '../src/operator-app.js';
import type { BlobServing } from '../src/blobs.js';
import { ContentCache, type ContentCacheOptions } from '../src/content-cache.js';
import { ApiMetrics } from '../src/metrics.js';
import { EpochWatch } from '../src/epoch-watch.js';
import { RecordCache } from '../src/record-cache.js';
import { SourceResolver } from '../src/source-resolver.js';

export const SOURCE: PathSource = { kind: 'path', path: '/srv/nixyard-test-pkgs' };
export const TTL_SECONDS = 3600;

// Media types as clients send them, spelled out rather than imported from core's media-types.ts:
// a typo there must make these tests fail, not pass with it.
export const OCI = 'application/vnd.oci.image.manifest.v1+json';
export const DOCKER = 'application/vnd.docker.distribution.manifest.v2+json';
export const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
export const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
export const SCHEMA1_SIGNED = 'application/vnd.docker.distribution.manifest.v1+prettyjws';
export const SCHEMA1 = 'application/vnd.docker.distribution.manifest.v1+json';

/** skopeo and podman: one Accept header line per type, in this order (docs/design.md §8). */
export const SKOPEO_ACCEPT = [OCI, DOCKER, SCHEMA1_SIGNED, SCHEMA1, DOCKER_LIST, OCI_INDEX];
/** containerd (`ctr pull`): every type in one comma-joined Accept header. */
export const CONTAINERD_ACCEPT = `${DOCKER}, ${DOCKER_LIST}, ${OCI}, ${OCI_INDEX}, */*`;

export const UNKNOWN_DIGEST: Digest = `sha256:${'0'.repeat(64)}`;

// ---------------------------------------------------------------------------------------------
// Images, as a worker publishes them

export interface PublishedImage {
  job: BuildJobData;
  record: ManifestRecord;
  config: BuiltDocument;
  oci: BuiltDocument;
  docker: BuiltDocument;
  /** The gzip layer blobs, in manifest order. */
  layers: Array<{ bytes: Buffer; digest: Digest; size: number }>;
}

/** The job a pull of `name:latest` makes on the path source, computed with core alone. */
export function jobFor(name: string, options: { freshAfter?: Date; requestId?: string } = {}): BuildJobData {
  return buildJobFor({ spec: parseImageName(name), source: SOURCE, revision: PATH_REVISION, ...options });
}

/**
 * Writes what a worker writes for `job` (two layers, the config, both manifests; the manifest
 * record last). The layers' bytes depend on the image key, so every image has its own blobs.
 */
export async function publishImage(storage: Storage, job: BuildJobData, createdAt = new Date()): Promise<PublishedImage> {
  const tars = [`store paths of ${job.imageKey}\n`.repeat(40), `symlink layer of ${job.packages.join(' ')}\n`];
  const layers = tars.map((tar) => {
    const bytes = gzipSync(Buffer.from(tar), { level: 9 });
    return { bytes, digest: sha256Digest(bytes), size: bytes.length, diffId: sha256Digest(tar) };
  });
  for (const layer of layers) await storage.writeBlob(Readable.from([layer.bytes]), layer.digest);
  const { record, config, oci, docker } = imageDocuments(job, layers, { env: ['PATH=/bin:/usr/bin'], cmd: ['bash'] }, createdAt);
  await publishImageDocuments(storage, { record, config, oci, docker });
  return { job, record, config, oci, docker, layers: layers.map(({ bytes, digest, size }) => ({ bytes, digest, size })) };
}

/** A stored, fresh image for `name:latest`, as a pull by tag finds it. */
export function seedImage(storage: Storage, name: string, createdAt = new Date()): Promise<PublishedImage> {
  return publishImage(storage, jobFor(name), createdAt);
}

// ---------------------------------------------------------------------------------------------
// Fakes for what needs Redis or a worker

export type BuildOutcome =
  /** A worker built it: the image is published to storage and the build resolves. */
  | { kind: 'publish' }
  /** The build resolves but nothing was stored (a worker bug, or storage lost the record). */
  | { kind: 'publish-nothing' }
  /** The build fails with this error (a RegistryError from registryErrorFor, or anything else). */
  | { kind: 'reject'; error: unknown };

/** The build queue's `build`: records every job it gets and answers with `outcome`. */
export class FakeBuildQueue {
  readonly jobs: BuildJobData[] = [];
  /** The client address each job's pull came from. */
  readonly clients: string[] = [];
  readonly published: PublishedImage[] = [];
  outcome: BuildOutcome = { kind: 'publish' };

  constructor(private readonly storage: Storage) {}

  async build(job: BuildJobData, request?: { client: string }): Promise<BuildResult> {
    this.jobs.push(job);
    if (request) this.clients.push(request.client);
    const outcome = this.outcome;
    if (outcome.kind === 'reject') throw outcome.error;
    let digest: Digest = UNKNOWN_DIGEST;
    if (outcome.kind === 'publish') {
      const image = await publishImage(this.storage, job);
      this.published.push(image);
      digest = image.oci.descriptor.digest;
    }
    const timings = Object.fromEntries(BUILD_PHASES.map((phase) => [phase, 1])) as BuildResult['timings'];
    return { imageKey: job.imageKey, manifestDigest: digest, mediaType: OCI_IMAGE_MANIFEST, timings };
  }
}

/** Live workers per system (the heartbeat sorted sets' count); 1 unless told otherwise. */
export class FakeWorkers {
  readonly counts = new Map<System, number>();
  async count(system: System): Promise<number> {
    return this.counts.get(system) ?? 1;
  }
}

/** The package index cache: no index unless `names` is set; remembers what it was asked. */
export class FakePackageIndex {
  names: ReadonlySet<string> | undefined;
  readonly asked: PackageIndexId[] = [];
  async get(id: PackageIndexId): Promise<ReadonlySet<string> | undefined> {
    this.asked.push(id);
    return this.names;
  }
}

// ---------------------------------------------------------------------------------------------
// The app on a loopback port

export interface Response {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface RegistryOptions {
  systems?: System[];
  indexSystems?: System[];
  storage?: Storage;
  blobServing?: BlobServing;
  /** The content cache's settings (default: 16 MiB, revalidated every 30 s). */
  contentCache?: Partial<ContentCacheOptions>;
  /** How often the storage's cache epoch is looked at (default CACHE_EPOCH_CHECK_MS). */
  epochCheckMs?: number;
  readiness?: Readiness;
  /** Turns tags into revisions and lists them (default: a SourceResolver for the path source SOURCE). */
  resolver?: SourceResolver;
  /** Collect log lines at this level and above into `logs` (default: a silent logger). */
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** Pull authentication, set up with the registry's metrics (default: none). */
  auth?: (metrics: ApiMetrics) => Promise<NonNullable<ApiDeps['auth']>>;
}

export interface TestRegistry {
  storage: Storage;
  content: ContentCache;
  builds: FakeBuildQueue;
  workers: FakeWorkers;
  packageIndex: FakePackageIndex;
  metrics: ApiMetrics;
  /** Parsed log lines (only with `logLevel`). */
  logs: Array<Record<string, unknown>>;
  /** `body`, when given, is sent as it is (a form, for the token endpoint). */
  request(method: string, path: string, headers?: OutgoingHttpHeaders, body?: string): Promise<Response>;
  close(): Promise<void>;
}

const statusPage: RequestHandler = (_req, res) => {
  res.type('text/plain').send('status page');
};

export async function startRegistry(options: RegistryOptions = {}): Promise<TestRegistry> {
  const storage = options.storage ?? new MemoryStorage();
  const builds = new FakeBuildQueue(storage);
  const workers = new FakeWorkers();
  const packageIndex = new FakePackageIndex();
  const metrics = new ApiMetrics();
  const logs: Array<Record<string, unknown>> = [];
  const logger: Logger = options.logLevel
    ? pino({ level: options.logLevel }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) })
    : pino({ level: 'silent' });
  const admin = express.Router();
  admin.get('/ping', (_req, res) => {
    res.json({ admin: true });
  });
  const content = new ContentCache(storage, { maxBytes: 16 * 1024 * 1024, ...options.contentCache });
  const records = new RecordCache(storage);
  const deps: ApiDeps = {
    storage,
    records,
    content,
    epoch: new EpochWatch(
      storage,
      () => {
        records.clear();
        content.clear();
      },
      options.epochCheckMs === undefined ? {} : { checkMs: options.epochCheckMs },
    ),
    packageIndex,
    builds,
    resolver: options.resolver ?? new SourceResolver(SOURCE, TTL_SECONDS),
    liveWorkers: workers,
    systems: options.systems ?? ['x86_64-linux'],
    indexSystems: options.indexSystems,
    manifestTtlSeconds: TTL_SECONDS,
    metrics,
    logger,
    operator: createOperatorApp({
      metrics,
      logger,
      admin,
      readiness: async () => options.readiness ?? { ready: true, checks: { redis: 'ok', storage: 'ok' } },
      statusPage,
    }),
    ...(options.blobServing ? { blobServing: options.blobServing } : {}),
    ...(options.auth ? { auth: await options.auth(metrics) } : {}),
  };
  const server: Server = createServer(createApp(deps)).listen(0, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;

  return {
    storage,
    content,
    builds,
    workers,
    packageIndex,
    metrics,
    logs,
    request: (method, path, headers = {}, body) => send(port, method, path, headers, body),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

const REQUEST_TIMEOUT_MS = 5_000;

/** One request with node:http: the path goes out byte for byte (fetch would normalise it). */
function send(port: number, method: string, path: string, headers: OutgoingHttpHeaders, body?: string): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', reject);
      res.on('aborted', () => reject(new Error('response aborted')));
      res.on('end', () => {
        if (!res.complete) return reject(new Error('response incomplete'));
        resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) });
      });
    });
    req.on('error', reject);
    // A handler that never answers fails its test at once instead of hanging the run.
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`${method} ${path}: no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    req.end(body);
  });
}

// ---------------------------------------------------------------------------------------------
// Assertions

export interface ExpectedError {
  status: number;
  code: string;
  message: string;
  detail: unknown;
}

/** The registry's error answer: status, JSON type, exact length and `{"errors":[{code,message,detail}]}`. */
export function assertRegistryError(res: Response, expected: ExpectedError, what = ''): void {
  assert.equal(res.status, expected.status, `status ${what}`);
  assert.equal(res.headers['content-type'], 'application/json', `content-type ${what}`);
  assert.equal(res.headers['content-length'], String(res.body.length), `content-length ${what}`);
  assert.deepEqual(
    JSON.parse(res.body.toString('utf8')),
    { errors: [{ code: expected.code, message: expected.message, detail: expected.detail }] },
    `body ${what}`,
  );
}

/** Headers that differ between any two responses (the date) or describe the connection. */
const VOLATILE_HEADERS = new Set(['date', 'connection', 'keep-alive']);

/** The headers a GET and a HEAD of the same resource must share. */
export function comparableHeaders(res: Response): Record<string, unknown> {
  return Object.fromEntries(Object.entries(res.headers).filter(([name]) => !VOLATILE_HEADERS.has(name)));
}

/** GET and HEAD with the same headers (and the same request id): same status and headers, HEAD without a body. */
export async function assertHeadLikeGet(registry: TestRegistry, path: string, headers: OutgoingHttpHeaders = {}): Promise<{ get: Response; head: Response }> {
  const fixed = { 'x-request-id': 'head-like-get', ...headers };
  const get = await registry.request('GET', path, fixed);
  const head = await registry.request('HEAD', path, fixed);
  assert.equal(head.status, get.status, `HEAD ${path} status`);
  assert.deepEqual(comparableHeaders(head), comparableHeaders(get), `HEAD ${path} headers`);
  assert.equal(head.body.length, 0, `HEAD ${path} has no body`);
  return { get, head };
}

export function json(res: Response): unknown {
  return JSON.parse(res.body.toString('utf8'));
}
