// The build job's processor (docs/design.md §1): a plain async function of the job data, so it runs the
// same under BullMQ, in tests and in a benchmark. Nix resolves, builds and graphs the packages
// (build-closure.ts); the image is then layered, packed and published (assemble-image.ts).

import {
  BuildFailureError,
  OCI_IMAGE_MANIFEST,
  isFresh,
  readManifestRecord,
  type BuildJobData,
  type BuildResult,
  type ManifestRecord,
} from '@nixyard/core';
import { assembleImage, type AssembleDeps, type Assembled } from './assemble-image.js';
import { buildClosure } from './build-closure.js';
import type { Nix } from './nix/nix.js';
import { publishPackageIndex } from './package-index.js';

export interface BuildImageDeps extends AssembleDeps {
  nix: Nix;
  /** Called when Nix work starts and when it ends, for the builds counter. */
  onNixBuild?(event: 'started' | 'succeeded' | 'failed'): void;
  /** Problems that do not fail the build. */
  warn?(message: string, err: unknown): void;
  /** The layers of a built image, for the layer cache and bytes-packed metrics. */
  onAssembled?(assembled: Assembled): void;
}

export async function buildImage(deps: BuildImageDeps, data: BuildJobData): Promise<BuildResult> {
  // A job can be enqueued again just after an identical one finished (its pull looked for the
  // record a moment before it was written); the record makes that job free.
  const existing = await readManifestRecord(deps.storage, data.imageKey);
  if (existing && isFresh(existing, data.freshAfter)) return resultOf(existing, { resolve: 0, build: 0, graph: 0, layer: 0, pack: 0, publish: 0 });

  // The package index (one Nix evaluation, once per source revision and system) is written while
  // the image builds rather than before it: nothing here needs it, and a cold pull should not wait
  // for it. The job still ends only once it is written (or has failed, which only warns).
  const indexed = publishPackageIndex(deps.nix, deps.storage, data).catch((err: unknown) => deps.warn?.('could not publish the package index', err));
  try {
    return await buildAndAssemble(deps, data);
  } finally {
    await indexed;
  }
}

async function buildAndAssemble(deps: BuildImageDeps, data: BuildJobData): Promise<BuildResult> {
  deps.onNixBuild?.('started');
  let closure;
  try {
    closure = await buildClosure(deps.nix, { source: data.source, revision: data.revision, system: data.system, packages: data.packages });
    deps.onNixBuild?.('succeeded');
  } catch (err) {
    deps.onNixBuild?.('failed');
    throw err;
  }

  const assembled = await asStorageFailure(() =>
    assembleImage(deps, data, { graph: closure.graph, packageOutputs: closure.packages.flatMap((p) => Object.values(p.outputs)) }),
  );
  deps.onAssembled?.(assembled);
  await deps.popularity.learn(closure.graph).catch((err: unknown) => deps.warn?.('could not record popularity', err));

  return resultOf(assembled.record, { ...closure.timings, ...assembled.timings });
}

function resultOf(record: ManifestRecord, timings: BuildResult['timings']): BuildResult {
  return { imageKey: record.imageKey, manifestDigest: record.manifests.oci.digest, mediaType: OCI_IMAGE_MANIFEST, timings };
}

/** Storage errors become the typed STORAGE failure, so the API can tell them from build errors. */
async function asStorageFailure<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof BuildFailureError) throw err;
    throw new BuildFailureError({ code: 'STORAGE', message: err instanceof Error ? err.message : String(err) });
  }
}
