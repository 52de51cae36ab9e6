// What a cold pull goes through on the farm's side, in order: the negative cache (a name known to
// hold unknown packages is answered at once), admission control (429 beyond the bounds), the
// enqueue (or joining the build in flight), and the wait for the build. The first three are a few
// Redis commands and share one deadline (deadline.ts); the wait is as long as the build.

import { RegistryError, type BuildJobData } from '@nixyard/core';
import type { Admission } from './admission.js';
import type { BuildQueue } from './build-queue.js';
import { fromRedis } from './deadline.js';
import type { UnknownPackages } from './unknown-packages.js';

export interface ColdBuildRequest {
  /** The client's address (client-address.ts), for the per-client bound. */
  client: string;
}

export class ColdBuilds {
  constructor(
    private readonly builds: Pick<BuildQueue, 'enqueue'>,
    private readonly admission: Pick<Admission, 'admit'>,
    private readonly unknownPackages: Pick<UnknownPackages, 'refuseRemembered' | 'remember'>,
  ) {}

  async build(job: BuildJobData, request: ColdBuildRequest): Promise<void> {
    const queueing = (async () => {
      await this.unknownPackages.refuseRemembered(job);
      const { admitted, queued } = await this.admission.admit(job, request.client, () => this.builds.enqueue(job));
      return { admitted, pending: queued };
    })();
    let queued: Awaited<typeof queueing>;
    try {
      queued = await fromRedis(queueing, 'queueing the build');
    } catch (err) {
      // Past the deadline the build may still be queued once Redis answers: it then runs, and the
      // next pull finds it; only the client's slot must not stay taken by a pull that left.
      queueing.then(({ admitted }) => admitted.release()).catch(() => {});
      throw err;
    }
    const { admitted, pending } = queued;
    try {
      await pending.result();
    } catch (err) {
      const packages = unknownPackagesOf(err);
      if (packages) await this.unknownPackages.remember(job, packages).catch(() => {});
      throw err;
    } finally {
      await admitted.release().catch(() => {});
    }
  }
}

/** The packages of a build's UNKNOWN_PACKAGES answer (build-queue.ts maps it to MANIFEST_UNKNOWN). */
function unknownPackagesOf(err: unknown): string[] | undefined {
  if (!(err instanceof RegistryError) || err.code !== 'MANIFEST_UNKNOWN') return undefined;
  const detail = err.detail;
  if (detail === null || typeof detail !== 'object' || Array.isArray(detail)) return undefined;
  const packages = (detail as { packages?: unknown }).packages;
  return Array.isArray(packages) && packages.every((p) => typeof p === 'string') ? packages : undefined;
}
