// Package indexes as sets, read from storage and kept in memory. An index is keyed by source
// revision, so one that exists never changes; an absent one is looked up again next time (a
// worker may have written it meanwhile).

import { PackageIndexSchema, packageIndexKey, type PackageIndexId, type Storage } from '@nixyard/core';

const MAX_ENTRIES = 16;

export class PackageIndexCache {
  private readonly entries = new Map<string, ReadonlySet<string>>();

  constructor(private readonly storage: Storage) {}

  async get(id: PackageIndexId): Promise<ReadonlySet<string> | undefined> {
    const key = packageIndexKey(id);
    const cached = this.entries.get(key);
    if (cached) {
      // Map order is insertion order: re-inserting marks it most recently used.
      this.entries.delete(key);
      this.entries.set(key, cached);
      return cached;
    }
    const parsed = PackageIndexSchema.safeParse(await this.storage.getRecord(key));
    if (!parsed.success) return undefined;
    const names = new Set(parsed.data.names);
    this.entries.set(key, names);
    if (this.entries.size > MAX_ENTRIES) this.entries.delete(this.entries.keys().next().value!);
    return names;
  }
}
