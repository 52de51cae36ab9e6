// Chooses between the two manifest formats Nixyard stores for every image. Both describe the
// same config and layer blobs, so serving either costs the same. OCI wins whenever the client
// accepts it (or states no preference); Docker schema 2 is for clients that only ask for it.

import { DOCKER_MANIFEST_V2, OCI_IMAGE_MANIFEST } from '@nixyard/core';

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
