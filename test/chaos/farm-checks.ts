// What every chaos case checks of the farm after its fault, and how it finds a job's worker: one
// definition for the chaos files, so "storage is sound" means the same in each of them.

import assert from 'node:assert/strict';
import type { Job, Queue } from 'bullmq';
import { checkStorage, type Storage } from '@nixyard/core';

/**
 * Every blob hashes to its name, and no manifest or layer record names a blob that is missing
 * (fsck's check). Returns how many blobs there are.
 */
export async function assertStorageSound(storage: Storage): Promise<number> {
  const report = await checkStorage(storage, { repair: false });
  assert.ok(report.blobs > 0, 'storage holds blobs');
  assert.equal(report.hashed, report.blobs, 'every blob hashed');
  assert.deepEqual(report.corruptBlobs, [], 'every blob hashes to its name');
  assert.deepEqual(report.brokenManifests, [], 'every manifest record names blobs that exist');
  assert.deepEqual(report.brokenLayerRecords, [], 'every layer record names a blob that exists');
  return report.blobs;
}

/** The pid in a worker's id (`host:pid:random`, which BullMQ keeps as the job's processedBy). */
export function pidOf(workerId: string | undefined): number | undefined {
  const match = workerId === undefined ? null : /:(\d+):[0-9a-f]{8}$/.exec(workerId);
  return match ? Number(match[1]) : undefined;
}

/** The build job whose first package is `name`, in any state. */
export async function jobOf(queue: Queue, name: string): Promise<Job | undefined> {
  const jobs = await queue.getJobs(['active', 'waiting', 'failed', 'completed', 'delayed', 'prioritized']);
  return jobs.find((j) => (j.data as { packages?: string[] }).packages?.[0] === name);
}
