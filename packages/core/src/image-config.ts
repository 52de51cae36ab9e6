// Image config: the blob that tells a runtime how to run an image (platform, environment,
// command) and which uncompressed layers (diff_ids) make up its root filesystem. Nothing in it
// depends on when or where it was built: the timestamp is fixed, so the same inputs give the same
// bytes and digest on every replica. One config blob serves both the OCI and the Docker manifest.
import { isDigest, type Digest } from './digest.js';
import { jsonDocument, type BuiltDocument } from './manifest.js';
import { OCI_IMAGE_CONFIG } from './media-types.js';
import { ociPlatformFor, type System } from './systems.js';

/** The fixed creation time of every image and layer (the epoch plus one second, as Nix does). */
export const IMAGE_CREATED = '1970-01-01T00:00:01Z';

/** What each layer's history entry names as its creator. */
export const HISTORY_CREATED_BY = 'nixyard';

export interface ImageConfigInput {
  system: System;
  /** sha256 of each uncompressed layer tar, in manifest order. */
  diffIds: readonly Digest[];
  /** `NAME=value` entries, in the given order. */
  env: readonly string[];
  cmd?: readonly string[];
  labels?: Readonly<Record<string, string>>;
}

/**
 * The OCI image config, as exact bytes and an OCI config descriptor (a Docker manifest refers to
 * the same digest and size with the Docker config media type):
 * `{"created","architecture","os","config":{"Env","Cmd"?,"Labels"?},"rootfs":{"type":"layers","diff_ids"},"history"}`.
 * `Cmd` and `Labels` are left out when not given; labels are written in sorted key order.
 */
export function buildImageConfig(input: ImageConfigInput): BuiltDocument {
  const { architecture, os } = ociPlatformFor(input.system);
  input.diffIds.forEach((diffId, i) => {
    if (!isDigest(diffId)) throw new TypeError(`buildImageConfig: diff id ${i} is not a digest`);
  });
  if (!input.env.every((entry) => typeof entry === 'string')) throw new TypeError('buildImageConfig: env must be strings');

  const config: { Env: string[]; Cmd?: string[]; Labels?: Record<string, string> } = { Env: [...input.env] };
  if (input.cmd !== undefined) config.Cmd = [...input.cmd];
  if (input.labels !== undefined) {
    // fromEntries defines own properties, so even a label named "__proto__" is kept as data.
    const names = Object.keys(input.labels).sort();
    config.Labels = Object.fromEntries(names.map((name) => [name, String(input.labels?.[name])]));
  }

  const document = {
    created: IMAGE_CREATED,
    architecture,
    os,
    config,
    rootfs: { type: 'layers', diff_ids: [...input.diffIds] },
    history: input.diffIds.map(() => ({ created: IMAGE_CREATED, created_by: HISTORY_CREATED_BY })),
  };
  return jsonDocument(document, OCI_IMAGE_CONFIG);
}
