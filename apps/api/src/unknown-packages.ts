// The negative cache: a build that found some of its packages unknown is remembered, per image key
// (which names the source revision and the package list), and later pulls of the same name get
// 404 MANIFEST_UNKNOWN from it without a build job. Without it, a name that evaluates but names no
// package (`hello.drvPath`, `hello.q17`) costs a fresh Nix evaluation on every request.
// Entries of a moving target last NIXERY_MANIFEST_TTL, like its manifests; those of a pinned
// revision, whose answer can never change, last PINNED_TTL_SECONDS and are renewed by each hit.

import { RegistryError, unknownPackagesKey, type BuildJobData } from '@nixyard/core';
import type { Redis } from 'ioredis';
import { z } from 'zod';

export const PINNED_TTL_SECONDS = 30 * 24 * 60 * 60;

const PackagesSchema = z.array(z.string()).min(1);

export class UnknownPackages {
  constructor(
    private readonly redis: Redis,
    private readonly manifestTtlSeconds: number,
  ) {}

  /** Throws the 404 a build of `job` answered before, if it is remembered. */
  async refuseRemembered(job: BuildJobData): Promise<void> {
    const key = unknownPackagesKey(job.imageKey);
    const stored = await this.redis.get(key);
    if (stored === null) return;
    const parsed = PackagesSchema.safeParse(JSON.parse(stored));
    if (!parsed.success) return;
    if (this.pinned(job)) void this.redis.expire(key, PINNED_TTL_SECONDS).catch(() => {});
    throw unknownPackagesError(parsed.data);
  }

  /** Remembers that a build of `job` found `packages` unknown. */
  async remember(job: BuildJobData, packages: readonly string[]): Promise<void> {
    if (packages.length === 0) return;
    const ttl = this.pinned(job) ? PINNED_TTL_SECONDS : this.manifestTtlSeconds;
    if (ttl === 0) return;
    await this.redis.set(unknownPackagesKey(job.imageKey), JSON.stringify(packages), 'EX', ttl);
  }

  /** A job without freshAfter builds a pinned revision (image-records.ts). */
  private pinned(job: BuildJobData): boolean {
    return job.freshAfter === undefined;
  }
}

/** The answer to a pull naming unknown packages, from a build or from memory alike. */
export function unknownPackagesError(packages: readonly string[]): RegistryError {
  return new RegistryError('MANIFEST_UNKNOWN', `unknown packages: ${packages.join(', ')}`, { packages: [...packages] });
}
