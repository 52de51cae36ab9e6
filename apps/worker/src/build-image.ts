// The build job's processor (DESIGN §1): a plain async function of the job data, so it runs the
// same under BullMQ, in tests and in a benchmark. Phases: resolve, build and graph (Nix), layer,
// pack (tar, gzip and both hashes straight into storage) and publish (config, manifests, record).

import { Readable } from 'node:stream';
import {
  BuildFailureError,
  LayerRecordSchema,
  ManifestRecordSchema,
  OCI_IMAGE_LAYER_GZIP,
  OCI_IMAGE_MANIFEST,
  buildDockerManifest,
  buildImageConfig,
  buildOciManifest,
  groupLayers,
  layerKey,
  layerRecordKey,
  manifestRecordKey,
  sourceIdentity,
  type BuildJobData,
  type BuildResult,
  type BuiltDocument,
  type ManifestRecord,
  type PlannedLayer,
  type Storage,
} from '@nixyard/core';
import { buildClosure } from './build-closure.js';
import type { Nix } from './nix/nix.js';
import { publishPackageIndex } from './package-index.js';
import { storePathEntries } from './pack/layer-tar.js';
import { packLayer, type PackedLayer } from './pack/pack-layer.js';
import { buildSymlinkTree, packSymlinkLayer, type SymlinkTree } from './pack/symlink-layer.js';

export interface BuildImageDeps {
  nix: Nix;
  storage: Storage;
  /** NIXYARD_MAX_LAYERS: the layer budget, including the symlink layer. */
  maxLayers: number;
  gzipLevel: number;
  /** Called when Nix work starts and when it ends, for the builds counter. */
  onNixBuild?(event: 'started' | 'succeeded' | 'failed'): void;
  /** Problems that do not fail the build. */
  warn?(message: string, err: unknown): void;
}

const CA_BUNDLE = '/etc/ssl/certs/ca-bundle.crt';

export async function buildImage(deps: BuildImageDeps, data: BuildJobData): Promise<BuildResult> {
  // A job can be enqueued again just after an identical one finished (its pull looked for the
  // record a moment before it was written); the record makes that job free.
  const existing = await readManifestRecord(deps.storage, data.imageKey);
  if (existing) return resultOf(existing, { resolve: 0, build: 0, graph: 0, layer: 0, pack: 0, publish: 0 });

  await publishPackageIndex(deps.nix, deps.storage, data).catch((err: unknown) => deps.warn?.('could not publish the package index', err));

  deps.onNixBuild?.('started');
  let closure;
  try {
    closure = await buildClosure(deps.nix, { source: data.source, system: data.system, packages: data.packages });
    deps.onNixBuild?.('succeeded');
  } catch (err) {
    deps.onNixBuild?.('failed');
    throw err;
  }

  let t = performance.now();
  const planned = groupLayers(closure.graph, deps.maxLayers - 1);
  const packageOutputs = closure.packages.flatMap((p) => Object.values(p.outputs));
  const tree = await buildSymlinkTree(packageOutputs);
  const layerMs = performance.now() - t;

  t = performance.now();
  const layers = await inStorage(async () => {
    const packed: PackedLayer[] = [];
    for (const layer of planned) packed.push(await packStorePathLayer(deps, layer));
    packed.push(await packSymlinkLayer(deps.storage, tree, { gzipLevel: deps.gzipLevel }));
    return packed;
  });
  const packMs = performance.now() - t;

  t = performance.now();
  const record = await inStorage(() => publish(deps.storage, data, layers, tree));
  const publishMs = performance.now() - t;

  return resultOf(record, { ...closure.timings, layer: layerMs, pack: packMs, publish: publishMs });
}

async function packStorePathLayer(deps: BuildImageDeps, layer: PlannedLayer): Promise<PackedLayer> {
  const key = layerKey(layer.storePaths);
  const cached = LayerRecordSchema.safeParse(await deps.storage.getRecord(layerRecordKey(key)));
  if (cached.success && (await deps.storage.statBlob(cached.data.digest))) {
    return { digest: cached.data.digest, diffId: cached.data.diffId, size: cached.data.size, created: false };
  }
  const packed = await packLayer(deps.storage, storePathEntries(layer.storePaths), { gzipLevel: deps.gzipLevel });
  await deps.storage.putRecord(
    layerRecordKey(key),
    LayerRecordSchema.parse({
      layerKey: key,
      digest: packed.digest,
      diffId: packed.diffId,
      size: packed.size,
      mediaType: OCI_IMAGE_LAYER_GZIP,
      storePaths: layer.storePaths,
      rating: layer.narSize,
    }),
  );
  return packed;
}

async function publish(storage: Storage, data: BuildJobData, layers: PackedLayer[], tree: SymlinkTree): Promise<ManifestRecord> {
  const env = ['PATH=/bin:/usr/bin'];
  if (tree.nodes.has(CA_BUNDLE)) env.push(`SSL_CERT_FILE=${CA_BUNDLE}`);
  const config = buildImageConfig({
    system: data.system,
    diffIds: layers.map((l) => l.diffId),
    env,
    ...(tree.nodes.has('/bin/bash') ? { cmd: ['bash'] } : {}),
  });
  const refs = layers.map((l) => ({ digest: l.digest, size: l.size }));
  const configRef = { digest: config.descriptor.digest, size: config.descriptor.size };
  const oci = buildOciManifest(configRef, refs);
  const docker = buildDockerManifest(configRef, refs);
  for (const doc of [config, oci, docker]) await writeDocument(storage, doc);

  const record = ManifestRecordSchema.parse({
    imageKey: data.imageKey,
    system: data.system,
    packages: data.packages,
    source: { identity: sourceIdentity(data.source), revision: data.revision },
    config: configRef,
    manifests: {
      oci: { digest: oci.descriptor.digest, size: oci.descriptor.size },
      docker: { digest: docker.descriptor.digest, size: docker.descriptor.size },
    },
    layers: layers.map((l) => ({ digest: l.digest, diffId: l.diffId, size: l.size })),
    createdAt: new Date().toISOString(),
  });
  // Written last: once it exists, every blob it names is already in place.
  await storage.putRecord(manifestRecordKey(data.imageKey), record);
  return record;
}

async function writeDocument(storage: Storage, doc: BuiltDocument): Promise<void> {
  await storage.writeBlob(Readable.from([doc.bytes]), doc.descriptor.digest);
}

async function readManifestRecord(storage: Storage, imageKey: string): Promise<ManifestRecord | undefined> {
  const parsed = ManifestRecordSchema.safeParse(await storage.getRecord(manifestRecordKey(imageKey)));
  return parsed.success ? parsed.data : undefined;
}

function resultOf(record: ManifestRecord, timings: BuildResult['timings']): BuildResult {
  return { imageKey: record.imageKey, manifestDigest: record.manifests.oci.digest, mediaType: OCI_IMAGE_MANIFEST, timings };
}

/** Storage errors become the typed STORAGE failure, so the API can tell them from build errors. */
async function inStorage<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof BuildFailureError) throw err;
    throw new BuildFailureError({ code: 'STORAGE', message: err instanceof Error ? err.message : String(err) });
  }
}
