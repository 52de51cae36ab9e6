// The name, reference and digest of a /v2/ URL, parsed for the pull endpoints. Core's parsers say
// what is wrong with a value (NAME_INVALID, TAG_INVALID, DIGEST_INVALID: 400s, which the admin API
// and the CLI want), but the distribution spec's endpoint table lists 404 as the only failure of
// end-2 (blobs), end-3 (manifests) and end-8a/b (tags/list). A value that cannot name anything
// names nothing Nixyard can serve, so it is answered as the unknown thing it fails to name:
// NAME_UNKNOWN for a name, MANIFEST_UNKNOWN for a reference that is neither a tag nor a digest,
// BLOB_UNKNOWN for a blob digest. Core's message and detail go along: they say what is wrong.

import {
  RegistryError,
  parseDigest,
  parseImageName,
  parseReference,
  type Digest,
  type ImageRequest,
  type ImageSpec,
  type RegistryErrorCode,
} from '@nixyard/core';

const INVALID: ReadonlySet<RegistryErrorCode> = new Set(['NAME_INVALID', 'TAG_INVALID', 'DIGEST_INVALID']);

function parsed<T>(parse: () => T, unknown: RegistryErrorCode): T {
  try {
    return parse();
  } catch (err) {
    if (err instanceof RegistryError && INVALID.has(err.code)) {
      throw new RegistryError(unknown, err.message, err.detail, { cause: err });
    }
    throw err;
  }
}

/** The `<name>` of any pull endpoint; 404 NAME_UNKNOWN outside the grammar (docs/design.md §2). */
export function imageNameOf(name: string): ImageSpec {
  return parsed(() => parseImageName(name), 'NAME_UNKNOWN');
}

/** `/v2/<name>/manifests/<reference>`, the name first; a bad reference is 404 MANIFEST_UNKNOWN. */
export function manifestRequestOf(name: string, reference: string): ImageRequest {
  const spec = imageNameOf(name);
  return { ...spec, reference: parsed(() => parseReference(reference), 'MANIFEST_UNKNOWN') };
}

/** `/v2/<name>/blobs/<digest>`, the name first; a bad digest is 404 BLOB_UNKNOWN. */
export function blobDigestOf(name: string, digest: string): Digest {
  imageNameOf(name);
  return parsed(() => parseDigest(digest), 'BLOB_UNKNOWN');
}
