// The farm's whole Redis footprint in one file: every BullMQ queue and every key that Nixyard's
// roles read or write. Redis is shared by every API replica and worker of a farm, possibly of
// different versions, so these names are a compatibility contract like keys.ts's: rename one and
// a rolling upgrade splits the farm. Anything Nixyard keeps in Redis gets its name here.
//
// | name                          | type         | written by    | what                                   |
// | `build-<system>`              | BullMQ queue | API           | build jobs, job id = image key         |
// | `nixyard-prebuilds`           | BullMQ queue | API           | prebuild batch parents (flows)         |
// | `nixyard:workers:<system>`    | sorted set   | workers       | heartbeats: worker id → last beat (ms) |
// | `nixyard:layers`              | hash         | workers       | layer key → layer record JSON (cache)  |
// | `nixyard:popularity`          | hash         | workers       | store-path name → learned count        |
// | `nixyard:popularity:seen`     | set          | workers       | store paths already counted            |
// | `nixyard:prebuild:<id>`       | string       | API           | a prebuild batch's record (JSON, TTL)  |
// | `nixyard:prebuilds`           | sorted set   | API           | batch ids by creation time             |
// | `nixyard:prebuilds:lock`      | string       | API           | short lock around a batch submission   |
// | `nixyard:unknown:<image key>` | string       | API           | packages a build found unknown (TTL)   |
// | `nixyard:client:<address>`    | sorted set   | API           | a client's cold builds: job → deadline |
//
// BullMQ adds its own keys under `bull:<queue>:*`. The package index is a storage record, not a
// Redis key (package-index.ts).

import type { System } from './systems.js';

/**
 * The BullMQ queue a system's build jobs go to. BullMQ refuses `:` in queue names, so the
 * separator is `-`: `build-x86_64-linux`.
 */
export function buildQueueName(system: System): string {
  return `build-${system}`;
}

/** The BullMQ queue of prebuild batch parents (a flow's parent completes once its children are done). */
export const PREBUILD_QUEUE = 'nixyard-prebuilds';

/** Live workers of a system: member = worker id, score = time of its last heartbeat (ms). */
export function workersKey(system: System): string {
  return `nixyard:workers:${system}`;
}

/** Layer key → layer record JSON: the Redis copy of the storage's layer records. */
export const LAYER_CACHE_HASH = 'nixyard:layers';

/** Store-path name (without hash) → how many distinct store paths refer to it. */
export const POPULARITY_HASH = 'nixyard:popularity';
/** Store paths whose references were already counted, so learning is idempotent. */
export const SEEN_PATHS_SET = 'nixyard:popularity:seen';

/** One prebuild batch's record. */
export function prebuildBatchKey(id: string): string {
  return `nixyard:prebuild:${id}`;
}
/** Batch ids, scored by creation time. */
export const PREBUILD_BATCHES = 'nixyard:prebuilds';
/** Held while a batch is submitted: one job cannot have two flow parents. */
export const PREBUILD_SUBMIT_LOCK = 'nixyard:prebuilds:lock';

/**
 * The packages a build of this image found unknown (JSON array): pulls of the same name on the same
 * source revision are answered from it without a build job (the negative cache).
 */
export function unknownPackagesKey(imageKey: string): string {
  return `nixyard:unknown:${imageKey}`;
}

/**
 * A client's cold builds in flight, for NIXYARD_MAX_BUILDS_PER_CLIENT: member = job id, score =
 * when the pull stops waiting (ms), so a replica that dies holding a slot cannot leak it. The
 * address is a validated IP address, never raw header text.
 */
export function clientBuildsKey(address: string): string {
  return `nixyard:client:${address}`;
}
