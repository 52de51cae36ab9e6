// GET/HEAD /v2/<name>/manifests/<reference>.
//
// A tag resolves to a source revision (source-resolver.ts). A stored manifest record for that
// image answers at once (no queue, no Nix) while it is fresh: forever for an immutable revision,
// NIXERY_MANIFEST_TTL seconds for a moving one. Otherwise the build is enqueued, de-duplicated by
// image key, and the request waits for it. A digest is answered from storage alone. HEAD builds
// exactly like GET when nothing is stored, because containerd starts every pull with HEAD.
//
// A warm pull reads nothing from storage: records and manifests come from the API's memory
// (record-cache.ts, content-cache.ts), which say why that stays correct across replicas.
//
// With NIXYARD_INDEX_SYSTEMS, a name without an explicit system answers clients that accept an
// index with one manifest per system; other clients get the first system's manifest.

import {
  HEARTBEAT_INTERVAL_MS,
  INDEX_MEDIA_TYPES,
  MANIFEST_MEDIA_TYPES,
  RegistryError,
  buildDockerManifestList,
  buildOciIndex,
  checkAgainstIndex,
  isFresh,
  sourceIdentity,
  type BuildJobData,
  type BuiltDocument,
  type Digest,
  type ImageSpec,
  type ManifestRecord,
  type Storage,
  type System,
} from '@nixyard/core';
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { chooseIndexFormat, chooseManifestFormat, type ManifestFormat } from './accept.js';
import type { ColdBuildRequest } from './cold-builds.js';
import type { ContentCache } from './content-cache.js';
import { indexSystemsFor, jobForImage } from './image-records.js';
import type { LiveWorkers } from './live-workers.js';
import type { ApiMetrics } from './metrics.js';
import type { PackageIndexCache } from './package-index-cache.js';
import { manifestRequestOf } from './path-params.js';
import type { RecordCache } from './record-cache.js';
import type { ResolvedTag, SourceResolver } from './source-resolver.js';

/** Manifests are small JSON documents; anything larger under a digest is not one of ours. */
const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

// Collaborators are narrow Picks, so in-process tests can hand in fakes (no Redis, no git).
export interface ManifestDeps {
  storage: Storage;
  /** Manifest records by image key. */
  records: Pick<RecordCache, 'get' | 'read'>;
  /** Manifests and other blobs by digest. */
  content: Pick<ContentCache, 'document'>;
  packageIndex: Pick<PackageIndexCache, 'get'>;
  /** Builds for cold pulls: negative cache, admission control, the queue (cold-builds.ts). */
  builds: { build(job: BuildJobData, request: ColdBuildRequest): Promise<unknown> };
  resolver: Pick<SourceResolver, 'source' | 'resolve'>;
  liveWorkers: Pick<LiveWorkers, 'count'>;
  /** NIXYARD_SYSTEMS: the systems this registry serves. */
  systems: readonly System[];
  /** NIXYARD_INDEX_SYSTEMS: systems combined into an index for names without `arm64`. */
  indexSystems: readonly System[] | undefined;
  manifestTtlSeconds: number;
  metrics: Pick<ApiMetrics, 'manifestRequests'>;
}

export interface ManifestQuery {
  name: string;
  reference: string;
  accept: string | string[] | undefined;
  head: boolean;
  requestId: string;
  /** The client's address (client-address.ts), for per-client admission limits. */
  client: string;
  /** Throws when this client may not start a build (NIXYARD_PULL_AUTH, auth/pull-auth.ts). */
  authorizeBuild?: () => void;
}

export async function serveManifest(deps: ManifestDeps, query: ManifestQuery, res: ServerResponse): Promise<void> {
  const request = manifestRequestOf(query.name, query.reference);
  if (request.reference.kind === 'digest') {
    return serveManifestByDigest(deps.content, request.reference.digest as Digest, query.head, res);
  }
  const resolved = await deps.resolver.resolve(request.reference.tag);
  // An explicit `arm64` picks one system; otherwise the index systems, when there are several.
  const indexSystems = indexSystemsFor(request, deps.indexSystems);
  const indexFormat = indexSystems && chooseIndexFormat(query.accept);

  if (indexSystems && indexFormat) {
    const records = await Promise.all(indexSystems.map((system) => manifestRecordFor(deps, { ...request, system }, resolved, query)));
    const entries = records.map((record) => ({ system: record.system, manifest: record.manifests[indexFormat] }));
    const index: BuiltDocument = indexFormat === 'oci' ? buildOciIndex(entries) : buildDockerManifestList(entries);
    // Stored so that a client can fetch it again by digest.
    if (!(await deps.content.document(index.descriptor.digest, MAX_MANIFEST_BYTES))) {
      await deps.storage.writeBlob(Readable.from([index.bytes]), index.descriptor.digest);
    }
    return sendManifest(res, index.bytes, index.descriptor.mediaType, index.descriptor.digest, query.head);
  }

  const system = indexSystems ? indexSystems[0]! : request.system;
  const record = await manifestRecordFor(deps, { ...request, system }, resolved, query);
  const format: ManifestFormat = chooseManifestFormat(query.accept);
  const descriptor = record.manifests[format];
  const bytes = await readManifestBlob(deps.content, descriptor.digest);
  if (!bytes) throw new RegistryError('MANIFEST_UNKNOWN', `the manifest ${descriptor.digest} is missing from storage`, { digest: descriptor.digest });
  sendManifest(res, bytes, mediaTypeOf(bytes) ?? '', descriptor.digest, query.head);
}

async function manifestRecordFor(
  deps: ManifestDeps,
  spec: ImageSpec,
  resolved: ResolvedTag,
  query: Pick<ManifestQuery, 'requestId' | 'client' | 'authorizeBuild'>,
): Promise<ManifestRecord> {
  if (!deps.systems.includes(spec.system)) {
    throw new RegistryError('MANIFEST_UNKNOWN', `this registry does not serve ${spec.system} images`, { system: spec.system });
  }
  const job = jobForImage(deps.resolver.source, spec, resolved, deps.manifestTtlSeconds, query.requestId);
  const stored = await deps.records.get(job.imageKey, (record) => isFresh(record, job.freshAfter));
  if (stored) {
    deps.metrics.manifestRequests.inc({ cache: 'hit' });
    return stored;
  }
  deps.metrics.manifestRequests.inc({ cache: 'miss' });
  await refuseKnownUnknowns(deps, job);
  // Past here the pull starts a build: what NIXYARD_PULL_AUTH=builds keeps for logged-in users.
  query.authorizeBuild?.();
  if ((await deps.liveWorkers.count(spec.system)) === 0) {
    // A worker that starts announces itself at once, and a live one every HEARTBEAT_INTERVAL_MS.
    throw new RegistryError('UNAVAILABLE', `no worker builds ${spec.system} images right now; try again later`, { system: spec.system }, { retryAfterSeconds: HEARTBEAT_INTERVAL_MS / 1000 });
  }
  await deps.builds.build(job, { client: query.client });
  const built = await deps.records.read(job.imageKey);
  if (!built) throw new RegistryError('UNKNOWN', 'the build finished but its manifest record is missing from storage');
  return built;
}

/** Answers a misspelled package from the package index, without a build job, when it can. */
async function refuseKnownUnknowns(deps: ManifestDeps, job: BuildJobData): Promise<void> {
  const names = await deps.packageIndex.get({ source: { identity: sourceIdentity(job.source), revision: job.revision }, system: job.system });
  if (!names) return;
  const verdict = checkAgainstIndex(names, job.packages);
  if (verdict.kind === 'unknown') {
    throw new RegistryError('MANIFEST_UNKNOWN', `unknown packages: ${verdict.packages.join(', ')}`, { packages: verdict.packages });
  }
}

async function serveManifestByDigest(content: ManifestDeps['content'], digest: Digest, head: boolean, res: ServerResponse): Promise<void> {
  const bytes = await readManifestBlob(content, digest);
  const mediaType = bytes && mediaTypeOf(bytes);
  if (!bytes || !mediaType) throw new RegistryError('MANIFEST_UNKNOWN', `no manifest with digest ${digest}`, { digest });
  sendManifest(res, bytes, mediaType, digest, head);
}

function readManifestBlob(content: ManifestDeps['content'], digest: Digest): Promise<Buffer | undefined> {
  return content.document(digest, MAX_MANIFEST_BYTES);
}

/** Parsed once per cached manifest: the bytes are immutable, so is their media type. */
const mediaTypes = new WeakMap<Buffer, string | null>();

/** The manifest's own mediaType field, when the blob is a manifest or index at all. */
function mediaTypeOf(bytes: Buffer): string | undefined {
  let mediaType = mediaTypes.get(bytes);
  if (mediaType === undefined) {
    mediaType = parseMediaType(bytes) ?? null;
    mediaTypes.set(bytes, mediaType);
  }
  return mediaType ?? undefined;
}

function parseMediaType(bytes: Buffer): string | undefined {
  try {
    const mediaType: unknown = JSON.parse(bytes.toString('utf8'))?.mediaType;
    const known: readonly string[] = [...MANIFEST_MEDIA_TYPES, ...INDEX_MEDIA_TYPES];
    return typeof mediaType === 'string' && known.includes(mediaType) ? mediaType : undefined;
  } catch {
    return undefined;
  }
}

function sendManifest(res: ServerResponse, bytes: Buffer, mediaType: string, digest: Digest, head: boolean): void {
  res.statusCode = 200;
  res.setHeader('Content-Type', mediaType);
  res.setHeader('Content-Length', bytes.length);
  res.setHeader('Docker-Content-Digest', digest);
  res.setHeader('ETag', `"${digest}"`);
  res.end(head ? undefined : bytes);
}
