// Manifests: the documents a client pulls first. One build publishes two of them over the same
// blobs, an OCI image manifest and a Docker schema 2 manifest, because clients differ in what they
// accept. A manifest's digest is its identity (clients pull by it), so the bytes are built here
// once, deterministically (fixed key order, no whitespace), stored as a blob and served verbatim.
import { isDigest, sha256Digest, type Digest } from './digest.js';
import {
  DOCKER_IMAGE_CONFIG,
  DOCKER_LAYER_GZIP,
  DOCKER_MANIFEST_V2,
  OCI_IMAGE_CONFIG,
  OCI_IMAGE_LAYER_GZIP,
  OCI_IMAGE_MANIFEST,
} from './media-types.js';

/** An OCI content descriptor: what a manifest says about each blob it refers to. */
export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
}

/** A blob reference without a media type (the manifest decides the media type). */
export interface BlobRef {
  digest: Digest;
  size: number;
}

/** A document built for storage: its exact bytes, and the descriptor that names them. */
export interface BuiltDocument {
  bytes: Buffer;
  descriptor: Descriptor;
}

/** The bytes of `document` as compact JSON, with the descriptor of those bytes. */
export function jsonDocument(document: unknown, mediaType: string): BuiltDocument {
  const bytes = Buffer.from(JSON.stringify(document), 'utf8');
  return { bytes, descriptor: { mediaType, digest: sha256Digest(bytes), size: bytes.length } };
}

function descriptor(mediaType: string, blob: BlobRef, what: string): Descriptor {
  if (!isDigest(blob.digest)) throw new TypeError(`${what}: invalid digest`);
  if (!Number.isSafeInteger(blob.size) || blob.size < 0) throw new TypeError(`${what}: invalid size`);
  // Key order is part of the bytes: mediaType, digest, size (the OCI spec's order).
  return { mediaType, digest: blob.digest, size: blob.size };
}

function buildManifest(
  mediaType: string,
  configType: string,
  layerType: string,
  config: BlobRef,
  layers: readonly BlobRef[],
): BuiltDocument {
  const document = {
    schemaVersion: 2,
    mediaType,
    config: descriptor(configType, config, 'config'),
    layers: layers.map((layer, i) => descriptor(layerType, layer, `layer ${i}`)),
  };
  return jsonDocument(document, mediaType);
}

/**
 * The OCI image manifest:
 * `{"schemaVersion":2,"mediaType":<OCI manifest>,"config":{<OCI config descriptor>},"layers":[<gzip layer descriptors>]}`.
 * Layers in the given order (the caller's order: highest rating first).
 */
export function buildOciManifest(config: BlobRef, layers: readonly BlobRef[]): BuiltDocument {
  return buildManifest(OCI_IMAGE_MANIFEST, OCI_IMAGE_CONFIG, OCI_IMAGE_LAYER_GZIP, config, layers);
}

/** The Docker image manifest v2 schema 2, over the same config and layer blobs. */
export function buildDockerManifest(config: BlobRef, layers: readonly BlobRef[]): BuiltDocument {
  return buildManifest(DOCKER_MANIFEST_V2, DOCKER_IMAGE_CONFIG, DOCKER_LAYER_GZIP, config, layers);
}
