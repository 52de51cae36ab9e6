// Multi-architecture tags: one index (OCI) or manifest list (Docker) naming one image manifest
// per system. Clients pick their platform from it; each manifest was built by its own farm.

import { ociPlatformFor, type System } from './systems.js';
import { jsonDocument, type BlobRef, type BuiltDocument } from './manifest.js';
import { DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2, OCI_IMAGE_INDEX, OCI_IMAGE_MANIFEST } from './media-types.js';

export interface PlatformManifest {
  system: System;
  manifest: BlobRef;
}

function buildIndex(mediaType: string, manifestType: string, entries: readonly PlatformManifest[]): BuiltDocument {
  if (entries.length === 0) throw new RangeError('an index needs at least one manifest');
  const document = {
    schemaVersion: 2,
    mediaType,
    manifests: entries.map(({ system, manifest }) => {
      const { architecture, os } = ociPlatformFor(system);
      return { mediaType: manifestType, digest: manifest.digest, size: manifest.size, platform: { architecture, os } };
    }),
  };
  return jsonDocument(document, mediaType);
}

/** `{"schemaVersion":2,"mediaType":<OCI index>,"manifests":[{mediaType,digest,size,platform}]}`, in the given order. */
export function buildOciIndex(entries: readonly PlatformManifest[]): BuiltDocument {
  return buildIndex(OCI_IMAGE_INDEX, OCI_IMAGE_MANIFEST, entries);
}

/** The Docker manifest list over the systems' Docker schema 2 manifests. */
export function buildDockerManifestList(entries: readonly PlatformManifest[]): BuiltDocument {
  return buildIndex(DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2, entries);
}
