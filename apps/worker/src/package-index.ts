// Publishes the package set's top-level names once per source revision and system, so API
// replicas can turn away misspelled packages without a build job (see @nixyard/core's
// package-index). Best effort: an image builds whether or not the index could be written.

import { PackageIndexSchema, packageIndexKey, sourceIdentity, type BuildJobData, type Storage } from '@nixyard/core';
import type { Nix } from './nix/nix.js';

export async function publishPackageIndex(nix: Nix, storage: Storage, data: BuildJobData): Promise<void> {
  const id = { source: { identity: sourceIdentity(data.source), revision: data.revision }, system: data.system };
  const key = packageIndexKey(id);
  if ((await storage.getRecord(key)) !== undefined) return;
  const names = await nix.attributeNames(data.source, data.revision, data.system);
  await storage.putRecord(key, PackageIndexSchema.parse({ ...id, names }));
}
