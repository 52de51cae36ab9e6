// Publishing an image: from a build job and its packed layers to the blobs and the record that
// make it pullable. The config and both manifests are content-addressed blobs; the manifest record
// names them and is written last, so a reader that finds the record finds every blob it names.
// Workers publish through here, and tests that stand in for a worker publish the same way.

import { Readable } from 'node:stream';
import type { Digest } from './digest.js';
import { buildImageConfig } from './image-config.js';
import { buildDockerManifest, buildOciManifest, type BuiltDocument } from './manifest.js';
import { sourceIdentity } from './package-source.js';
import type { BuildJobData } from './queue.js';
import { ManifestRecordSchema, manifestRecordKey, type ManifestRecord } from './records.js';
import type { Storage } from './storage/storage.js';

export interface PublishedLayer {
  /** The gzip blob's digest and size (what manifests list). */
  digest: Digest;
  size: number;
  /** The uncompressed tar's digest (what the image config lists). */
  diffId: Digest;
}

export interface ImageDocuments {
  config: BuiltDocument;
  oci: BuiltDocument;
  docker: BuiltDocument;
  record: ManifestRecord;
}

/**
 * The config, both manifests and the record of an image built for `job` from `layers` (in manifest
 * order). Labels name the source, its revision and the packages, so `skopeo inspect` tells what an
 * image holds.
 */
export function imageDocuments(
  job: BuildJobData,
  layers: readonly PublishedLayer[],
  runtime: { env: string[]; cmd?: string[] | undefined },
  createdAt = new Date(),
): ImageDocuments {
  const config = buildImageConfig({
    system: job.system,
    diffIds: layers.map((l) => l.diffId),
    env: runtime.env,
    labels: {
      'org.opencontainers.image.source': sourceIdentity(job.source),
      'org.opencontainers.image.revision': job.revision,
      'dev.nixyard.packages': job.packages.join(' '),
    },
    ...(runtime.cmd ? { cmd: runtime.cmd } : {}),
  });
  const refs = layers.map((l) => ({ digest: l.digest, size: l.size }));
  const configRef = { digest: config.descriptor.digest, size: config.descriptor.size };
  const oci = buildOciManifest(configRef, refs);
  const docker = buildDockerManifest(configRef, refs);
  const record = ManifestRecordSchema.parse({
    imageKey: job.imageKey,
    system: job.system,
    packages: job.packages,
    source: { identity: sourceIdentity(job.source), revision: job.revision },
    config: configRef,
    manifests: {
      oci: { digest: oci.descriptor.digest, size: oci.descriptor.size },
      docker: { digest: docker.descriptor.digest, size: docker.descriptor.size },
    },
    layers: layers.map((l) => ({ digest: l.digest, diffId: l.diffId, size: l.size })),
    createdAt: createdAt.toISOString(),
  });
  return { config, oci, docker, record };
}

/** Writes the documents' blobs, then the record. The layers must already be in storage. */
export async function publishImageDocuments(storage: Storage, documents: ImageDocuments): Promise<void> {
  for (const doc of [documents.config, documents.oci, documents.docker]) {
    await storage.writeBlob(Readable.from([doc.bytes]), doc.descriptor.digest);
  }
  await storage.putRecord(manifestRecordKey(documents.record.imageKey), documents.record);
}
