// Content negotiation for manifests. Nixyard stores an OCI and a Docker schema 2 manifest for
// every image (both describe the same blobs, so either costs the same) and, for multi-architecture
// tags, can answer with an OCI index or a Docker manifest list. OCI wins whenever the client
// accepts it (or states no preference); Docker formats are for clients that only ask for them.

import { DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2, OCI_IMAGE_INDEX, OCI_IMAGE_MANIFEST } from '@nixyard/core';

export type ManifestFormat = 'oci' | 'docker';

/** Media types listed in Accept headers (several headers arrive joined by ", "). */
export function acceptedMediaTypes(accept: string | string[] | undefined): string[] {
  const raw = Array.isArray(accept) ? accept.join(',') : accept ?? '';
  return raw
    .split(',')
    .map((part) => part.split(';')[0]!.trim().toLowerCase())
    .filter(Boolean);
}

export function chooseManifestFormat(accept: string | string[] | undefined): ManifestFormat {
  const types = acceptedMediaTypes(accept);
  if (types.length === 0) return 'oci';
  if (types.includes(OCI_IMAGE_MANIFEST) || types.includes('*/*') || types.includes('application/*')) return 'oci';
  if (types.includes(DOCKER_MANIFEST_V2)) return 'docker';
  return 'oci';
}

/** The index format a client accepts, if any. Only an explicit Accept counts: an index sent to a
 * client that did not ask for one would break older clients. */
export function chooseIndexFormat(accept: string | string[] | undefined): ManifestFormat | undefined {
  const types = acceptedMediaTypes(accept);
  if (types.includes(OCI_IMAGE_INDEX)) return 'oci';
  if (types.includes(DOCKER_MANIFEST_LIST)) return 'docker';
  return undefined;
}
