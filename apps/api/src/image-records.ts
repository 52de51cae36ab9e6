// From an image spec and a resolved tag to the build job and its stored manifest record, with
// the freshness rule for moving targets (see source-resolver.ts). Pulls and prebuilds share it.

import {
  DEFAULT_SYSTEM,
  buildJobFor,
  isFresh,
  readManifestRecord,
  type BuildJobData,
  type ImageSpec,
  type ManifestRecord,
  type PackageSource,
  type Storage,
  type System,
} from '@nixyard/core';
import type { ResolvedTag } from './source-resolver.js';

export function jobForImage(
  source: PackageSource,
  spec: ImageSpec,
  resolved: ResolvedTag,
  manifestTtlSeconds: number,
  requestId?: string,
): BuildJobData {
  const freshAfter = resolved.immutable ? undefined : new Date(Date.now() - manifestTtlSeconds * 1000);
  return buildJobFor({ spec, source, revision: resolved.revision, ...(requestId ? { requestId } : {}), ...(freshAfter ? { freshAfter } : {}) });
}

/** The record, when it exists and is fresh enough for the job (always, for a pinned revision). */
export async function freshRecord(storage: Storage, job: BuildJobData): Promise<ManifestRecord | undefined> {
  const record = await readManifestRecord(storage, job.imageKey);
  return record && isFresh(record, job.freshAfter) ? record : undefined;
}

/**
 * The systems a name stands for: its own when it says `arm64`; otherwise the index systems,
 * when there are several (a multi-architecture tag), else the default system.
 */
export function indexSystemsFor(spec: ImageSpec, indexSystems: readonly System[] | undefined): readonly System[] | undefined {
  return spec.system === DEFAULT_SYSTEM && indexSystems && indexSystems.length > 1 ? indexSystems : undefined;
}
