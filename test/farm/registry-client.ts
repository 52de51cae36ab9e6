// A registry client for the farm tests, from the root namespace to the proxy's address: whole
// image pulls as a container client makes them (the tag's index, the platform's manifest by
// digest, the config and every layer), each document and blob hashed and checked against its
// digest while it streams in; a pull retried as skopeo retries one (`--retry-times 3`: the whole
// copy again after 1, 2 and 4 s, on network errors, 408, 429 and 5xx); and the admin API's
// prebuild batches. Every request and pull is timed, and timestamped in ms since the epoch, so
// that a test can line its samples up with the moment it cut a link.

import { createHash } from 'node:crypto';
import { Agent, request } from 'node:http';
import { OCI_IMAGE_INDEX, OCI_IMAGE_MANIFEST, ociPlatformFor, type PrebuildBatch, type System } from '@nixyard/core';

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  /** sha256 of the body, `sha256:<hex>`. */
  digest: string;
  /** When the request was sent (Date.now()) and how long until its body ended. */
  at: number;
  ms: number;
}

export interface RequestOptions {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  /** A keep-alive agent, or false for a connection of its own. */
  agent?: Agent | false;
  /** Gives up when the connection is silent this long (default: never, as skopeo). */
  idleTimeoutMs?: number;
  /** Keep only the digest and length of the body, not the bytes (blobs). */
  discardBody?: boolean;
}

/** Transport failures: no answer at all (refused, reset, timed out). */
export class NoAnswer extends Error {
  constructor(
    message: string,
    readonly at: number,
    readonly ms: number,
  ) {
    super(message);
  }
}

/** One HTTP exchange with the registry at `host` (address:port), its body hashed as it arrives. */
export function registryRequest(host: string, path: string, options: RequestOptions = {}): Promise<Answer> {
  const [hostname, port] = host.split(':');
  const at = Date.now();
  const begun = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(
      { hostname, port: Number(port), method: options.method ?? 'GET', path, headers: options.headers ?? {}, agent: options.agent ?? false },
      (res) => {
        const hash = createHash('sha256');
        const chunks: Buffer[] = [];
        let length = 0;
        res.on('data', (chunk: Buffer) => {
          hash.update(chunk);
          length += chunk.length;
          if (!options.discardBody) chunks.push(chunk);
        });
        res.on('error', (err) => reject(new NoAnswer(`${path}: ${err.message}`, at, performance.now() - begun)));
        res.on('end', () => {
          const body = options.discardBody ? Buffer.alloc(0) : Buffer.concat(chunks);
          const answer: Answer = { status: res.statusCode ?? 0, headers: res.headers, body, digest: `sha256:${hash.digest('hex')}`, at, ms: performance.now() - begun };
          Object.defineProperty(answer, 'length', { value: length, enumerable: false });
          resolve(answer);
        });
      },
    );
    if (options.idleTimeoutMs !== undefined) req.setTimeout(options.idleTimeoutMs, () => req.destroy(new Error(`no answer for ${options.idleTimeoutMs} ms`)));
    req.on('error', (err) => reject(new NoAnswer(`${path}: ${err.message}`, at, performance.now() - begun)));
    req.end(options.body);
  });
}

/** The number of body bytes of an answer read with `discardBody`. */
export function lengthOf(answer: Answer): number {
  return (answer as unknown as { length?: number }).length ?? answer.body.length;
}

/** A registry answer other than the one a pull needs. */
export class PullError extends Error {
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export interface PulledImage {
  name: string;
  system: System;
  /** The platform manifest's digest. */
  manifestDigest: string;
  /** Config and layers, each checked against its digest and size. */
  blobs: number;
  bytes: number;
  at: number;
  ms: number;
}

interface Descriptor {
  digest: string;
  size: number;
  platform?: { architecture: string; os: string };
}

function expectStatus(answer: Answer, path: string): void {
  if (answer.status !== 200) throw new PullError(`${path}: ${answer.status} ${answer.body.toString('utf8').slice(0, 300)}`, answer.status);
}

/**
 * Pulls `name:latest` for `system` as a container client does: the tag with index and manifest
 * media types accepted; the platform's manifest by digest; the config and layers. Every document's
 * and blob's bytes must hash to the digest it was asked by (and the tag's to Docker-Content-Digest),
 * and every blob must have its descriptor's size. Throws NoAnswer or PullError.
 */
export async function pullImage(host: string, name: string, system: System, options: { agent?: Agent | false; idleTimeoutMs?: number } = {}): Promise<PulledImage> {
  const at = Date.now();
  const begun = performance.now();
  const common = { agent: options.agent ?? false, ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}) };
  const tagPath = `/v2/${name}/manifests/latest`;
  const tag = await registryRequest(host, tagPath, { ...common, headers: { Accept: `${OCI_IMAGE_INDEX}, ${OCI_IMAGE_MANIFEST}` } });
  expectStatus(tag, tagPath);
  if (tag.headers['docker-content-digest'] !== tag.digest) {
    throw new PullError(`${tagPath}: Docker-Content-Digest ${String(tag.headers['docker-content-digest'])}, body hashes to ${tag.digest}`, 200);
  }
  const top = JSON.parse(tag.body.toString('utf8')) as { mediaType?: string; manifests?: Descriptor[] };
  let manifestDigest = tag.digest;
  let manifestBody = tag.body;
  if (top.mediaType === OCI_IMAGE_INDEX) {
    const { architecture, os } = ociPlatformFor(system);
    const entry = top.manifests?.find((m) => m.platform?.architecture === architecture && m.platform.os === os);
    if (!entry) throw new PullError(`${tagPath}: the index has no ${architecture} manifest`, 200);
    const path = `/v2/${name}/manifests/${entry.digest}`;
    const manifest = await registryRequest(host, path, { ...common, headers: { Accept: OCI_IMAGE_MANIFEST } });
    expectStatus(manifest, path);
    if (manifest.digest !== entry.digest || manifest.body.length !== entry.size) {
      throw new PullError(`${path}: ${manifest.body.length} bytes hashing to ${manifest.digest}, not ${entry.size} bytes of ${entry.digest}`, 200);
    }
    manifestDigest = entry.digest;
    manifestBody = manifest.body;
  }
  const parsed = JSON.parse(manifestBody.toString('utf8')) as { config: Descriptor; layers: Descriptor[] };
  let bytes = 0;
  for (const blob of [parsed.config, ...parsed.layers]) {
    const path = `/v2/${name}/blobs/${blob.digest}`;
    const answer = await registryRequest(host, path, { ...common, discardBody: true });
    if (answer.status !== 200) throw new PullError(`${path}: ${answer.status}`, answer.status);
    if (answer.digest !== blob.digest || lengthOf(answer) !== blob.size) {
      throw new PullError(`${path}: ${lengthOf(answer)} bytes hashing to ${answer.digest}, not ${blob.size} bytes of ${blob.digest}`, 200);
    }
    bytes += blob.size;
  }
  return { name, system, manifestDigest, blobs: 1 + parsed.layers.length, bytes, at, ms: performance.now() - begun };
}

export interface RetriedPull {
  name: string;
  system: System;
  /** When the first attempt began (Date.now()), and until the last one ended. */
  at: number;
  ms: number;
  attempts: number;
  /** The image, when an attempt succeeded. */
  image?: PulledImage;
  /** Each failed attempt: when it began, how long it took, and why. */
  failures: Array<{ at: number; ms: number; error: string }>;
}

/** What skopeo's retry (containers/common pkg/retry) tries again: network errors, 408, 429, 5xx. */
function retryable(err: unknown): boolean {
  if (err instanceof NoAnswer) return true;
  if (err instanceof PullError) return err.status === 408 || err.status === 429 || err.status >= 500;
  return false;
}

/** skopeo's default with `--retry-times 3`: after 1, 2 and 4 s. */
export const SKOPEO_RETRY_DELAYS_MS = [1_000, 2_000, 4_000];

/** pullImage, retried as skopeo retries a copy: the whole pull again, after SKOPEO_RETRY_DELAYS_MS. */
export async function pullWithRetries(host: string, name: string, system: System, options: { agent?: Agent | false; idleTimeoutMs?: number } = {}): Promise<RetriedPull> {
  const at = Date.now();
  const begun = performance.now();
  const failures: RetriedPull['failures'] = [];
  for (let attempt = 0; ; attempt++) {
    const started = Date.now();
    const t = performance.now();
    try {
      const image = await pullImage(host, name, system, options);
      return { name, system, at, ms: performance.now() - begun, attempts: attempt + 1, image, failures };
    } catch (err) {
      failures.push({ at: started, ms: performance.now() - t, error: (err as Error).message });
      const delay = SKOPEO_RETRY_DELAYS_MS[attempt];
      if (!retryable(err) || delay === undefined) return { name, system, at, ms: performance.now() - begun, attempts: attempt + 1, failures };
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The admin API's prebuild batches (docs/admin-api.md), through the proxy with the admin token.

export class Admin {
  constructor(
    private readonly host: string,
    private readonly token: string,
  ) {}

  /** POST /api/v1/prebuilds: the answer, whatever its status. */
  submit(images: readonly string[], label: string, options: { idleTimeoutMs?: number } = {}): Promise<Answer> {
    return registryRequest(this.host, '/api/v1/prebuilds', {
      method: 'POST',
      headers: { Authorization: `Bearer ${this.token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ images, label }),
      ...options,
    });
  }

  /** POST /api/v1/prebuilds, which must answer 202: the batch. */
  async submitted(images: readonly string[], label: string): Promise<PrebuildBatch> {
    const answer = await this.submit(images, label);
    if (answer.status !== 202) throw new Error(`POST /api/v1/prebuilds: ${answer.status} ${answer.body.toString('utf8').slice(0, 500)}`);
    return JSON.parse(answer.body.toString('utf8')) as PrebuildBatch;
  }

  /** GET /api/v1/prebuilds/<id>: the batch, or undefined with the answer's status when it is not 200. */
  async batch(id: string, options: { idleTimeoutMs?: number } = {}): Promise<{ status: number; batch?: PrebuildBatch }> {
    const answer = await registryRequest(this.host, `/api/v1/prebuilds/${id}`, { headers: { Authorization: `Bearer ${this.token}` }, ...options });
    return answer.status === 200 ? { status: 200, batch: JSON.parse(answer.body.toString('utf8')) as PrebuildBatch } : { status: answer.status };
  }

  /**
   * Polls the batch until it settles; `onPoll` sees every answer (for the times images became
   * built). Polls that get no answer within 5 s, or not 200, are tried again until `timeoutMs`.
   */
  async settled(id: string, timeoutMs: number, onPoll?: (batch: PrebuildBatch) => void, everyMs = 250): Promise<PrebuildBatch> {
    const deadline = Date.now() + timeoutMs;
    let last = 'not asked yet';
    for (;;) {
      try {
        const { status, batch } = await this.batch(id, { idleTimeoutMs: 5_000 });
        if (batch) {
          onPoll?.(batch);
          if (batch.state === 'settled') return batch;
          last = `${batch.state} ${JSON.stringify(batch.counts)}`;
        } else {
          last = `GET answered ${status}`;
        }
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() > deadline) throw new Error(`batch ${id} did not settle within ${Math.round(timeoutMs / 1000)} s: ${last}`);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}

/** A keep-alive agent like a registry client's, with room for `sockets` connections. */
export function keepAliveAgent(sockets: number): Agent {
  return new Agent({ keepAlive: true, maxSockets: sockets });
}
