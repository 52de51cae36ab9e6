// The top-level attribute names of a package source at one revision, for one system.
//
// Workers write it once per source revision (it comes out of the same evaluation as a build);
// the API reads it to answer a pull of a misspelled package with 404 at once, without a queue
// round trip or a Nix evaluation. It can only vouch for top-level names: `xorg.nosuch` needs Nix.

import { createHash } from 'node:crypto';
import { z } from 'zod';
import { SystemSchema, type System } from './systems.js';

export const PackageIndexSchema = z.object({
  source: z.object({ identity: z.string().min(1), revision: z.string().min(1) }),
  system: SystemSchema,
  /** Top-level attribute names of the package set, sorted. */
  names: z.array(z.string()),
});
export type PackageIndex = z.infer<typeof PackageIndexSchema>;

export interface PackageIndexId {
  source: { identity: string; revision: string };
  system: System;
}

/** `package-index/<sha256 of identity, revision and system>`. */
export function packageIndexKey(id: PackageIndexId): string {
  const hash = createHash('sha256').update(JSON.stringify([id.source.identity, id.source.revision, id.system])).digest('hex');
  return `package-index/${hash}`;
}

export type IndexVerdict =
  /** Every package's top-level name exists: only Nix can say more. */
  | { kind: 'plausible' }
  /** These packages certainly do not exist, and no other package needs Nix to be judged. */
  | { kind: 'unknown'; packages: string[] }
  /** Some packages certainly do not exist, but nested ones need Nix for the complete list. */
  | { kind: 'incomplete' };

export function checkAgainstIndex(names: ReadonlySet<string>, packages: readonly string[]): IndexVerdict {
  const unknown = packages.filter((p) => !names.has(p.split('.')[0]!));
  if (unknown.length === 0) return { kind: 'plausible' };
  const nestedUnjudged = packages.some((p) => p.includes('.') && !unknown.includes(p));
  return nestedUnjudged ? { kind: 'incomplete' } : { kind: 'unknown', packages: unknown };
}
