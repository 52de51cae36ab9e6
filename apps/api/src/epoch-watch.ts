// Keeps this replica's in-memory copies honest about deletions (core's cache-epoch.ts): while it
// serves pulls it reads the storage's cache epoch at most once per CACHE_EPOCH_CHECK_MS, shared
// by every request that arrives meanwhile, and drops its copies when the epoch moved. A warm pull
// in between costs no file operation. A failed read changes nothing and is tried again next time.

import { CACHE_EPOCH_CHECK_MS, readCacheEpoch, type Storage } from '@nixyard/core';

export interface EpochWatchOptions {
  checkMs?: number;
  /** The clock, in milliseconds (default Date.now). */
  now?: () => number;
}

export class EpochWatch {
  private epoch: string | undefined;
  private known = false;
  private checkedAt = -Infinity;
  private pending: Promise<void> | undefined;
  private readonly checkMs: number;
  private readonly now: () => number;

  constructor(
    private readonly storage: Pick<Storage, 'getRecord'>,
    private readonly onChange: () => void,
    options: EpochWatchOptions = {},
  ) {
    this.checkMs = options.checkMs ?? CACHE_EPOCH_CHECK_MS;
    this.now = options.now ?? Date.now;
  }

  /** Undefined while the last look is recent enough; otherwise the look, to await before serving. */
  check(): Promise<void> | undefined {
    if (this.now() - this.checkedAt < this.checkMs) return undefined;
    this.pending ??= this.look().finally(() => {
      this.pending = undefined;
    });
    return this.pending;
  }

  private async look(): Promise<void> {
    const started = this.now();
    let epoch: string | undefined;
    try {
      epoch = await readCacheEpoch(this.storage);
    } catch {
      return;
    }
    // Before the first successful look nothing is known, so whatever was cached meanwhile goes too.
    if (!this.known || epoch !== this.epoch) this.onChange();
    this.known = true;
    this.epoch = epoch;
    this.checkedAt = started;
  }
}
