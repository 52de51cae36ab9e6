// Which revision of the package source keys an image right now (DESIGN §2).
//
// Only local paths are served so far: a path has no revision of its own, so its images are keyed
// by the path alone. Channels and git repositories (and re-resolving moving targets every
// NIXERY_MANIFEST_TTL) come with the package-sources work.

import type { PackageSource } from '@nixyard/core';

export const UNVERSIONED_PATH_REVISION = 'unversioned';

export function sourceRevisionFor(source: PackageSource): () => Promise<string> {
  if (source.kind !== 'path') {
    throw new Error(`package source ${source.kind} is not supported yet: set NIXERY_PKGS_PATH`);
  }
  return async () => UNVERSIONED_PATH_REVISION;
}
