// `nixyard gc` and `nixyard fsck`: storage maintenance. They work on storage directly (not through
// the API), configured by the storage variables the API and the workers have (STORAGE_PATH or
// S3_*; gc also REDIS_URL or REDIS_SENTINELS, and NIXYARD_SYSTEMS, to refuse to collect a
// build's layers while it runs) and nothing else (loadMaintenanceConfig), so an operator can run them wherever storage is
// reachable. The algorithms live in @nixyard/core (maintenance/); this module only wires and prints.

import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import {
  IN_FLIGHT_STATES,
  checkStorage,
  collectGarbage,
  loadMaintenanceConfig,
  openStorage,
  buildQueueName,
  describeRedis,
  redisConnectionOptions,
  type MaintenanceConfig,
  type TemporaryItem,
} from '@nixyard/core';

const DURATION = /^(\d+)(s|m|h|d)?$/;
const UNIT_SECONDS = { s: 1, m: 60, h: 3600, d: 86_400 } as const;

/** `24h`, `30m`, `90s`, `7d` or plain seconds. */
export function parseDuration(text: string): number | undefined {
  const m = DURATION.exec(text.trim());
  if (!m) return undefined;
  return Number(m[1]) * UNIT_SECONDS[(m[2] ?? 's') as keyof typeof UNIT_SECONDS];
}

function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** `90s`, `45m`, `30h`, `3d`: how long ago, in the unit that reads best. */
export function humanAge(seconds: number): string {
  if (seconds < 120) return `${Math.floor(seconds)}s`;
  if (seconds < 120 * 60) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 48 * 3600) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

/** A temporary item as one line's words: `tmp/123-ab 22.0 MiB, last written 3h ago`. */
function describeTemporary(item: TemporaryItem, now: Date): string {
  const what = item.uploadId === undefined ? item.location : `${item.location} (incomplete multipart upload ${item.uploadId})`;
  return `${what} ${humanBytes(item.size)}, last written ${humanAge((now.getTime() - item.modified.getTime()) / 1000)} ago`;
}

/** How long gc waits for Redis to say which builds are in flight before it gives up. */
const REDIS_DEADLINE_MS = 10_000;

/**
 * Whether any build job is waiting or running on any system's queue. Without an answer from Redis
 * gc cannot know, so it stops with a message rather than collect a running build's layers, or wait
 * for ever on a Redis (or Sentinels) that cannot be reached.
 */
async function buildsInFlight(config: MaintenanceConfig): Promise<boolean> {
  const systems = [...new Set([...config.systems, ...(config.indexSystems ?? [])])];
  // One connection of gc's own, which it can drop at once: a Queue's own connections cannot be
  // closed while they are still trying to connect, and would keep the process alive.
  const redis = new Redis({ ...redisConnectionOptions(config.redis), maxRetriesPerRequest: 1 });
  let lastError: Error | undefined;
  redis.on('error', (err) => (lastError = err));
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const why = lastError ? `: ${lastError.message.split('\n')[0]}` : '';
      reject(new Error(`Redis (${describeRedis(config.redis)}) did not answer within ${REDIS_DEADLINE_MS / 1000} s${why}; gc needs it to see the builds in flight`));
    }, REDIS_DEADLINE_MS);
  });
  deadline.catch(() => {}); // raced below; a rejection outside a race (during close) is no crash
  try {
    for (const system of systems) {
      const queue = new Queue(buildQueueName(system), { connection: redis });
      queue.on('error', (err) => (lastError = err));
      try {
        const counts = await Promise.race([queue.getJobCounts(...IN_FLIGHT_STATES), deadline]);
        if (Object.values(counts).some((n) => n > 0)) return true;
      } finally {
        await queue.close();
      }
    }
  } finally {
    clearTimeout(timer);
    redis.disconnect();
  }
  return false;
}

export interface GcCommandOptions {
  grace: number;
  dryRun: boolean;
  json?: boolean;
}

export async function gcCommand(env: NodeJS.ProcessEnv, options: GcCommandOptions, out: (line?: string) => void): Promise<number> {
  const config = loadMaintenanceConfig(env);
  const now = new Date();
  const report = await collectGarbage(openStorage(config.storage), {
    graceSeconds: options.grace,
    dryRun: options.dryRun,
    buildsInFlight: await buildsInFlight(config),
    now,
  });
  if (options.json) {
    out(JSON.stringify({ dryRun: options.dryRun, ...report }, null, 2));
    return 0;
  }
  const verb = options.dryRun ? 'would delete' : 'deleted';
  for (const blob of report.swept) out(`${verb} ${blob.digest} ${humanBytes(blob.size)}`);
  for (const item of report.temporary) out(`${verb} temporary ${describeTemporary(item, now)}`);
  out(
    `${report.manifests} manifests keep ${report.markedBlobs} blobs; ${verb} ${report.swept.length} blobs (${humanBytes(report.sweptBytes)}) ` +
      `and ${report.layerRecords.length} layer records; kept ${report.keptYoung} unreferenced blobs younger than the grace period`,
  );
  out(
    `${verb} ${report.temporary.length} temporary items (${humanBytes(report.temporaryBytes)}) older than the grace period; ` +
      `kept ${report.keptYoungTemporary} younger ones (writes in progress)`,
  );
  return 0;
}

export interface FsckCommandOptions {
  sample?: number;
  repair: boolean;
  /** Seconds: temporary items last written longer ago are reported (and removed by --repair). */
  grace: number;
  json?: boolean;
}

/** Exit 0 when storage is sound (or was repaired), 1 when problems were found and left. */
export async function fsckCommand(env: NodeJS.ProcessEnv, options: FsckCommandOptions, out: (line?: string) => void): Promise<number> {
  const config = loadMaintenanceConfig(env);
  const now = new Date();
  const report = await checkStorage(openStorage(config.storage), {
    repair: options.repair,
    graceSeconds: options.grace,
    now,
    ...(options.sample !== undefined ? { sample: options.sample } : {}),
  });
  if (options.json) out(JSON.stringify(report, null, 2));
  else {
    for (const digest of report.corruptBlobs) out(`corrupt blob ${digest}: its bytes do not hash to its name`);
    for (const m of report.brokenManifests) {
      const why = [...m.missing.map((d) => `missing ${d}`), ...m.corrupt.map((d) => `corrupt ${d}`)];
      out(`broken manifest record ${m.key}: ${why.length > 0 ? why.join(', ') : 'unreadable'}`);
    }
    for (const key of report.brokenLayerRecords) out(`broken layer record ${key}`);
    for (const item of report.staleTemporary) out(`stale temporary ${describeTemporary(item, now)}`);
    if (report.oldestTemporaryAgeSeconds !== undefined) {
      out(
        `${report.staleTemporary.length} temporary items older than the grace period hold ${humanBytes(report.staleTemporaryBytes)}; ` +
          `the oldest was last written ${humanAge(report.oldestTemporaryAgeSeconds)} ago (left by writers that died; nixyard gc removes them)`,
      );
    }
    out(`checked ${report.hashed} of ${report.blobs} blobs: ${report.ok ? 'no problems' : 'problems found'}`);
    if (options.repair && !report.ok) {
      out(
        `repaired: removed ${report.repaired.blobs} blobs, ${report.repaired.manifestRecords} manifest records, ${report.repaired.layerRecords} layer records ` +
          `and ${report.repairedTemporary.items} temporary items (${humanBytes(report.repairedTemporary.bytes)}); images are rebuilt on the next pull`,
      );
    }
  }
  return report.ok || options.repair ? 0 : 1;
}
