// Queue contract: the JSON that crosses Redis between the API (producer) and the workers
// (consumers), possibly of different versions. Both sides validate with these schemas, so a
// malformed job fails loudly at the boundary instead of half-way through a build. Failures travel
// as typed values (encoded into BullMQ's `failedReason` string) so the API can map them to
// registry errors without parsing prose. The one failure no worker encodes, a job whose workers
// kept dying, is recognised by BullMQ's own reason for it (stall-recovery.ts).
import { z } from 'zod';
import { AttributePathSchema } from './attribute-path.js';
import { BUILD_FAILURE_CODES, BUILD_PHASES, type BuildPhase } from './build-phases.js';
import { DigestSchema } from './digest.js';
import { KeySchema, isKey } from './keys.js';
import { MANIFEST_MEDIA_TYPES } from './media-types.js';
import { PackageSourceSchema } from './package-source.js';
import { MAX_STALLED_COUNT, STALLED_JOB_REASON } from './stall-recovery.js';
import { SystemSchema } from './systems.js';

/** Most packages one build job may carry: 64 name components with `shell` expanded, plus slack. */
export const MAX_JOB_PACKAGES = 72;

export const ImageKeySchema = KeySchema;

export const BuildJobDataSchema = z.object({
  imageKey: ImageKeySchema,
  packages: z.array(AttributePathSchema).min(1).max(MAX_JOB_PACKAGES),
  system: SystemSchema,
  source: PackageSourceSchema,
  /** The resolved source revision the key was computed with (a commit, or a content hash of a path). */
  revision: z.string().min(1).max(256),
  /**
   * For moving targets (a path, a channel name): an existing manifest record counts only when it
   * was created after this time (ISO 8601); older ones are rebuilt. Absent: any record counts.
   */
  freshAfter: z.iso.datetime({ offset: true }).optional(),
  /** Correlates worker logs with the API request that caused the build. */
  requestId: z.string().max(200).optional(),
});
export type BuildJobData = z.infer<typeof BuildJobDataSchema>;

const Milliseconds = z.number().min(0);

/** Milliseconds per build phase, every phase present. */
export const BuildTimingsSchema = z.object(
  Object.fromEntries(BUILD_PHASES.map((phase) => [phase, Milliseconds])) as Record<BuildPhase, typeof Milliseconds>,
);
export type BuildTimings = z.infer<typeof BuildTimingsSchema>;

export const BuildResultSchema = z.object({
  imageKey: ImageKeySchema,
  manifestDigest: DigestSchema,
  mediaType: z.enum(MANIFEST_MEDIA_TYPES),
  timings: BuildTimingsSchema,
});
export type BuildResult = z.infer<typeof BuildResultSchema>;

/** Longest log tail and message a failure carries; encodeBuildFailure keeps the *end* of longer ones. */
export const MAX_LOG_TAIL_CHARS = 64 * 1024;
export const MAX_FAILURE_MESSAGE_CHARS = 4096;

const Message = z.string().max(MAX_FAILURE_MESSAGE_CHARS);
const LogTail = z.string().max(MAX_LOG_TAIL_CHARS);

export const BuildFailureSchema = z.discriminatedUnion('code', [
  z.object({ code: z.literal('UNKNOWN_PACKAGES'), message: Message, packages: z.array(z.string().max(1000)).max(1000) }),
  z.object({ code: z.literal('BUILD_FAILED'), message: Message, logTail: LogTail }),
  z.object({ code: z.literal('TIMEOUT'), message: Message, seconds: z.number().min(0), logTail: LogTail }),
  z.object({ code: z.literal('STORAGE'), message: Message }),
  /** The worker running the build died (killed, out of memory, its machine gone) more often than BullMQ retries. */
  z.object({ code: z.literal('WORKER_CRASHED'), message: Message }),
]);
export type BuildFailure = z.infer<typeof BuildFailureSchema>;
export type BuildFailureCode = BuildFailure['code'];
// build-phases.ts lists these codes for metrics and dashboards: the compiler keeps both in step.
const failureCodesListed: [BuildFailureCode] extends [(typeof BUILD_FAILURE_CODES)[number]]
  ? [(typeof BUILD_FAILURE_CODES)[number]] extends [BuildFailureCode] ? true : never
  : never = true;
void failureCodesListed;

/** Marks a failedReason as an encoded BuildFailure (rather than some other thrown error's message). */
export const BUILD_FAILURE_PREFIX = 'nixyard-build-failure:';

const keepEnd = (text: string, max: number): string => (text.length > max ? text.slice(text.length - max) : text);

/**
 * Encodes a failure as `nixyard-build-failure:<json>`, for an Error message that BullMQ stores as
 * the job's failedReason. Over-long messages and log tails are cut to their last characters.
 * Throws (ZodError) only if `failure` is not a BuildFailure at all.
 */
export function encodeBuildFailure(failure: BuildFailure): string {
  const clamped: BuildFailure = { ...failure, message: keepEnd(failure.message, MAX_FAILURE_MESSAGE_CHARS) };
  if ('logTail' in clamped) clamped.logTail = keepEnd(clamped.logTail, MAX_LOG_TAIL_CHARS);
  return BUILD_FAILURE_PREFIX + JSON.stringify(BuildFailureSchema.parse(clamped));
}

/** What a job that BullMQ failed for stalling decodes to. */
export const WORKER_CRASHED_FAILURE: Readonly<Extract<BuildFailure, { code: 'WORKER_CRASHED' }>> = Object.freeze({
  code: 'WORKER_CRASHED',
  message:
    `the worker running the build stopped without finishing it (killed or crashed), ${MAX_STALLED_COUNT + 1} times in a row; ` +
    `BullMQ gave up on the job ("${STALLED_JOB_REASON}")`,
});

/**
 * Decodes a failedReason; undefined for anything that is not an encoded BuildFailure, or BullMQ's
 * reason for a job that stalled too often (WORKER_CRASHED). Never throws.
 */
export function decodeBuildFailure(reason: unknown): BuildFailure | undefined {
  if (reason === STALLED_JOB_REASON) return { ...WORKER_CRASHED_FAILURE };
  if (typeof reason !== 'string' || !reason.startsWith(BUILD_FAILURE_PREFIX)) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(reason.slice(BUILD_FAILURE_PREFIX.length));
  } catch {
    return undefined;
  }
  const result = BuildFailureSchema.safeParse(json);
  return result.success ? result.data : undefined;
}

/** What a worker throws for a typed failure: its message is the encoded failure. */
export class BuildFailureError extends Error {
  override readonly name = 'BuildFailureError';
  readonly failure: BuildFailure;
  constructor(failure: BuildFailure, options?: { cause?: unknown }) {
    super(encodeBuildFailure(failure), options);
    this.failure = failure;
  }
}

/**
 * The BullMQ job id for an image: the image key itself. That is safe as a custom id: BullMQ
 * refuses `:` (hex has none) and ids equal to `${parseInt(id, 10)}` (64 digits never round-trip
 * through a double). The key includes the system, so one id is unique across all build queues.
 * Throws on anything that is not a 64-hex key.
 */
export function jobIdFor(imageKey: string): string {
  if (!isKey(imageKey)) throw new TypeError('jobIdFor: expected a 64-hex image key');
  return imageKey;
}
