// How the API knows which systems have live workers, so that a pull for a system nobody builds
// fails at once instead of waiting for a build timeout. Each worker process heartbeats into one
// Redis sorted set per system (member: its id, score: the time); a member whose last beat is
// older than WORKER_TTL_MS is gone. This file is the timing contract both sides share; the key is
// redis-keys.ts's `workersKey`, and the Redis calls live in the apps.

/** How often a worker beats. */
export const HEARTBEAT_INTERVAL_MS = 5_000;
/** A worker not heard from for this long counts as gone (three missed beats). */
export const WORKER_TTL_MS = 15_000;
