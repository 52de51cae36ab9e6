// Progress of a batch while `nixyard prebuild` waits for it. On a terminal: a live bar (cli-progress)
// of images done (built + cached + failed) out of the batch's total, with the counts, the rate and
// an ETA. Anywhere else (CI logs, pipes, files): one short line each time the counts change, so a
// log holds a readable history instead of carriage returns. The arithmetic (rate, ETA) is a pure
// function, shared by both and unit-tested.

import cliProgress from 'cli-progress';
import type { PrebuildBatch } from '@nixyard/core';
import { doneCount, formatCounts } from './summary.js';

export interface ProgressStats {
  done: number;
  total: number;
  /** Images finished per second since watching began (those done at submission left out). */
  rate: number;
  /** Seconds until done at that rate; undefined while there is no rate to go by. */
  etaSeconds: number | undefined;
}

export function progressStats(batch: Pick<PrebuildBatch, 'counts' | 'total'>, doneAtStart: number, elapsedMs: number): ProgressStats {
  const done = doneCount(batch.counts);
  const progressed = Math.max(0, done - doneAtStart);
  const rate = elapsedMs > 0 ? progressed / (elapsedMs / 1000) : 0;
  const remaining = Math.max(0, batch.total - done);
  const etaSeconds = remaining === 0 ? 0 : rate > 0 ? remaining / rate : undefined;
  return { done, total: batch.total, rate, etaSeconds };
}

/** `42s`, `3m05s`, `1h02m`; `?` when unknown. */
export function formatSeconds(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** `1.5/s`, or `12/min` when slower than one a second (builds often are). */
export function formatRate(perSecond: number): string {
  if (perSecond >= 1) return `${perSecond.toFixed(1)}/s`;
  return `${(perSecond * 60).toFixed(1)}/min`;
}

/** The non-TTY progress line. */
export function formatProgressLine(batch: Pick<PrebuildBatch, 'counts' | 'total'>, stats: ProgressStats, elapsedMs: number): string {
  return `[${formatSeconds(elapsedMs / 1000).padStart(6)}] ${formatCounts(batch.counts, batch.total)}; ${formatRate(stats.rate)}, ETA ${formatSeconds(stats.etaSeconds)}`;
}

export interface Progress {
  update(batch: PrebuildBatch): void;
  /** The batch has settled: draw the last state for good. */
  finish(batch: PrebuildBatch): void;
  /** Stop drawing (interrupted, or an error) and leave the terminal as it was. */
  abort(): void;
}

export interface ProgressOptions {
  now?: () => number;
}

type Output = NodeJS.WritableStream & { isTTY?: boolean };

/** A bar when `out` is a terminal, lines otherwise. */
export function createProgress(out: Output, first: PrebuildBatch, options: ProgressOptions = {}): Progress {
  return out.isTTY ? new BarProgress(out, first, options) : new LineProgress(out, first, options);
}

abstract class Watch {
  protected readonly now: () => number;
  protected readonly startedAt: number;
  protected readonly doneAtStart: number;

  constructor(first: PrebuildBatch, options: ProgressOptions) {
    this.now = options.now ?? Date.now;
    this.startedAt = this.now();
    this.doneAtStart = doneCount(first.counts);
  }

  protected stats(batch: PrebuildBatch): ProgressStats {
    return progressStats(batch, this.doneAtStart, this.now() - this.startedAt);
  }
}

class BarProgress extends Watch implements Progress {
  private readonly bar: cliProgress.SingleBar;

  constructor(out: Output, first: PrebuildBatch, options: ProgressOptions) {
    super(first, options);
    this.bar = new cliProgress.SingleBar(
      {
        stream: out,
        format: '{bar} {percentage}% | {value}/{total} done | {built} built, {cached} cached, {failed} failed | {rateText} | ETA {etaText}',
        barsize: 24,
        hideCursor: true,
        gracefulExit: false,
        clearOnComplete: false,
        fps: 5,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(first.total, doneCount(first.counts), this.payload(first));
  }

  private payload(batch: PrebuildBatch): Record<string, string | number> {
    const stats = this.stats(batch);
    return { built: batch.counts.built, cached: batch.counts.cached, failed: batch.counts.failed, rateText: formatRate(stats.rate), etaText: formatSeconds(stats.etaSeconds) };
  }

  update(batch: PrebuildBatch): void {
    this.bar.setTotal(batch.total);
    this.bar.update(doneCount(batch.counts), this.payload(batch));
  }

  finish(batch: PrebuildBatch): void {
    this.update(batch);
    this.bar.stop();
  }

  abort(): void {
    this.bar.stop();
  }
}

class LineProgress extends Watch implements Progress {
  private last = '';

  constructor(
    private readonly out: Output,
    first: PrebuildBatch,
    options: ProgressOptions,
  ) {
    super(first, options);
    this.update(first);
  }

  update(batch: PrebuildBatch): void {
    // Only a change of the counts makes a new line; the rate and ETA alone do not.
    const key = JSON.stringify(batch.counts);
    if (key === this.last) return;
    this.last = key;
    this.out.write(`${formatProgressLine(batch, this.stats(batch), this.now() - this.startedAt)}\n`);
  }

  finish(batch: PrebuildBatch): void {
    this.update(batch);
  }

  abort(): void {}
}
