// From a parsed image name to the job that builds it: the one place where the image key is
// computed from a request, so the API, prebuilds and the worker agree on it.

import { imageKey, LAYERING_VERSION } from './keys.js';
import type { ImageSpec } from './image-name.js';
import { sourceIdentity, type PackageSource } from './package-source.js';
import type { BuildJobData } from './queue.js';

export interface BuildJobInput {
  spec: ImageSpec;
  source: PackageSource;
  /** The resolved revision of the source (a commit, or a marker for an unversioned path). */
  revision: string;
  /** For moving targets: records created before this time are stale (see BuildJobData). */
  freshAfter?: Date;
  requestId?: string;
}

export function buildJobFor({ spec, source, revision, freshAfter, requestId }: BuildJobInput): BuildJobData {
  const key = imageKey({
    source: { identity: sourceIdentity(source), revision },
    system: spec.system,
    packages: spec.packages,
    layeringVersion: LAYERING_VERSION,
  });
  return {
    imageKey: key,
    packages: [...spec.packages],
    system: spec.system,
    source,
    revision,
    ...(freshAfter ? { freshAfter: freshAfter.toISOString() } : {}),
    ...(requestId ? { requestId } : {}),
  };
}
