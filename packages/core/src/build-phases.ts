// The names a build goes through, as every part of the farm reports them: the phases a worker
// times (job results, the phase histogram, the status page, `bench:pull`), the BullMQ states a
// build job can be in (queue-depth gauges, the status page, the CLI) and the failure codes the
// failure counter is labelled with. Dashboards and alerts select on these strings, so they are
// written once, here.

/** The phases of one build, in order (docs/design.md §1). */
export const BUILD_PHASES = ['resolve', 'build', 'graph', 'layer', 'pack', 'publish'] as const;
export type BuildPhase = (typeof BUILD_PHASES)[number];

/** The BullMQ job states the farm reports queue depth for. */
export const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'completed', 'failed'] as const;
export type QueueState = (typeof QUEUE_STATES)[number];
/** A job in one of these has an outcome; its job id stays taken until it is removed. */
export const FINISHED_STATES = ['completed', 'failed'] as const satisfies readonly QueueState[];
/** Not yet taken by a worker: such a job can still be cancelled without wasting work. */
export const NOT_STARTED_STATES = ['waiting', 'prioritized', 'delayed'] as const satisfies readonly QueueState[];
/** Every state before an outcome: what gc must treat as a build that may still publish. */
export const IN_FLIGHT_STATES = QUEUE_STATES.filter((s): s is Exclude<QueueState, (typeof FINISHED_STATES)[number]> => !isFinishedState(s));

export function isFinishedState(state: string): boolean {
  return (FINISHED_STATES as readonly string[]).includes(state);
}

/**
 * The typed failures a build can end in (queue.ts's BuildFailure codes). WORKER_CRASHED is the one
 * no worker reports itself: BullMQ gives up on a job whose workers kept dying (stall-recovery.ts).
 */
export const BUILD_FAILURE_CODES = ['UNKNOWN_PACKAGES', 'BUILD_FAILED', 'TIMEOUT', 'STORAGE', 'WORKER_CRASHED'] as const;
/** What the failure counter also counts: a job that threw something untyped (a worker bug or fault). */
export const CRASH_CODE = 'CRASH';
/** Every value of the failure counter's `code` label. */
export const FAILURE_COUNTER_CODES = [...BUILD_FAILURE_CODES, CRASH_CODE] as const;
