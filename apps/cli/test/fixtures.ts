// Batches built from image states, as the API would answer them, for the CLI's unit tests.
import { countStates, type PrebuildBatch, type PrebuildImage } from '@nixyard/core';

export function batchOf(images: PrebuildImage[], extra: Partial<PrebuildBatch> = {}): PrebuildBatch {
  const counts = countStates(images);
  return {
    id: '00000000-0000-4000-8000-000000000000',
    createdAt: '2025-01-01T00:00:00.000Z',
    state: counts.queued + counts.building === 0 ? 'settled' : 'running',
    total: images.length,
    counts,
    images,
    ...extra,
  };
}
