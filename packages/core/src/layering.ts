// Layering: which store paths share an image layer. Registries and runtimes cap the number of
// layers, and a closure easily has hundreds of paths, so paths must be grouped; the grouping
// decides what different images can share. This is the simple rule: one layer per store path,
// then merge the smallest layers until the budget is met. A later version replaces it with
// Nixery's popularity and dominator-tree rating (DESIGN §4). It is a pure, deterministic function
// of the closure graph, so every replica plans the same layers for the same closure.
import type { ClosureGraph } from './closure-graph.js';

export interface PlannedLayer {
  /** The layer's store paths, sorted (code-unit order). */
  storePaths: string[];
  /** Sum of the paths' NAR sizes. */
  narSize: number;
}

const byCode = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Smallest first; equal sizes by first store path (unique, as every path is in one layer). */
function ascending(a: PlannedLayer, b: PlannedLayer): number {
  return a.narSize - b.narSize || byCode(a.storePaths[0] as string, b.storePaths[0] as string);
}

/** Merges two sorted, disjoint lists of paths into one sorted list. */
function mergeSorted(a: readonly string[], b: readonly string[]): string[] {
  const out: string[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) out.push((a[i] as string) < (b[j] as string) ? (a[i++] as string) : (b[j++] as string));
  while (i < a.length) out.push(a[i++] as string);
  while (j < b.length) out.push(b[j++] as string);
  return out;
}

/** Index at which `layer` keeps `sorted` in ascending order. */
function insertionIndex(sorted: readonly PlannedLayer[], layer: PlannedLayer): number {
  let low = 0;
  let high = sorted.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (ascending(sorted[mid] as PlannedLayer, layer) < 0) low = mid + 1;
    else high = mid;
  }
  return low;
}

/**
 * Groups every store path of `graph` into at most `maxLayers` layers: one layer per path, then,
 * while there are too many, the smallest layer (by NAR size; ties: first store path) is merged into
 * the next smallest. Returned largest first (ties: first store path). `maxLayers` is the budget for
 * store-path layers only; the caller keeps one more for the symlink layer.
 * Throws RangeError when maxLayers is not a whole number >= 1, and Error for a path listed twice
 * or a NAR size that is not a non-negative number.
 */
export function groupLayers(graph: ClosureGraph, maxLayers: number): PlannedLayer[] {
  if (!Number.isSafeInteger(maxLayers) || maxLayers < 1) {
    throw new RangeError(`groupLayers: maxLayers must be a whole number >= 1, got ${maxLayers}`);
  }
  const seen = new Set<string>();
  const layers: PlannedLayer[] = graph.paths.map(({ path, narSize }) => {
    if (seen.has(path)) throw new Error(`groupLayers: store path ${path} is listed twice`);
    seen.add(path);
    if (!Number.isFinite(narSize) || narSize < 0) throw new Error(`groupLayers: store path ${path} has NAR size ${narSize}`);
    return { storePaths: [path], narSize };
  });

  layers.sort(ascending);
  while (layers.length > maxLayers) {
    const [smallest, next] = layers.splice(0, 2) as [PlannedLayer, PlannedLayer];
    const merged = { storePaths: mergeSorted(smallest.storePaths, next.storePaths), narSize: smallest.narSize + next.narSize };
    layers.splice(insertionIndex(layers, merged), 0, merged);
  }
  return layers.sort((a, b) => b.narSize - a.narSize || byCode(a.storePaths[0] as string, b.storePaths[0] as string));
}
