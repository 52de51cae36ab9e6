// What the CLI prints about a batch and about errors, as pure functions of the API's values:
// the counts line, the status report, the failed images with their typed failures, and the one
// line (plus details) that an API error becomes. Kept apart from the commands so the wording is
// unit-tested and the same everywhere.

import type { PrebuildBatch, PrebuildCounts, PrebuildImage, PrebuildSummary } from '@nixyard/core';
import { ApiError, ConnectionError } from './admin-client.js';
import type { ImageLine } from './image-list.js';

/** Images that have reached an outcome: the progress bar's numerator. */
export function doneCount(counts: PrebuildCounts): number {
  return counts.built + counts.cached + counts.failed;
}

/** Whether the batch ended with every image available (nothing failed, nothing cancelled). */
export function allReady(batch: Pick<PrebuildBatch, 'counts'>): boolean {
  return batch.counts.failed === 0 && batch.counts.cancelled === 0;
}

/** `18/20 done: 10 built, 7 cached, 1 failed; 2 building, 0 queued` (zero cancelled left out). */
export function formatCounts(counts: PrebuildCounts, total: number): string {
  let text = `${doneCount(counts)}/${total} done: ${counts.built} built, ${counts.cached} cached, ${counts.failed} failed`;
  if (counts.cancelled > 0) text += `, ${counts.cancelled} cancelled`;
  if (counts.building > 0 || counts.queued > 0) text += `; ${counts.building} building, ${counts.queued} queued`;
  return text;
}

/** The first line about a batch: id, label, state, age. */
export function formatHeading(batch: PrebuildSummary): string {
  const label = batch.label ? ` (${batch.label})` : '';
  return `batch ${batch.id}${label}: ${batch.state}, created ${batch.createdAt}`;
}

const LOG_LINES = 5;

/** One entry per failed image: `image [system]: CODE: message`, then details indented. */
export function formatFailure(image: PrebuildImage): string[] {
  const failure = image.failure;
  const head = `  ${image.image} [${image.system}]`;
  if (!failure) return [`${head}: ${image.state}`];
  const lines = [`${head}: ${failure.code}: ${failure.message}`];
  switch (failure.code) {
    case 'UNKNOWN_PACKAGES':
      // The worker's message names them today; the list is the contract, so show it if not.
      if (!failure.packages.every((name) => failure.message.includes(name))) lines.push(`    unknown packages: ${failure.packages.join(', ')}`);
      break;
    case 'BUILD_FAILED':
    case 'TIMEOUT': {
      const tail = failure.logTail.split('\n').filter((l) => l.trim() !== '').slice(-LOG_LINES);
      for (const line of tail) lines.push(`    | ${line}`);
      break;
    }
    case 'STORAGE':
      break;
  }
  return lines;
}

/** The images that did not become available, with why; empty when all did. */
export function formatProblems(batch: PrebuildBatch): string[] {
  const failed = batch.images.filter((i) => i.state === 'failed');
  const cancelled = batch.images.filter((i) => i.state === 'cancelled');
  const lines: string[] = [];
  if (failed.length > 0) {
    lines.push(`failed images (${failed.length}):`);
    for (const image of failed) lines.push(...formatFailure(image));
  }
  if (cancelled.length > 0) {
    lines.push(`cancelled images (${cancelled.length}):`);
    for (const image of cancelled) lines.push(`  ${image.image} [${image.system}]`);
  }
  return lines;
}

/** `nixyard status`: heading, counts, problems. */
export function formatStatus(batch: PrebuildBatch): string[] {
  return [formatHeading(batch), `  ${formatCounts(batch.counts, batch.total)}`, ...formatProblems(batch)];
}

/** The last report of `nixyard prebuild` once the batch has settled. */
export function formatOutcome(batch: PrebuildBatch): string[] {
  const verdict = allReady(batch) ? 'all images are available' : 'not every image is available';
  return [`batch ${batch.id} settled: ${formatCounts(batch.counts, batch.total)}; ${verdict}`, ...formatProblems(batch)];
}

/** One line per recent batch for `nixyard list`. */
export function formatSummaryLine(batch: PrebuildSummary): string {
  const label = batch.label ? ` ${JSON.stringify(batch.label)}` : '';
  return `${batch.id}  ${batch.createdAt}  ${batch.state.padEnd(7)}  ${formatCounts(batch.counts, batch.total)}${label}`;
}

interface InvalidEntry {
  index: number;
  image: string;
  reason: string;
}

function invalidEntries(detail: unknown): InvalidEntry[] {
  const invalid = (detail as { invalid?: unknown } | null)?.invalid;
  if (!Array.isArray(invalid)) return [];
  return invalid.filter(
    (e): e is InvalidEntry => typeof e === 'object' && e !== null && typeof e.index === 'number' && typeof e.image === 'string' && typeof e.reason === 'string',
  );
}

/**
 * An error as the CLI shows it: `nixyard: 400 BATCH_INVALID: message`, then the invalid entries
 * (with their line numbers in `source` when the submitted lines are known), or a hint.
 */
export function formatError(err: unknown, submitted?: { source: string; lines: readonly ImageLine[] }): string[] {
  if (err instanceof ApiError) {
    const lines = [`nixyard: ${err.status} ${err.code}: ${err.message}`];
    for (const entry of invalidEntries(err.detail)) {
      const line = submitted?.lines[entry.index]?.line;
      const where = submitted && line !== undefined ? `${submitted.source}:${line}` : `image ${entry.index + 1}`;
      lines.push(`  ${where}: ${entry.image}: ${entry.reason}`);
    }
    const issues = (err.detail as { issues?: unknown } | null)?.issues;
    if (Array.isArray(issues)) for (const issue of issues) lines.push(`  ${String(issue)}`);
    if (err.status === 401) lines.push('  (set NIXYARD_ADMIN_TOKEN or pass --token)');
    return lines;
  }
  if (err instanceof ConnectionError) return [`nixyard: ${err.message}`];
  return [`nixyard: ${err instanceof Error ? err.message : String(err)}`];
}
