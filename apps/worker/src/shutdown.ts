// How a worker stops on SIGTERM or SIGINT: within its grace period, whatever Redis does. It first
// drains (stops announcing itself, lets BullMQ finish the jobs in hand, closes its connections). A
// drain that cannot finish in time (a build longer than the grace period, or Redis away, where
// BullMQ's close waits forever) is abandoned just before the period ends: the Nix commands are
// killed and the process exits at once, in the same tick, so no half-killed build is reported as a
// failure. The jobs in hand keep their BullMQ locks until those expire, and another worker takes
// them over (stall-recovery.ts), as after a crash. A second signal abandons at once.

/** What stopping consists of; main.ts fills it in. */
export interface ShutdownSteps {
  /** NIXYARD_SHUTDOWN_GRACE_SECONDS in milliseconds. */
  graceMs: number;
  /** Stop taking work, finish what is in hand, close connections. May never settle. */
  drain(): Promise<void>;
  /** Gives up what is in hand; synchronous, the last thing before exit. */
  abandon(): void;
  exit(code: number): void;
  log(level: 'info' | 'warn', fields: Record<string, unknown>, message: string): void;
}

/** When, after the signal, a drain still running is abandoned: just inside the grace period. */
export function abandonAfterMs(graceMs: number): number {
  return graceMs - Math.min(1_000, graceMs / 10);
}

/** The signal handler: the first signal starts the drain, a second one ends it. */
export function createShutdown(steps: ShutdownSteps): (signal: string) => void {
  let stopping = false;
  let done = false;
  let timer: NodeJS.Timeout | undefined;
  const finish = (code: number) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    steps.exit(code);
  };
  const giveUp = (fields: Record<string, unknown>, message: string) => {
    if (done) return;
    steps.log('warn', fields, message);
    steps.abandon();
    finish(1);
  };
  return (signal) => {
    if (stopping) {
      giveUp({ signal }, 'stopping now: the jobs in hand are left to other workers');
      return;
    }
    stopping = true;
    steps.log('info', { signal, graceSeconds: steps.graceMs / 1000 }, 'stopping: finishing the current jobs');
    timer = setTimeout(
      () => giveUp({ graceSeconds: steps.graceMs / 1000 }, 'grace period over: the jobs in hand are left to other workers'),
      abandonAfterMs(steps.graceMs),
    );
    steps.drain().then(
      () => finish(0),
      (err: unknown) => giveUp({ err }, 'could not stop cleanly'),
    );
  };
}
