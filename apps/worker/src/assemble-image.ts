// Phases 4–6 of a build (docs/design.md §1): group the closure into layers (stable layering, the same
// layer for the same paths in every image: docs/layering.md), pack the layers that are not packed
// yet, then publish the image config, both manifests and the manifest record.
//
// Layers are keyed by their store paths, so a layer that another image (or another worker)
// already packed costs one cache lookup here: no tar, no gzip, no write. The rest are packed
// concurrently, each in a single streaming pass whose gzip blocks the worker's one pool of threads
// compresses (pack/block-gzip.ts): a big layer uses every core, and small ones overlap their file
// reads, hashing and storage writes.

import { availableParallelism } from 'node:os';
import pMap from 'p-map';
import {
  FORCED_POPULAR_PNAMES,
  LayerRecordSchema,
  OCI_IMAGE_LAYER_GZIP,
  imageDocuments,
  layerKey,
  planStableLayers,
  publishImageDocuments,
  storePathName,
  symlinkLayerKey,
  type BuildJobData,
  type ClosureGraph,
  type ManifestRecord,
  type Storage,
} from '@nixyard/core';
import type { LayerCache } from './layer-cache.js';
import { storePathEntries, type TarEntry } from './pack/layer-tar.js';
import type { GzipPool } from './pack/gzip-pool.js';
import { packLayer } from './pack/pack-layer.js';
import { buildSymlinkTree, symlinkTreeEntries, type SymlinkTree } from './pack/symlink-layer.js';
import type { Popularity } from './popularity.js';

export interface AssembleDeps {
  storage: Storage;
  layerCache: LayerCache;
  popularity: Popularity;
  /** NIXYARD_MAX_LAYERS: the layer budget, including the symlink layer. */
  maxLayers: number;
  gzipLevel: number;
  /** The threads that compress layers (NIXYARD_PACK_THREADS); the process's shared pool when not given. */
  gzipPool?: GzipPool;
  /** Layers packed at once; defaults to the cores available. */
  packConcurrency?: number;
}

export interface AssembleInput {
  graph: ClosureGraph;
  /** Every package's image outputs, in package order (the symlink layer's priority order). */
  packageOutputs: string[];
}

/** A layer as the image uses it, packed now or found in the cache. */
export interface ImageLayer {
  digest: ManifestRecord['layers'][number]['digest'];
  diffId: ManifestRecord['layers'][number]['diffId'];
  size: number;
  /** True when this build packed it; false for a cache hit. */
  packed: boolean;
}

export interface Assembled {
  record: ManifestRecord;
  layers: ImageLayer[];
  timings: { layer: number; pack: number; publish: number };
}

const CA_BUNDLE = '/etc/ssl/certs/ca-bundle.crt';

export async function assembleImage(deps: AssembleDeps, data: BuildJobData, input: AssembleInput): Promise<Assembled> {
  let t = performance.now();
  const names = [...new Set(input.graph.paths.map((p) => storePathName(p.path)))];
  // LAYERING_VERSION 4: stable layering (docs/layering.md). Popularity only orders the layers now,
  // so it does not matter whether this image's own paths were learned yet.
  const planned = planStableLayers(input.graph, {
    budget: deps.maxLayers - 1,
    popularity: await deps.popularity.counts(names),
    forcedPopular: FORCED_POPULAR_PNAMES,
  });
  const tree = await buildSymlinkTree(input.packageOutputs);
  const layerMs = performance.now() - t;

  t = performance.now();
  const jobs: LayerJob[] = [
    ...planned.map((l) => ({ key: layerKey(l.storePaths), storePaths: l.storePaths, rating: l.rating, entries: () => storePathEntries(l.storePaths) })),
    // The symlink layer goes last: it is the one layer no other image is likely to share.
    { key: symlinkLayerKey(input.packageOutputs), storePaths: [], rating: 0, entries: () => symlinkTreeEntries(tree) },
  ];
  const layers = await pMap(jobs, (job) => cachedOrPacked(deps, job), { concurrency: deps.packConcurrency ?? availableParallelism() });
  const packMs = performance.now() - t;

  t = performance.now();
  const record = await publish(deps.storage, data, layers, tree);
  const publishMs = performance.now() - t;

  return { record, layers, timings: { layer: layerMs, pack: packMs, publish: publishMs } };
}

interface LayerJob {
  key: string;
  storePaths: string[];
  rating: number;
  entries(): AsyncIterable<TarEntry> | Iterable<TarEntry>;
}

async function cachedOrPacked(deps: AssembleDeps, job: LayerJob): Promise<ImageLayer> {
  const cached = await deps.layerCache.get(job.key);
  if (cached) return { digest: cached.digest, diffId: cached.diffId, size: cached.size, packed: false };
  // Two workers may pack the same layer at once: the tar is deterministic and blobs are
  // content-addressed, so the loser's write finds the blob in place and both records agree.
  const packed = await packLayer(deps.storage, job.entries(), { gzipLevel: deps.gzipLevel, pool: deps.gzipPool });
  await deps.layerCache.put(
    LayerRecordSchema.parse({
      layerKey: job.key,
      digest: packed.digest,
      diffId: packed.diffId,
      size: packed.size,
      mediaType: OCI_IMAGE_LAYER_GZIP,
      storePaths: job.storePaths,
      rating: job.rating,
    }),
  );
  return { digest: packed.digest, diffId: packed.diffId, size: packed.size, packed: true };
}

async function publish(storage: Storage, data: BuildJobData, layers: ImageLayer[], tree: SymlinkTree): Promise<ManifestRecord> {
  const env = ['PATH=/bin:/usr/bin'];
  if (tree.nodes.has(CA_BUNDLE)) env.push(`SSL_CERT_FILE=${CA_BUNDLE}`);
  const documents = imageDocuments(data, layers, { env, cmd: tree.nodes.has('/bin/bash') ? ['bash'] : undefined });
  await publishImageDocuments(storage, documents);
  return documents.record;
}
