// How popular each store path is, for layering (docs/design.md §4): popular paths get layers of their
// own, which then many images share. Either a published map (NIX_POPULARITY_URL, as Nixery's
// popularity data: store-path name without hash → count), or, without one, what this farm has
// seen: how many distinct store paths refer to each name, over every closure graph the workers
// built, kept in Redis so every worker learns from every other.

import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { Redis } from 'ioredis';
import { POPULARITY_HASH, SEEN_PATHS_SET, referenceCounts, type ClosureGraph } from '@nixyard/core';

export interface Popularity {
  /** Counts for these names; names never seen are absent. */
  counts(names: readonly string[]): Promise<Map<string, number>>;
  /** Learns from one image's closure graph (a no-op for a published map). */
  learn(graph: ClosureGraph): Promise<void>;
}

const PopularityMap = z.record(z.string(), z.number().nonnegative());
const FETCH_TIMEOUT_MS = 30_000;

/** A published popularity map, read once (`file://`, `http://` or `https://`). */
export class PublishedPopularity implements Popularity {
  private map: Promise<Map<string, number>> | undefined;

  constructor(private readonly url: string) {}

  async counts(names: readonly string[]): Promise<Map<string, number>> {
    this.map ??= loadPopularityMap(this.url).catch((err: unknown) => {
      this.map = undefined; // try again on the next build rather than never
      throw err;
    });
    const map = await this.map;
    return new Map(names.filter((n) => map.has(n)).map((n) => [n, map.get(n)!]));
  }

  async learn(): Promise<void> {}
}

export async function loadPopularityMap(url: string): Promise<Map<string, number>> {
  const parsed = new URL(url);
  let text: string;
  if (parsed.protocol === 'file:') {
    text = await readFile(fileURLToPath(parsed), 'utf8');
  } else {
    const res = await fetch(parsed, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    if (!res.ok) throw new Error(`NIX_POPULARITY_URL answered ${res.status}`);
    text = await res.text();
  }
  return new Map(Object.entries(PopularityMap.parse(JSON.parse(text))));
}

/** Reference counts accumulated in a Redis hash by every worker of the farm. */
export class LearnedPopularity implements Popularity {
  constructor(private readonly redis: Redis) {}

  async counts(names: readonly string[]): Promise<Map<string, number>> {
    if (names.length === 0) return new Map();
    const values = await this.redis.hmget(POPULARITY_HASH, ...names);
    const counts = new Map<string, number>();
    names.forEach((name, i) => {
      const value = values[i];
      if (value != null) counts.set(name, Number(value));
    });
    return counts;
  }

  /**
   * Counts the references of the paths no worker has seen before. SADD tells which those are,
   * atomically, so a path shared by a thousand images (or built by two workers at once) adds its
   * references exactly once, and the counts mean "how many paths refer to this", as Nixery's do.
   */
  async learn(graph: ClosureGraph): Promise<void> {
    if (graph.paths.length === 0) return;
    const seen = this.redis.pipeline();
    for (const info of graph.paths) seen.sadd(SEEN_PATHS_SET, info.path);
    const added = (await seen.exec()) ?? [];
    const fresh = new Set(graph.paths.filter((_, i) => added[i]?.[1] === 1).map((info) => info.path));
    const counts = referenceCounts(graph, (referrer) => fresh.has(referrer));
    if (counts.size === 0) return;
    const increments = this.redis.pipeline();
    for (const [name, count] of counts) increments.hincrby(POPULARITY_HASH, name, count);
    await increments.exec();
  }
}
