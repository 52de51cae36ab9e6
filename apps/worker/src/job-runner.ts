// What happens to one build job between BullMQ and the processor: the job data is validated, the
// image is built (build-image.ts), and the outcome is counted, timed and logged. A typed failure
// is the build's answer, not a fault of this worker, so it becomes BullMQ's UnrecoverableError
// (no retry) carrying the encoded failure that the API decodes; anything else is a crash that
// BullMQ may retry. Kept apart from main.ts so tests can run a job without Redis.

import { UnrecoverableError } from 'bullmq';
import {
  BUILD_PHASES,
  BuildFailureError,
  BuildJobDataSchema,
  CRASH_CODE,
  encodeBuildFailure,
  type BuildResult,
} from '@nixyard/core';
import type { Logger } from 'pino';
import { buildImage, type BuildImageDeps } from './build-image.js';
import type { WorkerMetrics } from './metrics.js';

export interface JobRunnerDeps {
  /** Everything buildImage needs except the hooks the runner fills in itself. */
  build: Omit<BuildImageDeps, 'onNixBuild' | 'warn' | 'onAssembled'>;
  metrics: Pick<WorkerMetrics, 'builds' | 'buildFailures' | 'phaseDuration' | 'layerCache' | 'packedBytes'>;
  logger: Logger;
  /** The processor; buildImage unless a test stands in for it. */
  buildImage?: typeof buildImage;
}

export type JobRunner = (data: unknown, jobId: string | undefined) => Promise<BuildResult>;

export function createJobRunner(deps: JobRunnerDeps): JobRunner {
  const { metrics, logger } = deps;
  const build = deps.buildImage ?? buildImage;
  return async (data, jobId) => {
    const job = BuildJobDataSchema.parse(data);
    // The request id ties these lines to the API's log line for the pull that asked for the build.
    const log = logger.child({ jobId, imageKey: job.imageKey, requestId: job.requestId, packages: job.packages, system: job.system });
    log.info('build started');
    try {
      const result = await build(
        {
          ...deps.build,
          onNixBuild: (event) => metrics.builds.inc({ result: event }),
          warn: (message, err) => log.warn({ err }, message),
          onAssembled: ({ layers }) => {
            for (const layer of layers) {
              metrics.layerCache.inc({ result: layer.packed ? 'miss' : 'hit' });
              if (layer.packed) metrics.packedBytes.inc(layer.size);
            }
          },
        },
        job,
      );
      // A job answered from an existing record did no work: its zero timings would skew the histogram.
      if (Object.values(result.timings).some((ms) => ms > 0)) {
        for (const phase of BUILD_PHASES) metrics.phaseDuration.observe({ phase, system: job.system }, result.timings[phase] / 1000);
      }
      log.info({ manifestDigest: result.manifestDigest, timings: result.timings }, 'build finished');
      return result;
    } catch (err) {
      if (err instanceof BuildFailureError) {
        metrics.buildFailures.inc({ code: err.failure.code });
        log.warn({ failure: { ...err.failure, logTail: undefined } }, 'build failed');
        throw new UnrecoverableError(encodeBuildFailure(err.failure));
      }
      metrics.buildFailures.inc({ code: CRASH_CODE });
      log.error({ err }, 'build crashed');
      throw err;
    }
  };
}
