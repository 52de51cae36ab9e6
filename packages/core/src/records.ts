// Storage records: the small JSON documents kept beside the blobs (docs/design.md §2, §5). A manifest
// record says what an image key was built into; a layer record lets any replica reuse a layer
// (and sort it the same way) without packing it again. Records are read back by other processes,
// possibly of another version, so they are validated with these schemas on the way in; unknown
// fields are dropped rather than refused, so a newer writer does not break an older reader.
// How a record is read, when it is fresh and which blobs it names are decided here once, for the
// API, the worker, gc and fsck alike.
import { z } from 'zod';
import { AttributePathSchema } from './attribute-path.js';
import { DigestSchema, type Digest } from './digest.js';
import { KeySchema, isKey } from './keys.js';
import { OCI_IMAGE_LAYER_GZIP } from './media-types.js';
import type { Storage } from './storage/storage.js';
import { SystemSchema } from './systems.js';

const ByteCount = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

const isSortedUnique = (values: readonly string[]): boolean =>
  values.every((value, i) => i === 0 || (values[i - 1] as string) < value);

/** A blob by digest and size (the shape of manifest.ts's BlobRef). */
export const BlobRefSchema = z.object({ digest: DigestSchema, size: ByteCount });

export const LayerRecordSchema = z.object({
  /** layerKey(storePaths) for store-path layers. */
  layerKey: KeySchema,
  /** Digest of the gzip blob (what manifests list). */
  digest: DigestSchema,
  /** Digest of the uncompressed tar (what the image config lists). */
  diffId: DigestSchema,
  /** Size of the gzip blob in bytes. */
  size: ByteCount,
  mediaType: z.literal(OCI_IMAGE_LAYER_GZIP),
  /** The store paths in the layer, sorted (code-unit order) and unique. */
  storePaths: z
    .array(z.string().min(1).startsWith('/', 'expected an absolute store path'))
    .refine(isSortedUnique, 'expected sorted, unique store paths'),
  /** Rating (planStableLayers, planLayers): popularity × closure sizes of its paths; highest first. */
  rating: z.number().min(0),
});
export type LayerRecord = z.infer<typeof LayerRecordSchema>;

export const ManifestRecordSchema = z.object({
  imageKey: KeySchema,
  system: SystemSchema,
  /** The image's packages, sorted and unique, meta-packages expanded. */
  packages: z.array(AttributePathSchema).min(1).refine(isSortedUnique, 'expected sorted, unique packages'),
  source: z.object({ identity: z.string().min(1), revision: z.string().min(1) }),
  /** The image config blob (one blob serves both manifests). */
  config: BlobRefSchema,
  manifests: z.object({ oci: BlobRefSchema, docker: BlobRefSchema }),
  /** In manifest order. */
  layers: z.array(z.object({ digest: DigestSchema, diffId: DigestSchema, size: ByteCount })),
  /** When the image was built, ISO 8601 (for manifest TTLs and the admin API; not in any blob). */
  createdAt: z.iso.datetime({ offset: true }),
});
export type ManifestRecord = z.infer<typeof ManifestRecordSchema>;

export const MANIFEST_RECORD_PREFIX = 'manifests/';
export const LAYER_RECORD_PREFIX = 'layers/';

/** `manifests/<imageKey>`. Throws TypeError unless imageKey is 64 lowercase hex. */
export function manifestRecordKey(imageKey: string): string {
  if (!isKey(imageKey)) throw new TypeError('manifestRecordKey: expected a 64-hex image key');
  return `${MANIFEST_RECORD_PREFIX}${imageKey}`;
}

/** `layers/<layerKey>`. Throws TypeError unless layerKey is 64 lowercase hex. */
export function layerRecordKey(layerKey: string): string {
  if (!isKey(layerKey)) throw new TypeError('layerRecordKey: expected a 64-hex layer key');
  return `${LAYER_RECORD_PREFIX}${layerKey}`;
}

/** The manifest record of an image key, when one exists; a record that does not parse counts as absent. */
export async function readManifestRecord(storage: Pick<Storage, 'getRecord'>, imageKey: string): Promise<ManifestRecord | undefined> {
  return ManifestRecordSchema.safeParse(await storage.getRecord(manifestRecordKey(imageKey))).data;
}

/**
 * Whether a record may be served for a job that asks for one newer than `freshAfter` (ISO 8601 or
 * a Date; a moving target's TTL). Without `freshAfter` (a pinned revision) every record is fresh.
 */
export function isFresh(record: Pick<ManifestRecord, 'createdAt'>, freshAfter: string | Date | undefined): boolean {
  if (freshAfter === undefined) return true;
  const after = freshAfter instanceof Date ? freshAfter.getTime() : Date.parse(freshAfter);
  return Date.parse(record.createdAt) > after;
}

/** Every blob a manifest record names: the config, both manifests and the layers. */
export function blobsOfRecord(record: ManifestRecord): Digest[] {
  return [record.config.digest, record.manifests.oci.digest, record.manifests.docker.digest, ...record.layers.map((l) => l.digest)];
}
