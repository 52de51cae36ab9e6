// How fast the farm notices a dead worker and hands its job to another one (docs/design.md §3),
// written once: the worker's BullMQ options are built from these numbers, and the tests and docs
// quote the worst case derived from them. BullMQ's defaults (30 s lock, 30 s check, one stall)
// left a pull waiting about a minute after a worker was killed, and failed a job whose worker
// died twice.
//
// How BullMQ recovers a job (the Lua script moveStalledJobsToWait):
// - A worker holds a lock on each job it runs, a Redis key with a TTL of LOCK_DURATION_MS that it
//   renews every LOCK_RENEW_MS (half the lock). A worker that dies stops renewing, and the lock
//   outlives it by at most LOCK_DURATION_MS.
// - Every STALLED_INTERVAL_MS, one live worker of the queue (a key with that TTL keeps the rest
//   out) moves the jobs it marked on its previous check whose lock is gone back to waiting, and
//   marks every active job again; a lock renewal unmarks. So a job is taken over by the first
//   check that comes at least one interval after a check that marked it, once its lock is gone.
// - The first check after a death can come up to two intervals later (a check made just before
//   the death holds the key for one interval, and the survivors' own timers run on their own
//   phase), the next one an interval after that; the lock is gone LOCK_DURATION_MS after the
//   death at the latest, and the check that finds it gone is at most an interval later. Hence
//   WORST_CASE_TAKEOVER_MS = max(3 × interval, lock + interval): 5.5 s with the values below. A
//   waiting worker is woken at once, so the job runs again within that bound plus timer drift and
//   a few Redis round trips (test/chaos measures 4–5.5 s on a busy two-core machine), under
//   the 10 s the farm promises; a worker started only after the death adds its own start-up.
//   Each check is one short Lua script per queue, run by one worker of the farm per interval.
// - Each takeover counts a stall; the stall after MAX_STALLED_COUNT fails the job with BullMQ's
//   reason STALLED_JOB_REASON, which core decodes as the typed failure WORKER_CRASHED (queue.ts).
//   So a job gets 1 + MAX_STALLED_COUNT runs: a deploy that kills one worker, then the one that
//   took over, still finishes the build, while a job that kills every worker it lands on (it runs
//   the machine out of memory, say) stops after three.
//
// What the short lock costs: a worker whose event loop (or whose Redis) stalls for LOCK_RENEW_MS
// cannot renew, and its job may be taken over while it still runs. The build is then done twice
// (its results are content-addressed, so the second copy changes nothing, and the first worker's
// completion is refused), and the stall counts against the job's budget. So the worker never
// blocks its event loop for that long: gzip runs on worker threads, Nix as child processes, and
// everything else on the loop is small per step.

/** How long a job's lock lives without renewal (BullMQ `lockDuration`). */
export const LOCK_DURATION_MS = 4_000;
/** How often a running job's lock is renewed (BullMQ `lockRenewTime`, its default: half the lock). */
export const LOCK_RENEW_MS = LOCK_DURATION_MS / 2;
/** How often a queue is checked for jobs whose worker is gone (BullMQ `stalledInterval`). */
export const STALLED_INTERVAL_MS = 1_500;
/** Takeovers a job gets before it fails as WORKER_CRASHED (BullMQ `maxStalledCount`). */
export const MAX_STALLED_COUNT = 2;
/** The longest a dead worker's job waits for a live worker's stalled check to take it over. */
export const WORST_CASE_TAKEOVER_MS = Math.max(3 * STALLED_INTERVAL_MS, LOCK_DURATION_MS + STALLED_INTERVAL_MS);

/** The `failedReason` BullMQ gives a job that stalled more than MAX_STALLED_COUNT times. */
export const STALLED_JOB_REASON = 'job stalled more than allowable limit';

/** The stall options of every BullMQ Worker of the farm, as BullMQ names them. */
export const STALL_RECOVERY_WORKER_OPTIONS = Object.freeze({
  lockDuration: LOCK_DURATION_MS,
  lockRenewTime: LOCK_RENEW_MS,
  stalledInterval: STALLED_INTERVAL_MS,
  maxStalledCount: MAX_STALLED_COUNT,
});
