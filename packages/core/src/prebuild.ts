// Batch prebuilds: the admin API's request and answer shapes, shared by the API that serves them
// and the CLI that submits and watches them, so both validate the same contract.

import { z } from 'zod';
import { DigestSchema } from './digest.js';
import { parseImageName, parseReference, type ImageSpec } from './image-name.js';
import { BuildFailureSchema } from './queue.js';
import { RegistryError } from './registry-errors.js';
import { SystemSchema } from './systems.js';

/** Images one batch may hold; a larger one is refused whole (413). */
export const MAX_PREBUILD_IMAGES = 10_000;

export const PrebuildRequestSchema = z.object({
  images: z.array(z.string()).min(1, 'a batch needs at least one image'),
  label: z.string().max(200).optional(),
});
export type PrebuildRequest = z.infer<typeof PrebuildRequestSchema>;

export interface ImageReference extends ImageSpec {
  tag: string;
}

/**
 * `name[:tag]` as a user writes it (`shell/git:latest`, `arm64/hello`); the tag defaults to
 * `latest`. A digest cannot be prebuilt: it names an image that already exists.
 */
export function parseImageReference(text: string): ImageReference {
  if (text.includes('@')) throw new RegistryError('TAG_INVALID', 'a prebuild names a tag, not a digest');
  const colon = text.indexOf(':');
  const name = colon === -1 ? text : text.slice(0, colon);
  const tag = colon === -1 ? 'latest' : text.slice(colon + 1);
  const spec = parseImageName(name);
  if (tag.includes(':')) throw new RegistryError('TAG_INVALID', 'a tag cannot contain ":"');
  const reference = parseReference(tag);
  if (reference.kind !== 'tag') throw new RegistryError('TAG_INVALID', 'a prebuild names a tag, not a digest');
  return { ...spec, tag: reference.tag };
}

export const PREBUILD_IMAGE_STATES = ['queued', 'building', 'built', 'cached', 'failed', 'cancelled'] as const;
export const PrebuildImageStateSchema = z.enum(PREBUILD_IMAGE_STATES);
export type PrebuildImageState = z.infer<typeof PrebuildImageStateSchema>;

export const PrebuildImageSchema = z.object({
  /** As submitted, e.g. `shell/git:latest`. */
  image: z.string(),
  system: SystemSchema,
  imageKey: z.string(),
  state: PrebuildImageStateSchema,
  manifestDigest: DigestSchema.optional(),
  failure: BuildFailureSchema.optional(),
});
export type PrebuildImage = z.infer<typeof PrebuildImageSchema>;

export const PrebuildCountsSchema = z.object(
  Object.fromEntries(PREBUILD_IMAGE_STATES.map((s) => [s, z.number().int().nonnegative()])) as Record<PrebuildImageState, z.ZodNumber>,
);
export type PrebuildCounts = z.infer<typeof PrebuildCountsSchema>;

export const PrebuildSummarySchema = z.object({
  id: z.string(),
  label: z.string().optional(),
  createdAt: z.string(),
  /** `running` while any image is queued or building; `settled` after. */
  state: z.enum(['running', 'settled']),
  total: z.number().int().nonnegative(),
  counts: PrebuildCountsSchema,
});
export type PrebuildSummary = z.infer<typeof PrebuildSummarySchema>;

export const PrebuildBatchSchema = PrebuildSummarySchema.extend({ images: z.array(PrebuildImageSchema) });
export type PrebuildBatch = z.infer<typeof PrebuildBatchSchema>;

export function countStates(images: readonly { state: PrebuildImageState }[]): PrebuildCounts {
  const counts = Object.fromEntries(PREBUILD_IMAGE_STATES.map((s) => [s, 0])) as PrebuildCounts;
  for (const image of images) counts[image.state] += 1;
  return counts;
}

export function isSettled(counts: PrebuildCounts): boolean {
  return counts.queued === 0 && counts.building === 0;
}
